package importer

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/compat/nagios"
	"github.com/reconmon/recon/compat/nrpe"
	"github.com/reconmon/recon/compat/passive"
	"github.com/reconmon/recon/internal/testutil"
)

func registries(t *testing.T) (config.Registries, *nagios.Type) {
	t.Helper()
	nt, err := nagios.New(nagios.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cr := checktype.NewRegistry()
	cr.Register("nagios", nt)
	cr.Register("passive", passive.Type{})
	return config.Registries{Checks: cr, Sinks: sink.NewRegistry(), Sections: map[string]config.Section{
		"nrpe": {New: func() any { return &nrpe.Config{} }},
	}}, nt
}

// load validates imported TOML exactly as `recon config check` does:
// decode, then prepare every check with the real types (resource file
// included).
func load(t *testing.T, out *Output) *config.Config {
	t.Helper()
	reg, _ := registries(t)
	cfg, err := config.Parse("imported.toml", out.TOML, reg, nil)
	if err != nil {
		t.Fatalf("imported config does not validate:\n%v\n--- TOML ---\n%s", err, out.TOML)
	}
	nt, err := nagios.New(nagios.Options{ResourceFile: cfg.Nagios.ResourceFile})
	if err != nil {
		t.Fatal(err)
	}
	reg.Checks = checktype.NewRegistry()
	reg.Checks.Register("nagios", nt)
	reg.Checks.Register("passive", passive.Type{})
	for _, c := range append(append([]*model.Check{}, cfg.Checks...), cfg.Disabled...) {
		typ, _ := reg.Checks.Lookup(c.Type)
		if _, err := typ.Prepare(c); err != nil {
			t.Errorf("%s: check %q does not prepare: %v", c.Source, c.Name, err)
		}
	}
	return cfg
}

func byName(cfg *config.Config) map[string]*model.Check {
	m := map[string]*model.Check{}
	for _, c := range append(append([]*model.Check{}, cfg.Checks...), cfg.Disabled...) {
		m[c.Name] = c
	}
	return m
}

func runCheck(t *testing.T, cfg *config.Config, c *model.Check) model.Result {
	nt, _ := nagios.New(nagios.Options{ResourceFile: cfg.Nagios.ResourceFile})
	r, err := nt.Prepare(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return r.Run(ctx, nil)
}

func TestImportSynthetic(t *testing.T) {
	testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_dummy")
	out, err := ImportNagios([]string{"../../testdata/nagios/nagios.cfg"}, NagiosOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, out)
	checks := byName(cfg)
	want := []string{"web1", "web1/Web; check", "web2/Web; check", "web1/Piped", "web2/Piped", "db1/Piped",
		"web1/Passive", "web2/Passive", "db1/Passive", "web1/Broken", "nagios-command:unused_check"}
	for _, n := range want {
		if checks[n] == nil {
			t.Errorf("missing check %q", n)
		}
	}
	if len(checks) != len(want) {
		t.Errorf("got %d checks, want %d", len(checks), len(want))
	}
	if checks["db1/Web; check"] != nil {
		t.Error("!db1 exclusion ignored")
	}
	web1 := checks["web1"]
	// interval_length = 30: check_interval 2 → 1m; multiple inheritance: generic-host attempts.
	if web1.Period != time.Minute || web1.MaxAttempts != 5 || web1.Target != "10.0.0.1" || web1.Tags["kind"] != "host" {
		t.Errorf("web1: %+v", web1)
	}
	svc := checks["web1/Web; check"]
	if svc.Period != 30*time.Second || svc.MaxAttempts != 3 {
		t.Errorf("fast-service template chain: %+v", svc)
	}
	r := runCheck(t, cfg, svc)
	if r.Status != model.Warning || r.Output != "WARNING: web1 Web; check web a!b" {
		t.Errorf("run: %v %q", r.Status, r.Output)
	}
	if r := runCheck(t, cfg, checks["db1/Piped"]); r.Status != model.OK || r.Output != "OK: piped" {
		t.Errorf("shell command: %v %q %q", r.Status, r.Output, r.LongOutput)
	}
	if p := checks["web2/Passive"]; p.Type != "passive" || p.Settings.(*passive.Settings).Freshness.D() != 10*time.Minute {
		t.Errorf("passive: %+v", p)
	}
	text := string(out.TOML)
	for _, s := range []string{
		`NOT RUNNABLE AS IS: command "no_such_command" is not defined`,
		"command notify-by-email from",
		"not translated: notification_interval=30",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if cfg.Nagios.ResourceFile == "" || !strings.HasSuffix(cfg.Nagios.ResourceFile, "testdata/nagios/resource.cfg") {
		t.Errorf("resource file from nagios.cfg: %q", cfg.Nagios.ResourceFile)
	}
}

// The acceptance case: Debian nagios4's sample objects.
func TestImportDebianLocalhost(t *testing.T) {
	files := []string{"/etc/nagios4/objects/localhost.cfg", "/etc/nagios4/objects/commands.cfg", "/etc/nagios4/objects/templates.cfg"}
	for _, f := range files {
		testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_disk")
		if _, err := os.Stat(f); err != nil {
			testutil.MissingPeer(t, "%s (Debian package nagios4-common)", f)
		}
	}
	if _, err := os.Stat("/etc/nagios-plugins/config"); err == nil {
		files = append(files, "/etc/nagios-plugins/config")
	}
	out, err := ImportNagios(files, NagiosOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, out)
	checks := byName(cfg)
	ran := 0
	for _, name := range []string{"localhost/Root Partition", "localhost/Current Users", "localhost/Current Load", "localhost/Total Processes", "localhost/Swap Usage"} {
		c := checks[name]
		if c == nil {
			t.Errorf("missing %q", name)
			continue
		}
		r := runCheck(t, cfg, c)
		// Swap may legitimately be CRITICAL on a machine without swap; what
		// must never happen is UNKNOWN from a broken translation.
		if r.Status == model.Unknown || r.Output == "" {
			t.Errorf("%s: %v %q %q", name, r.Status, r.Output, r.LongOutput)
		}
		ran++
	}
	if ran < 5 {
		t.Errorf("ran %d localhost services", ran)
	}
}

// Every command shipped with monitoring-plugins becomes a valid template.
func TestImportPluginCommandLibrary(t *testing.T) {
	files, _ := filepath.Glob("/etc/nagios-plugins/config/*.cfg")
	if len(files) == 0 {
		testutil.MissingPeer(t, "/etc/nagios-plugins/config/*.cfg (Debian package monitoring-plugins)")
	}
	defs := 0
	re := regexp.MustCompile(`(?m)^\s*define\s+command\s*\{`)
	for _, f := range files {
		b, _ := os.ReadFile(f)
		defs += len(re.FindAll(b, -1))
	}
	out, err := ImportNagios(files, NagiosOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, out)
	templates := 0
	for _, c := range cfg.Disabled {
		if strings.HasPrefix(c.Name, "nagios-command:") {
			templates++
		}
	}
	if templates != defs {
		t.Errorf("%d command definitions, %d templates", defs, templates)
	}
}

func TestImportNRPE(t *testing.T) {
	out, err := ImportNRPE("../../testdata/nagios/nrpe.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, out)
	n := cfg.Sections["nrpe"].(*nrpe.Config)
	if n.Listen != "127.0.0.1:15666" || !n.AllowArguments || n.CommandTimeout.D() != 30*time.Second {
		t.Errorf("nrpe: %+v", n)
	}
	if strings.Join(n.AllowedHosts, ",") != "127.0.0.1,10.0.0.0/8" || !strings.Contains(string(out.TOML), `allowed_hosts entry "nagios.example.com"`) {
		t.Errorf("allowed_hosts: %v", n.AllowedHosts)
	}
	for _, c := range []string{"check_users", "check_args", "check_load", "check_root"} {
		if n.Command[c] == "" {
			t.Errorf("command %s missing (include/include_dir?)", c)
		}
	}
	_, nt := registries(t)
	if _, err := nrpe.New(*n, nt, nil, "a", nil); err != nil {
		t.Errorf("imported [nrpe] does not start: %v", err)
	}
	if !strings.Contains(string(out.TOML), "not translated: debug=0") {
		t.Error("untranslated setting not listed")
	}
	if _, err := os.Stat("/etc/nagios/nrpe.cfg"); err == nil {
		out, err := ImportNRPE("/etc/nagios/nrpe.cfg")
		if err != nil {
			t.Fatal(err)
		}
		load(t, out)
	}
}

func TestImportErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	cases := map[string]string{
		write("a.cfg", "define host {\n host_name x\n"):                                          "unterminated define",
		write("b.cfg", "define service {\n use nope\n service_description s\n host_name h\n}\n"): `template "nope"`,
		write("c.cfg", "garbage line\n"):                                                         "expected 'define TYPE {'",
		write("d.cfg", "define {\n}\n"):                                                          "without an object type",
	}
	for p, want := range cases {
		if _, err := ImportNagios([]string{p}, NagiosOptions{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", filepath.Base(p), err, want)
		}
	}
	loop := write("loop.cfg", "define service {\n name a\n use b\n register 0\n}\ndefine service {\n name b\n use a\n register 0\n}\ndefine service {\n use a\n host_name h\n service_description s\n}\n")
	if _, err := ImportNagios([]string{loop}, NagiosOptions{}); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Errorf("template loop: %v", err)
	}
	if _, err := ImportNRPE(write("n.cfg", "server_port=abc\n")); err == nil {
		t.Error("bad server_port accepted")
	}
}

func FuzzImportNagios(f *testing.F) {
	f.Add([]byte("define service {\n use generic\n host_name h\n service_description s\n check_command c!1\n}\ndefine command {\n command_name c\n command_line /bin/true $ARG1$\n}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "fuzz.cfg")
		os.WriteFile(p, data, 0o644)
		out, err := ImportNagios([]string{p}, NagiosOptions{ResourceFile: "/nonexistent"})
		if err != nil {
			return
		}
		reg, _ := registries(t)
		reg.Checks = checktype.NewRegistry()
		reg.Checks.Register("nagios", nagiosNoResource(t))
		reg.Checks.Register("passive", passive.Type{})
		cfg := strings.Replace(string(out.TOML), `resource_file = "/nonexistent"`, "", 1)
		if _, err := config.Parse("f.toml", []byte(cfg), reg, nil); err != nil {
			t.Fatalf("importer produced invalid TOML: %v\n%s", err, cfg)
		}
	})
}

func nagiosNoResource(t *testing.T) *nagios.Type {
	nt, err := nagios.New(nagios.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

func FuzzImportNRPE(f *testing.F) {
	if b, err := os.ReadFile("../../testdata/nagios/nrpe.cfg"); err == nil {
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "nrpe.cfg")
		os.WriteFile(p, data, 0o644)
		out, err := ImportNRPE(p)
		if err != nil {
			return
		}
		reg, _ := registries(t)
		if _, err := config.Parse("f.toml", out.TOML, reg, nil); err != nil {
			t.Fatalf("importer produced invalid TOML: %v\n%s", err, out.TOML)
		}
	})
}
