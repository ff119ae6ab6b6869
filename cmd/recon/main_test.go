package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reconmon/recon/internal/testutil"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, env: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
	code = run(context.Background(), a, args)
	return out.String(), errb.String(), code
}

func TestCheckRunAdhocJSON(t *testing.T) {
	p := testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_load")
	out, errOut, code := runCLI(t, nil, "check", "run", "--type", "nagios", "--command", p+" -w 5,4,3 -c 10,8,6", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one JSON line, got %q", out)
	}
	var r struct {
		Metrics []struct {
			Name, Type, Warn, Crit string
			Value                  float64
		}
	}
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lines[0], `"status":"OK"`) {
		t.Errorf("status not OK: %s", lines[0])
	}
	want := map[string][2]string{"load1": {"5.000", "10.000"}, "load5": {"4.000", "8.000"}, "load15": {"3.000", "6.000"}}
	for _, m := range r.Metrics {
		if th, ok := want[m.Name]; ok && th == [2]string{m.Warn, m.Crit} && m.Type == "float" {
			delete(want, m.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("metrics missing or wrong: %v in %s", want, lines[0])
	}
}

func TestCheckRunExitCodeAndLineProtocol(t *testing.T) {
	p := testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_dummy")
	out, _, code := runCLI(t, nil, "check", "run", "--type", "nagios", "--command", p+" 2 broken", "--name", "dummy", "--set", "args=['x']")
	if code != 2 {
		t.Errorf("exit %d, want 2 (CRITICAL)", code)
	}
	if !strings.HasPrefix(out, "dummy,check_id=") || !strings.Contains(out, "status_code=2i") {
		t.Errorf("line protocol: %q", out)
	}
}

func TestCheckRunFromConfig(t *testing.T) {
	p := testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_dummy")
	cfg := filepath.Join(t.TempDir(), "r.toml")
	os.WriteFile(cfg, []byte(`
[[check]]
name = "a"
type = "nagios"
command = "`+p+` 0 fine"
[[check]]
name = "b"
type = "nagios"
command = "`+p+` 1 meh"
`), 0o644)
	out, errOut, code := runCLI(t, nil, "check", "run", "-c", cfg, "--check", "b", "--format", "json")
	if code != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"check":"b"`) {
		t.Errorf("exit %d out %q err %q", code, out, errOut)
	}
	_, errOut, code = runCLI(t, nil, "check", "run", "-c", cfg, "--check", "nope")
	if code != 3 || !strings.Contains(errOut, `no check named "nope" (have: a, b)`) {
		t.Errorf("unknown check: exit %d %q", code, errOut)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[[check]]\nname='x'\ntype='nagios'\ncommand='/bin/true'\n"), 0o644)
	out, errOut, code := runCLI(t, nil, "config", "check", "-c", good)
	if code != 0 || !strings.Contains(out, "ok (1 checks") {
		t.Errorf("good: exit %d %q %q", code, out, errOut)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[agent]\nlisten = 'x'\n\n[[check]]\nname='x'\ntype='nagios'\ncommand='echo a | cat'\nperiod='1 minute'\n"), 0o644)
	_, errOut, code = runCLI(t, nil, "config", "check", "-c", bad)
	if code != 1 || !strings.Contains(errOut, bad+":8:") || !strings.Contains(errOut, bad+":2:") {
		t.Errorf("bad: exit %d %q", code, errOut)
	}
	// A command that needs a shell is caught by preparing the check.
	shell := filepath.Join(dir, "shell.toml")
	os.WriteFile(shell, []byte("[[check]]\nname='x'\ntype='nagios'\ncommand='echo a | cat'\n"), 0o644)
	_, errOut, code = runCLI(t, nil, "config", "check", "-c", shell)
	if code != 1 || !strings.Contains(errOut, shell+":1: check \"x\"") || !strings.Contains(errOut, "needs a shell") {
		t.Errorf("shell: exit %d %q", code, errOut)
	}
	// Sink settings only the sink type can judge are checked too, with
	// the place they were written.
	for name, c := range map[string]struct{ toml, want string }{
		"nodsn":   {"[[sink]]\ntype = 'postgres'\n", ":1: sink \"postgres\": dsn is required"},
		"conns":   {"\n[[sink]]\ntype = 'postgres'\ndsn = 'host=/nonexistent'\nmax_conns = 2\nwrite_conns = 3\n", ":2: sink \"postgres\": write_conns 3: at most max_conns - 1 (1)"},
		"natsurl": {"[[sink]]\ntype = 'nats'\nurl = 'ftp://x'\n", ":1: sink \"nats\": url \"ftp://x\": scheme \"ftp\""},
	} {
		f := filepath.Join(dir, name+".toml")
		os.WriteFile(f, []byte(c.toml), 0o644)
		_, errOut, code = runCLI(t, nil, "config", "check", "-c", f)
		if code != 1 || !strings.Contains(errOut, f+c.want) {
			t.Errorf("%s: exit %d %q, want %q", name, code, errOut, f+c.want)
		}
	}
}

func TestUsage(t *testing.T) {
	out, _, code := runCLI(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "check") {
		t.Errorf("help: %d %q", code, out)
	}
	_, errOut, code := runCLI(t, nil, "bogus")
	if code != exitUsage || !strings.Contains(errOut, `unknown command "bogus"`) {
		t.Errorf("bogus: %d %q", code, errOut)
	}
	_, _, code = runCLI(t, nil, "check", "run", "--help")
	if code != 0 {
		t.Errorf("check run --help exit %d", code)
	}
	out, _, code = runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "recon ") {
		t.Errorf("version: %d %q", code, out)
	}
}
