package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reconmon/recon/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// reconBinary builds the real binary once per test run.
func reconBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "recon-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "recon")
		// As `make build` ships it (static, stripped).
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// agentProc is a running `recon agent`.
type agentProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
}

func startAgent(t testing.TB, cfg string, extraEnv ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(reconBinary(t), "agent", "-c", cfg)
	cmd.Dir = filepath.Dir(cfg)
	cmd.Env = append(os.Environ(), extraEnv...)
	p := &agentProc{cmd: cmd, done: make(chan struct{})}
	pipe, _ := cmd.StderrPipe()
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("agent stderr:\n%s", p.log())
		}
	})
	return p
}

func (p *agentProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func waitFor(t testing.TB, what string, within time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countLines(path, substr string) int {
	b, _ := os.ReadFile(path)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// TestAgentRunsReloadsAndStops runs the real binary: results flow to a
// file sink, SIGHUP with a broken config keeps the old one, SIGHUP with a
// new check adds it without disturbing the others, SIGTERM stops cleanly.
func TestAgentRunsReloadsAndStops(t *testing.T) {
	dummy := testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_dummy")
	dir := t.TempDir()
	out := filepath.Join(dir, "out.lp")
	cfgPath := filepath.Join(dir, "recon.toml")
	base := `
[agent]
listen = "127.0.0.1:0"
data_dir = "` + dir + `/data"
[[check]]
name = "fast"
type = "nagios"
command = "` + dummy + ` 0 fast"
period = "100ms"
[[sink]]
type = "lineproto"
output = "file"
path = "` + out + `"
fsync = "never"
`
	os.WriteFile(cfgPath, []byte(base), 0o644)
	p := startAgent(t, cfgPath)
	waitFor(t, "results of the first check", 10*time.Second, func() bool { return countLines(out, "fast,") >= 5 })

	os.WriteFile(cfgPath, []byte(base+"\n[[check]]\nname = 'broken'\ntype = 'nagios'\nperiod = 'soon'\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "reload failure logged", 5*time.Second, func() bool { return strings.Contains(p.log(), "reload failed") })
	if !strings.Contains(p.log(), "recon.toml:") {
		t.Errorf("reload error does not name file:line:\n%s", p.log())
	}
	n := countLines(out, "fast,")
	waitFor(t, "old config still running", 5*time.Second, func() bool { return countLines(out, "fast,") > n+3 })

	os.WriteFile(cfgPath, []byte(base+"\n[[check]]\nname = 'added'\ntype = 'nagios'\ncommand = '"+dummy+" 1 added'\nperiod = '100ms'\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "added check's results", 10*time.Second, func() bool { return countLines(out, "added,") >= 3 })
	if !strings.Contains(p.log(), "configuration reloaded") {
		t.Error("reload not logged")
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if !strings.Contains(p.log(), "agent stopped") {
		t.Error("no clean stop logged")
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// TestAgentServesNRPE: the real check_nrpe against the agent's NRPE
// server; the served command is also stored as a result.
func TestAgentServesNRPE(t *testing.T) {
	checkNRPE := testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_nrpe")
	dummy := testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_dummy")
	dir := t.TempDir()
	out := filepath.Join(dir, "out.lp")
	port := freePort(t)
	cfgPath := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfgPath, []byte(`
[agent]
listen = "127.0.0.1:0"
data_dir = "`+dir+`/data"
[nrpe]
listen = "127.0.0.1:`+port+`"
[nrpe.command]
check_warn = "`+dummy+` 1 'served by recon'"
[[sink]]
type = "lineproto"
output = "file"
path = "`+out+`"
`), 0o644)
	startAgent(t, cfgPath)
	var got []byte
	var code int
	waitFor(t, "check_nrpe answered", 10*time.Second, func() bool {
		cmd := exec.Command(checkNRPE, "-H", "127.0.0.1", "-p", port, "-c", "check_warn")
		got, _ = cmd.Output()
		code = cmd.ProcessState.ExitCode()
		return code == 1
	})
	if strings.TrimSpace(string(got)) != "WARNING: served by recon" {
		t.Errorf("check_nrpe said %q (exit %d)", got, code)
	}
	waitFor(t, "NRPE result stored", 10*time.Second, func() bool { return countLines(out, `nrpe:check_warn,`) >= 1 })
}

// TestAgentAlertsEndToEnd: the real agent, a check_dummy whose exit code the
// test flips, the built-in Nagios rule, a webhook and an exec notifier:
// exactly one PROBLEM and one RECOVERY, in order.
func TestAgentAlertsEndToEnd(t *testing.T) {
	dummy := testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_dummy")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.WriteFile(state, []byte("0"), 0o644)
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Notifications []map[string]any `json:"notifications"`
		}
		json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		got = append(got, p.Notifications...)
		mu.Unlock()
	}))
	defer srv.Close()
	envOut := filepath.Join(dir, "nagios-env.txt")
	script := filepath.Join(dir, "notify.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$NAGIOS_NOTIFICATIONTYPE $NAGIOS_SERVICEDESC $NAGIOS_SERVICESTATE $NAGIOS_SERVICEOUTPUT\" >> "+envOut+"\n"), 0o755)
	cfgPath := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfgPath, []byte(`
[agent]
listen = "127.0.0.1:0"
data_dir = "`+dir+`/data"
[[check]]
name = "flip"
type = "nagios"
shell = true
command = "`+dummy+` $(cat `+state+`) flipped"
period = "200ms"
max_attempts = 2
retry_period = "100ms"
[[sink]]
type = "alerter"
group_wait = "100ms"
[[sink.notifier]]
name = "hook"
type = "webhook"
url = "`+srv.URL+`"
[[sink.notifier]]
name = "script"
type = "exec"
command = "`+script+`"
`), 0o644)
	startAgent(t, cfgPath)
	notes := func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		return append([]map[string]any(nil), got...)
	}
	time.Sleep(time.Second) // healthy for a while: nothing is sent
	if n := len(notes()); n != 0 {
		t.Fatalf("notifications while OK: %v", notes())
	}
	os.WriteFile(state, []byte("2"), 0o644)
	waitFor(t, "PROBLEM", 15*time.Second, func() bool { return len(notes()) >= 1 })
	time.Sleep(time.Second) // still CRITICAL: no repeat, no duplicate
	os.WriteFile(state, []byte("0"), 0o644)
	waitFor(t, "RECOVERY", 15*time.Second, func() bool { return len(notes()) >= 2 })
	time.Sleep(time.Second)
	ns := notes()
	if len(ns) != 2 {
		t.Fatalf("want exactly 2 notifications, got %d: %v", len(ns), ns)
	}
	if ns[0]["type"] != "PROBLEM" || ns[0]["status"] != "CRITICAL" || ns[0]["check"] != "flip" || ns[0]["state_type"] != "HARD" ||
		ns[0]["output"] != "CRITICAL: flipped" || ns[1]["type"] != "RECOVERY" || ns[1]["status"] != "OK" {
		t.Errorf("payloads: %v", ns)
	}
	waitFor(t, "exec notifier ran twice", 10*time.Second, func() bool {
		b, _ := os.ReadFile(envOut)
		return strings.Count(string(b), "\n") == 2
	})
	b, _ := os.ReadFile(envOut)
	if want := "PROBLEM flip CRITICAL CRITICAL: flipped\nRECOVERY flip OK OK: flipped\n"; string(b) != want {
		t.Errorf("exec notifier saw:\n%s\nwant:\n%s", b, want)
	}
}

// TestAlertStateSurvivesKill9: a firing alert is not notified again after
// the agent is killed with SIGKILL and restarted; its recovery still is.
func TestAlertStateSurvivesKill9(t *testing.T) {
	dummy := testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_dummy")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.WriteFile(state, []byte("2"), 0o644)
	var mu sync.Mutex
	var types []string
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Notifications []struct{ ID, Type string } `json:"notifications"`
		}
		json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		for _, n := range p.Notifications {
			// Delivery is at-least-once: a kill -9 right after the
			// webhook answered resends it with the same ID, which is
			// how receivers de-duplicate.
			if !seen[n.ID] {
				seen[n.ID] = true
				types = append(types, n.Type)
			}
		}
		mu.Unlock()
	}))
	defer srv.Close()
	got := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(types, " ")
	}
	cfgPath := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfgPath, []byte(`
[agent]
listen = "127.0.0.1:0"
data_dir = "`+dir+`/data"
[[check]]
name = "db"
type = "nagios"
shell = true
command = "`+dummy+` $(cat `+state+`) db"
period = "100ms"
max_attempts = 1
[[sink]]
type = "alerter"
group_wait = "50ms"
[[sink.notifier]]
name = "hook"
type = "webhook"
url = "`+srv.URL+`"
`), 0o644)
	p := startAgent(t, cfgPath)
	waitFor(t, "PROBLEM", 15*time.Second, func() bool { return got() == "PROBLEM" })
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	startAgent(t, cfgPath)
	time.Sleep(2 * time.Second) // still CRITICAL, many results processed
	if g := got(); g != "PROBLEM" {
		t.Fatalf("after kill -9 and restart: %q, want only the first PROBLEM", g)
	}
	os.WriteFile(state, []byte("0"), 0o644)
	waitFor(t, "RECOVERY", 15*time.Second, func() bool { return got() == "PROBLEM RECOVERY" })
	time.Sleep(500 * time.Millisecond)
	if g := got(); g != "PROBLEM RECOVERY" {
		t.Errorf("notifications: %q", g)
	}
}
