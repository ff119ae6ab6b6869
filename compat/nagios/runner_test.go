package nagios

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/testutil"
)

const pluginDir = "/usr/lib/nagios/plugins"

func plugin(t testing.TB, name string) string {
	t.Helper()
	return testutil.RequireBinary(t, filepath.Join(pluginDir, name))
}

func newType(t testing.TB, opts Options) *Type {
	t.Helper()
	typ, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

// run prepares and runs one nagios check.
func run(t testing.TB, typ *Type, s Settings, target string, timeout time.Duration) model.Result {
	t.Helper()
	c := &model.Check{Name: "test", Type: "nagios", Target: target, Settings: &s}
	r, err := typ.Prepare(c)
	if err != nil {
		t.Fatalf("prepare %q: %v", s.Command, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.Run(ctx, nil)
}

func metric(t *testing.T, r model.Result, name string) model.Metric {
	t.Helper()
	for _, m := range r.Metrics {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no metric %q in %+v", name, r.Metrics)
	return model.Metric{}
}

func TestCheckDummyStatuses(t *testing.T) {
	p := plugin(t, "check_dummy")
	typ := newType(t, Options{})
	for code, st := range []model.Status{model.OK, model.Warning, model.Critical, model.Unknown} {
		r := run(t, typ, Settings{Command: fmt.Sprintf("%s %d 'text with spaces'", p, code)}, "", 5*time.Second)
		if r.Status != st || !strings.Contains(r.Output, "text with spaces") {
			t.Errorf("exit %d: %v %q", code, r.Status, r.Output)
		}
	}
}

func TestCheckLoad(t *testing.T) {
	r := run(t, newType(t, Options{}), Settings{Command: plugin(t, "check_load") + " -w 5,4,3 -c 10,8,6"}, "", 5*time.Second)
	if r.Status != model.OK || !strings.HasPrefix(r.Output, "LOAD OK") {
		t.Fatalf("%v %q", r.Status, r.Output)
	}
	for name, th := range map[string][2]string{"load1": {"5.000", "10.000"}, "load5": {"4.000", "8.000"}, "load15": {"3.000", "6.000"}} {
		m := metric(t, r, name)
		if m.Value.Kind() != model.KindFloat || m.Warn != th[0] || m.Crit != th[1] || m.Min == nil || *m.Min != 0 {
			t.Errorf("%s: %+v", name, m)
		}
	}
}

func TestCheckDisk(t *testing.T) {
	r := run(t, newType(t, Options{}), Settings{Command: plugin(t, "check_disk") + " -w 10% -c 5% -p /"}, "", 5*time.Second)
	if r.Status == model.Unknown || !strings.HasPrefix(r.Output, "DISK") {
		t.Fatalf("%v %q", r.Status, r.Output)
	}
	m := metric(t, r, "/")
	if m.Max == nil || *m.Max <= 0 || m.Warn == "" || m.Crit == "" {
		t.Errorf("/ metric: %+v", m)
	}
}

func TestCheckProcsUsersSwap(t *testing.T) {
	typ := newType(t, Options{})
	r := run(t, typ, Settings{Command: plugin(t, "check_procs") + " -w 100000 -c 200000"}, "", 5*time.Second)
	if r.Status != model.OK || metric(t, r, "procs").Value.Int() < 1 {
		t.Errorf("check_procs: %v %q %+v", r.Status, r.Output, r.Metrics)
	}
	r = run(t, typ, Settings{Command: plugin(t, "check_procs") + " -c 1:1 -C no-such-process-xyz"}, "", 5*time.Second)
	if r.Status != model.Critical {
		t.Errorf("check_procs for a missing process: %v %q", r.Status, r.Output)
	}
	r = run(t, typ, Settings{Command: plugin(t, "check_users") + " -w 1000 -c 2000"}, "", 5*time.Second)
	if r.Status != model.OK || !strings.HasPrefix(r.Output, "USERS OK") {
		t.Errorf("check_users: %v %q", r.Status, r.Output)
	}
	metric(t, r, "users")
	r = run(t, typ, Settings{Command: plugin(t, "check_swap") + " -w 20% -c 10%"}, "", 5*time.Second)
	if !strings.HasPrefix(r.Output, "SWAP") {
		t.Errorf("check_swap: %v %q", r.Status, r.Output)
	}
	metric(t, r, "swap")
}

func TestCheckTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-recon-test\r\n"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	typ := newType(t, Options{})
	s := Settings{Command: plugin(t, "check_tcp") + " -H $HOSTADDRESS$ -p $ARG1$ -e SSH", Args: []string{strconv.Itoa(port)}}
	r := run(t, typ, s, "127.0.0.1", 5*time.Second)
	if r.Status != model.OK || !strings.Contains(r.Output, "TCP OK") {
		t.Fatalf("open port: %v %q %q", r.Status, r.Output, r.LongOutput)
	}
	metric(t, r, "time")
	ln.Close()
	r = run(t, typ, s, "127.0.0.1", 5*time.Second)
	if r.Status != model.Critical {
		t.Errorf("closed port: %v %q", r.Status, r.Output)
	}
}

func TestCheckHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "<html>recon is healthy</html>")
	}))
	defer srv.Close()
	u := srv.Listener.Addr().(*net.TCPAddr)
	typ := newType(t, Options{})
	p := plugin(t, "check_http")
	r := run(t, typ, Settings{Command: fmt.Sprintf("%s -H %s -p %d -u / -s healthy", p, u.IP, u.Port)}, "", 5*time.Second)
	if r.Status != model.OK || !strings.Contains(r.Output, "200 OK") {
		t.Fatalf("%v %q %q", r.Status, r.Output, r.LongOutput)
	}
	if m := metric(t, r, "time"); m.Unit != "s" {
		t.Errorf("time unit %q", m.Unit)
	}
	if m := metric(t, r, "size"); m.Unit != "B" || m.Value.Int() <= 0 {
		t.Errorf("size %+v", m)
	}
	r = run(t, typ, Settings{Command: fmt.Sprintf("%s -H %s -p %d -u / -s absent-string", p, u.IP, u.Port)}, "", 5*time.Second)
	if r.Status != model.Critical {
		t.Errorf("missing body string: %v %q", r.Status, r.Output)
	}
	r = run(t, typ, Settings{Command: fmt.Sprintf("%s -H %s -p %d -u /missing", p, u.IP, u.Port)}, "", 5*time.Second)
	if r.Status == model.OK {
		t.Errorf("404 reported OK: %q", r.Output)
	}
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "plugin.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie is dead for our purposes.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	script := writeScript(t, "sleep 600 &\necho $! > "+pidFile+"\necho 'started child'\nwait\n")
	start := time.Now()
	r := run(t, newType(t, Options{}), Settings{Command: script}, "", 300*time.Millisecond)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("run took %v after a 300ms timeout", took)
	}
	if r.Status != model.Unknown || !strings.Contains(r.Output, "timed out") {
		t.Errorf("%v %q", r.Status, r.Output)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("child sleep %d survived the timeout", pid)
	}
}

