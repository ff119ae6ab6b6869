package config

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

type cmdSettings struct {
	Command string   `toml:"command"`
	Args    []string `toml:"args"`
}

type fakeCheckType struct{}

func (fakeCheckType) NewSettings() any { return &cmdSettings{} }
func (fakeCheckType) Prepare(c *model.Check) (checktype.Runner, error) {
	return checktype.Func(func(context.Context, *model.Result) model.Result { return model.Result{} }), nil
}

type fileSinkSettings struct {
	Path string `toml:"path"`
}

type fakeSinkType struct{}

func (fakeSinkType) NewSettings() any                            { return &fileSinkSettings{} }
func (fakeSinkType) New(*sink.Spec, sink.Env) (sink.Sink, error) { return nil, errors.New("unused") }

func testRegistries() Registries {
	cr := checktype.NewRegistry()
	cr.Register("nagios", fakeCheckType{})
	sr := sink.NewRegistry()
	sr.Register("sqlite", fakeSinkType{})
	return Registries{Checks: cr, Sinks: sr}
}

func testOptions() *Options {
	env := map[string]string{"SECRET_PW": `p"w\d`}
	return &Options{
		Env:      func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Hostname: func() (string, error) { return "testhost", nil },
	}
}

func chdirTestdata(t *testing.T) {
	t.Helper()
	t.Chdir(filepath.Join("..", "..", "testdata", "config"))
}