func TestLeftoverChildrenKilledAfterExit(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	// The child keeps stdout open; without the group kill this would hang.
	script := writeScript(t, "sleep 600 &\necho $! > "+pidFile+"\necho 'OK - done|x=1'\nexit 0\n")
	start := time.Now()
	r := run(t, newType(t, Options{}), Settings{Command: script}, "", 10*time.Second)
	if time.Since(start) > 3*time.Second {
		t.Error("run waited for the background child")
	}
	if r.Status != model.OK || r.Output != "OK - done" || len(r.Metrics) != 1 {
		t.Errorf("%v %q %+v", r.Status, r.Output, r.Metrics)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	time.Sleep(50 * time.Millisecond)
	if pid > 0 && alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("background child survived")
	}
}

func TestFailuresAreUnknownWithReason(t *testing.T) {
	typ := newType(t, Options{})
	noexec := filepath.Join(t.TempDir(), "check_noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\necho hi\n"), 0o644)
	cases := []struct {
		name, cmd, want string
	}{
		{"exit 5", writeScript(t, "echo hi\nexit 5\n"), "Return code of 5"},
		{"signal", writeScript(t, "kill -9 $$\n"), "killed by signal 9"},
		{"missing", "/nonexistent/check_x", "could not execute /nonexistent/check_x: no such file"},
		{"not executable", noexec, "could not execute " + noexec + ": permission denied"},
	}
	for _, c := range cases {
		r := run(t, typ, Settings{Command: c.cmd}, "", 5*time.Second)
		if r.Status != model.Unknown || !strings.Contains(r.Output, c.want) {
			t.Errorf("%s: %v %q", c.name, r.Status, r.Output)
		}
	}
	// stderr explains an UNKNOWN.
	r := run(t, typ, Settings{Command: writeScript(t, "echo 'bad config' >&2\nexit 3\n")}, "", 5*time.Second)
	if r.Status != model.Unknown || !strings.Contains(r.LongOutput, "stderr: bad config") {
		t.Errorf("stderr not shown: %q %q", r.Output, r.LongOutput)
	}
}

func TestGarbagePerfdataKeepsStatus(t *testing.T) {
	r := run(t, newType(t, Options{}), Settings{Command: writeScript(t, "echo 'WARNING - meh | ok=1 junk=abc =5'\nexit 1\n")}, "", 5*time.Second)
	if r.Status != model.Warning || r.Output != "WARNING - meh" || len(r.Metrics) != 1 {
		t.Fatalf("%v %q %+v", r.Status, r.Output, r.Metrics)
	}
	if !strings.Contains(r.LongOutput, `perfdata "junk=abc": invalid value`) || !strings.Contains(r.LongOutput, "empty label") {
		t.Errorf("parse notes missing: %q", r.LongOutput)
	}
}

func TestOutputCapped(t *testing.T) {
	r := run(t, newType(t, Options{OutputLimit: 1000}), Settings{Command: writeScript(t, "echo 'OK - big'\nhead -c 200000 /dev/zero | tr '\\0' x\nexit 0\n")}, "", 5*time.Second)
	if r.Status != model.OK || !strings.Contains(r.LongOutput, "output truncated: 199009 bytes") {
		t.Errorf("%v %q", r.Status, r.LongOutput[max(0, len(r.LongOutput)-200):])
	}
}