func TestGoodConfigs(t *testing.T) {
	chdirTestdata(t)
	files, _ := filepath.Glob("good/*.toml")
	if len(files) == 0 {
		t.Fatal("no good configs")
	}
	for _, f := range files {
		if _, err := Load(f, testRegistries(), testOptions()); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestFullConfigValues(t *testing.T) {
	chdirTestdata(t)
	cfg, err := Load("good/full.toml", testRegistries(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agent.Name != "web1" || cfg.Agent.LogFormat != "json" || cfg.Agent.Concurrency["nagios"] != 8 {
		t.Errorf("agent = %+v", cfg.Agent)
	}
	if len(cfg.Checks) != 2 || len(cfg.Disabled) != 1 || cfg.Disabled[0].Name != "off" {
		t.Fatalf("want 2 enabled checks and 1 disabled, got %d and %d", len(cfg.Checks), len(cfg.Disabled))
	}
	disk, secret := cfg.Checks[0], cfg.Checks[1]
	if disk.ID.String() != "0a4f3a0e-1111-4c2b-9a43-000000000001" {
		t.Errorf("configured id not kept: %s", disk.ID)
	}
	if disk.Period != 10*time.Second || disk.Timeout != 5*time.Second || disk.MaxAttempts != 4 || disk.RetryPeriod != 2*time.Second {
		t.Errorf("defaults not applied: %+v", disk)
	}
	if disk.Tags["role"] != "web" || disk.Source != "good/full.toml:20" {
		t.Errorf("tags/source: %v %q", disk.Tags, disk.Source)
	}
	if got := disk.Settings.(*cmdSettings).Command; !strings.HasPrefix(got, "/usr/lib/nagios/plugins/check_disk") {
		t.Errorf("settings: %q", got)
	}
	if got, want := secret.Settings.(*cmdSettings).Command, `check_x --password p"w\d --other fallback`; got != want {
		t.Errorf("env substitution: got %q want %q", got, want)
	}
	if secret.ID != model.CheckID("web1", "secret") {
		t.Errorf("derived id not stable: %s", secret.ID)
	}
	if secret.Period != time.Minute || secret.Timeout != 30*time.Second || secret.MaxAttempts != 1 {
		t.Errorf("overrides: %+v", secret)
	}
	if len(cfg.Sinks) != 1 {
		t.Fatalf("sinks: %d", len(cfg.Sinks))
	}
	s := cfg.Sinks[0]
	if s.Name != "primary" || s.BatchSize != 500 || s.Fsync != "interval" || s.FsyncInterval != 200*time.Millisecond || s.MaxSpoolBytes != 1<<30 {
		t.Errorf("sink spec: %+v", s)
	}
}

func TestMinimalDefaults(t *testing.T) {
	chdirTestdata(t)
	cfg, err := Load("good/minimal.toml", testRegistries(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Checks[0]
	if c.Period != 30*time.Second || c.Timeout != 10*time.Second || c.MaxAttempts != DefaultMaxAttempts || c.RetryPeriod != 30*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	if cfg.Agent.Name != "testhost" || cfg.Agent.Shutdown.D() != DefaultShutdown {
		t.Errorf("agent defaults: %+v", cfg.Agent)
	}
	if c.ID != model.CheckID("testhost", "load") {
		t.Errorf("id: %s", c.ID)
	}
}

func TestInclude(t *testing.T) {
	chdirTestdata(t)
	cfg, err := Load("include/main.toml", testRegistries(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cfg.Checks {
		names = append(names, c.Name+"@"+c.Source)
	}
	want := "a@include/conf.d/10-a.toml:1 b@include/conf.d/20-b.toml:1"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("checks = %s, want %s", got, want)
	}
	if len(cfg.Files) != 3 || len(cfg.Sinks) != 1 || cfg.DefaultSink {
		t.Errorf("files %v sinks %d default %v", cfg.Files, len(cfg.Sinks), cfg.DefaultSink)
	}
}

func TestDefaultSinkAdded(t *testing.T) {
	cfg, err := Parse("mem.toml", []byte("[[check]]\nname='x'\ntype='nagios'\ncommand='/bin/true'\n"), testRegistries(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.DefaultSink || len(cfg.Sinks) != 1 || cfg.Sinks[0].Type != "sqlite" {
		t.Errorf("default sink not added: %+v", cfg.Sinks)
	}
}

// TestBadConfigs loads every file in testdata/config/bad and expects the
// error named on its first line ("# want: file:line: text").
func TestBadConfigs(t *testing.T) {
	chdirTestdata(t)
	files, _ := filepath.Glob("bad/*.toml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := wantLine(t, f)
			_, err := Load(f, testRegistries(), testOptions())
			if err == nil {
				t.Fatalf("loaded without error; want %q", want)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want config.Errors: %v", err, err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error:\n%v\nwant it to contain %q", err, want)
			}
		})
	}
}

func wantLine(t *testing.T, f string) string {
	fh, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Scan()
	line, ok := strings.CutPrefix(sc.Text(), "# want: ")
	if !ok {
		t.Fatalf("%s: first line must be '# want: ...'", f)
	}
	return line
}

func TestFingerprintStable(t *testing.T) {
	doc := []byte("[[check]]\nname='x'\ntype='nagios'\ncommand='/bin/true'\nargs=['a','b']\ntags={b='2',a='1'}\n")
	a, err := Parse("a.toml", doc, testRegistries(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Parse("a.toml", doc, testRegistries(), testOptions())
	id := a.Checks[0].ID.String()
	if a.Fingerprints[id] != b.Fingerprints[id] {
		t.Error("same config, different fingerprints")
	}
	c, _ := Parse("a.toml", []byte(strings.Replace(string(doc), "'b']", "'c']", 1)), testRegistries(), testOptions())
	if a.Fingerprints[id] == c.Fingerprints[id] {
		t.Error("changed settings, same fingerprint")
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"good/minimal.toml", "good/full.toml"} {
		if b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "config", p)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("[[check]]\nname='x'\ntype='nagios'\ncommand=1\n"))
	f.Add([]byte("[agent]\nlisten='${X:-a}'\n[[sink]]\ntype='sqlite'\npath={a={b=1}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data, testRegistries(), testOptions())
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not config.Errors: %v", err, err)
			}
			return
		}
		for _, c := range cfg.Checks {
			if c.Name == "" || c.Period < MinPeriod || c.Timeout > c.Period || c.MaxAttempts < 1 {
				t.Fatalf("invalid check accepted: %+v", c)
			}
		}
	})
}

type nrpeSection struct {
	Listen  string            `toml:"listen"`
	Timeout Duration          `toml:"command_timeout"`
	Command map[string]string `toml:"command"`
}

type trapSection struct {
	Listen string `toml:"listen"`
	User   []struct {
		Name string `toml:"name"`
	} `toml:"user"`
}

func sectionRegistries() Registries {
	r := testRegistries()
	r.Sections = map[string]Section{
		"nrpe":      {New: func() any { return &nrpeSection{} }},
		"snmp_trap": {New: func() any { return &trapSection{} }, Multi: true},
	}
	return r
}

func TestSections(t *testing.T) {
	doc := `
[nrpe]
listen = "0.0.0.0:5666"
command_timeout = "30s"
[nrpe.command]
check_load = "/usr/lib/nagios/plugins/check_load"

[[snmp_trap]]
listen = "127.0.0.1:1162"
[[snmp_trap.user]]
name = "ops"
[[snmp_trap.user]]
name = "net"

[[snmp_trap]]
listen = "127.0.0.1:1163"
`
	cfg, err := Parse("s.toml", []byte(doc), sectionRegistries(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Sections["nrpe"].(*nrpeSection)
	if n.Listen != "0.0.0.0:5666" || n.Timeout.D() != 30*time.Second || n.Command["check_load"] == "" {
		t.Errorf("nrpe: %+v", n)
	}
	traps := cfg.Sections["snmp_trap"].([]any)
	if len(traps) != 2 || len(traps[0].(*trapSection).User) != 2 || traps[1].(*trapSection).Listen != "127.0.0.1:1163" {
		t.Errorf("snmp_trap: %+v", traps)
	}
	if cfg.Fingerprints["section:nrpe"] == "" || cfg.Fingerprints["section:snmp_trap.1"] == "" {
		t.Errorf("fingerprints: %v", cfg.Fingerprints)
	}
	// Without the registration the section is an unknown key.
	if _, err := Parse("s.toml", []byte(doc), testRegistries(), testOptions()); err == nil || !strings.Contains(err.Error(), `unknown key "nrpe`) {
		t.Errorf("unregistered section: %v", err)
	}
}

func TestSectionErrors(t *testing.T) {
	cases := map[string]string{
		"[nrpe]\nlisten = 'x'\nlistn = 'y'\n":                        `s.toml:3: nrpe: unknown key "listn"`,
		"[nrpe]\ncommand_timeout = 'soon'\n":                         `s.toml:2: nrpe: command_timeout: invalid duration "soon"`,
		"[[snmp_trap]]\nlisten = 'a'\n[[snmp_trap]]\nlisten = 5\n":   `s.toml:4: snmp_trap #2: listen: cannot decode TOML integer`,
		"[[snmp_trap]]\n[[snmp_trap.user]]\nname = 'a'\nbogus = 1\n": `s.toml:4: snmp_trap #1: unknown key "user.bogus"`,
	}
	for doc, want := range cases {
		_, err := Parse("s.toml", []byte(doc), sectionRegistries(), testOptions())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
}