func TestShellAndMacros(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "resource.cfg")
	os.WriteFile(res, []byte("# comment\n$USER1$="+pluginDir+"\n\n$USER3$=secret value\n"), 0o600)
	typ := newType(t, Options{ResourceFile: res})
	dummy := plugin(t, "check_dummy")
	r := run(t, typ, Settings{Command: "$USER1$/check_dummy 0 '$HOSTADDRESS$ $SERVICEDESC$ $ARG1$ $$5'", Args: []string{"a1"}}, "10.0.0.1", 5*time.Second)
	if r.Status != model.OK || r.Output != "OK: 10.0.0.1 test a1 $5" {
		t.Errorf("macros: %v %q", r.Status, r.Output)
	}
	r = run(t, typ, Settings{Command: dummy + " 0 'a=$ARG1$ b=$ARG2$'", Args: []string{"x"}}, "", 5*time.Second)
	if r.Output != "OK: a=x b=" {
		t.Errorf("missing $ARG2$ must expand to nothing, as in Nagios: %q", r.Output)
	}
	r = run(t, typ, Settings{Command: "echo 'OK - piped' | cat; exit 0", Shell: true}, "", 5*time.Second)
	if r.Status != model.OK || r.Output != "OK - piped" {
		t.Errorf("shell: %v %q", r.Status, r.Output)
	}
	bad := []struct {
		s    Settings
		want string
	}{
		{Settings{Command: "echo a | cat"}, `"|" needs a shell`},
		{Settings{Command: "echo $HOME"}, `"$" needs a shell`},
		{Settings{Command: "$USER2$/check_x"}, "$USER2$ is not defined"},
		{Settings{Command: "check_x $FOO$"}, "unknown macro $FOO$"},
		{Settings{Command: "check_x 'open"}, "unterminated single quote"},
		{Settings{Command: "  "}, "command is required"},
	}
	for _, b := range bad {
		_, err := typ.Prepare(&model.Check{Name: "x", Settings: &b.s})
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: %v, want %q", b.s.Command, err, b.want)
		}
	}
}

func TestReadResourceFileErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.cfg")
	os.WriteFile(p, []byte("$USER1$=/x\nbogus line\n"), 0o600)
	if _, err := ReadResourceFile(p); err == nil || !strings.Contains(err.Error(), p+":2:") {
		t.Errorf("got %v", err)
	}
	os.WriteFile(p, []byte("$USER300$=/x\n"), 0o600)
	if _, err := ReadResourceFile(p); err == nil {
		t.Error("USER300 accepted")
	}
}

func TestSplitCommand(t *testing.T) {
	cases := map[string][]string{
		`a b  c`:                {"a", "b", "c"},
		`a 'b c' "d e"`:         {"a", "b c", "d e"},
		`a "x\"y" 'it''s'`:      {"a", `x"y`, "its"},
		`a b\ c`:                {"a", "b c"},
		`check -r 'a|b;c'`:      {"check", "-r", "a|b;c"},
		`check -u /x?y=1&z=2`:   nil, // & needs quoting
		`check -u '/x?y=1&z=2'`: {"check", "-u", "/x?y=1&z=2"},
		`c ""`:                  {"c", ""},
	}
	for in, want := range cases {
		got, err := SplitCommand(in)
		if want == nil {
			if err == nil {
				t.Errorf("%q: accepted as %q", in, got)
			}
			continue
		}
		if err != nil || strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
}

func FuzzSplitCommand(f *testing.F) {
	f.Add(`a 'b c' "d\"e" f\ g`)
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitCommand(s)
		if err == nil && len(words) == 0 {
			t.Fatal("no words and no error")
		}
	})
}

func FuzzExpandMacros(f *testing.F) {
	f.Add("$USER1$/check $HOSTADDRESS$ $ARG1$ $$ $X")
	f.Fuzz(func(t *testing.T, s string) {
		m := Macros{User: map[int]string{1: "/p"}, HostAddress: "h", Args: []string{"a"}}
		m.Expand(s)
	})
}

// Benchmarks: the runner against a bare os/exec of the same plugin at the
// same 2-way concurrency. SPEC §13: the runner must reach >= 90% of raw.
func BenchmarkExecCheckDummy(b *testing.B) {
	p := plugin(b, "check_dummy")
	typ := newType(b, Options{})
	r, err := typ.Prepare(&model.Check{Name: "d", Settings: &Settings{Command: p + " 0 ok"}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(1) // GOMAXPROCS=2 → 2 goroutines
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if res := r.Run(ctx, nil); res.Status != model.OK {
				b.Fatalf("%v %q", res.Status, res.Output)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
}

func BenchmarkRawOSExecCheckDummy(b *testing.B) {
	p := plugin(b, "check_dummy")
	b.SetParallelism(1)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out, err := exec.Command(p, "0", "ok").Output()
			if err != nil || len(out) == 0 {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
}
