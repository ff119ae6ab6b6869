package nagios

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

func newType(t testing.TB, opts Options) *Type {
	t.Helper()
	typ, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

// prepare prepares one nagios check with the given settings.
func prepare(t testing.TB, typ *Type, s Settings, target string) *runner {
	t.Helper()
	r, err := typ.Prepare(&model.Check{Name: "test", Type: "nagios", Target: target, Settings: &s})
	if err != nil {
		t.Fatalf("prepare %q: %v", s.Command, err)
	}
	return r.(*runner)
}

// run prepares and runs one nagios check with a timeout.
func run(t testing.TB, typ *Type, s Settings, target string, timeout time.Duration) model.Result {
	t.Helper()
	r := prepare(t, typ, s, target)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.Run(ctx, nil)
}

// writeScript writes an executable shell script plugin into a temp dir.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "plugin.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// readPID reads a PID a script wrote, waiting briefly for it to appear.
func readPID(t *testing.T, file string) int {
	t.Helper()
	for range 200 {
		if b, err := os.ReadFile(file); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file %s: %q", file, b)
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid file %s never written", file)
	return 0
}

// requireGone fails when pid is still alive shortly after the run, and
// kills it so that no test leaks a process either.
func requireGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("%s (pid %d) survived", what, pid)
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	script := writeScript(t, fmt.Sprintf("echo $$ > %[1]s/self.pid\nsleep 600 &\necho $! > %[1]s/child.pid\necho 'started child | partial=1'\nwait\n", dir))
	r := run(t, newType(t, Options{}), Settings{Command: script}, "", 300*time.Millisecond)
	if r.Status != model.Unknown || r.Output != "(Plugin timed out after 300ms; its process group was killed)" {
		t.Errorf("%v %q", r.Status, r.Output)
	}
	// What it printed is kept as text, but a killed plugin's perfdata is
	// not trusted as metrics.
	if !strings.Contains(r.LongOutput, "plugin output before it was stopped:\nstarted child | partial=1") || len(r.Metrics) != 0 {
		t.Errorf("partial output: %q %+v", r.LongOutput, r.Metrics)
	}
	requireGone(t, readPID(t, filepath.Join(dir, "child.pid")), "forked sleep 600")
	requireGone(t, readPID(t, filepath.Join(dir, "self.pid")), "the plugin")
}

// A group that ignores SIGTERM is killed with SIGKILL after the grace.
func TestTimeoutSIGKILLAfterGrace(t *testing.T) {
	dir := t.TempDir()
	script := writeScript(t, fmt.Sprintf("trap '' TERM\nsleep 600 &\necho $! > %s/child.pid\nwhile :; do wait; done\n", dir))
	start := time.Now()
	r := run(t, newType(t, Options{}), Settings{Command: script}, "", 200*time.Millisecond)
	if r.Status != model.Unknown || !strings.Contains(r.Output, "timed out") {
		t.Errorf("%v %q", r.Status, r.Output)
	}
	if took := time.Since(start); took < 200*time.Millisecond+killGrace {
		t.Errorf("returned after %v: SIGKILL came before the grace ended", took)
	}
	requireGone(t, readPID(t, filepath.Join(dir, "child.pid")), "sleep ignoring SIGTERM")
}

// negate is a real plugin that forks the plugin it wraps; a timeout kills
// both.
func TestTimeoutKillsWrappedPlugin(t *testing.T) {
	negate := plugin(t, "negate")
	dir := t.TempDir()
	inner := writeScript(t, fmt.Sprintf("echo $$ > %s/inner.pid\nexec sleep 600\n", dir))
	r := run(t, newType(t, Options{}), Settings{Command: negate + " -t 600 " + inner}, "", 300*time.Millisecond)
	if r.Status != model.Unknown || !strings.Contains(r.Output, "timed out after 300ms") {
		t.Errorf("%v %q", r.Status, r.Output)
	}
	requireGone(t, readPID(t, filepath.Join(dir, "inner.pid")), "plugin run by negate")
}

func TestLeftoverChildrenKilledAfterExit(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	// The child inherits stdout; without the group kill reading would
	// wait for it for 600 s.
	script := writeScript(t, "sleep 600 &\necho $! > "+pidFile+"\necho 'OK - done|x=1'\nexit 0\n")
	start := time.Now()
	r := run(t, newType(t, Options{}), Settings{Command: script}, "", 10*time.Second)
	if time.Since(start) > 5*time.Second {
		t.Error("the run waited for the background child")
	}
	if r.Status != model.OK || r.Output != "OK - done" || len(r.Metrics) != 1 || r.LongOutput != "" {
		t.Errorf("%v %q %q %+v", r.Status, r.Output, r.LongOutput, r.Metrics)
	}
	requireGone(t, readPID(t, pidFile), "background child")
}

// A descendant that leaves the process group (setsid) cannot be killed
// with it; it must not hold the run open either.
func TestEscapedChildDoesNotBlock(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "escaped.pid")
	// The plugin waits until its child has left the group, else the group
	// kill at its exit could catch the child before setsid.
	script := writeScript(t, fmt.Sprintf("setsid sh -c 'echo $$ > %[1]s.tmp; mv %[1]s.tmp %[1]s; exec sleep 600' &\n"+
		"while [ ! -e %[1]s ]; do sleep 0.01; done\necho 'OK - daemonized'\n", pidFile))
	r := run(t, newType(t, Options{}), Settings{Command: script}, "", 10*time.Second)
	pid := readPID(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if r.Status != model.OK || r.Output != "OK - daemonized" {
		t.Errorf("%v %q", r.Status, r.Output)
	}
	if !strings.Contains(r.LongOutput, "left the plugin's process group kept its output open") {
		t.Errorf("no note about the escaped process: %q", r.LongOutput)
	}
}

func TestFailuresAreUnknownWithReason(t *testing.T) {
	typ := newType(t, Options{})
	dir := t.TempDir()
	noexec := filepath.Join(dir, "check_noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		s       Settings
		output  string
		long    string // substring of the long output
		metrics int
	}{
		{"exit 5 keeps what it measured", Settings{Command: writeScript(t, "echo 'OK - x | a=1'\necho more\nexit 5\n")},
			"(Return code of 5 from %s is out of bounds)", "more\nplugin output: OK - x", 1},
		{"exit 255", Settings{Command: writeScript(t, "exit 255\n")}, "(Return code of 255 from %s is out of bounds)", "", 0},
		{"SIGKILL", Settings{Command: writeScript(t, "echo 'before | a=1'\nkill -9 $$\n")},
			"(Plugin %s killed by signal 9: killed)", "plugin output before it was stopped:\nbefore | a=1", 0},
		{"SIGTERM", Settings{Command: writeScript(t, "kill -TERM $$\n")}, "(Plugin %s killed by signal 15: terminated)", "", 0},
		{"missing", Settings{Command: "/nonexistent/check_x -w 1"}, "(could not execute %s: no such file or directory)", "", 0},
		{"not executable", Settings{Command: noexec}, "(could not execute %s: permission denied)", "", 0},
		{"directory", Settings{Command: dir}, "(could not execute %s: permission denied)", "", 0},
		{"not in PATH", Settings{Command: "check_nonexistent_xyz"}, "(could not execute %s: not found in PATH=" + defaultPath + ")", "", 0},
		{"shell: not found", Settings{Command: "/nonexistent/check_x; exit $?", Shell: true},
			"(Return code of 127 from %s is out of bounds; the shell did not find the plugin)", "stderr:\n/bin/sh: 1: /nonexistent/check_x: not found", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := prepare(t, typ, c.s, "")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res := r.Run(ctx, nil)
			want := fmt.Sprintf(c.output, r.name)
			if res.Status != model.Unknown || !strings.HasPrefix(res.Output, want) || !strings.Contains(res.LongOutput, c.long) || len(res.Metrics) != c.metrics {
				t.Errorf("got %v %q\nlong %q\nmetrics %+v\nwant output %q, long output containing %q", res.Status, res.Output, res.LongOutput, res.Metrics, want, c.long)
			}
		})
	}
}

// A script without a #! line runs with /bin/sh, as execvp(3) does it.
func TestScriptWithoutShebang(t *testing.T) {
	p := filepath.Join(t.TempDir(), "check_noshebang")
	if err := os.WriteFile(p, []byte("echo \"WARNING - no shebang, args $1 $2 | n=$#\"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := run(t, newType(t, Options{}), Settings{Command: p + " a 'b c'"}, "", 5*time.Second)
	if r.Status != model.Warning || r.Output != "WARNING - no shebang, args a b c" || len(r.Metrics) != 1 || r.Metrics[0].Value.Int() != 2 {
		t.Errorf("%v %q %+v", r.Status, r.Output, r.Metrics)
	}
}

// stderr is shown when stdout has no text or the result is UNKNOWN, and
// not on a normal result with output.
func TestStderrPolicy(t *testing.T) {
	typ := newType(t, Options{})
	cases := []struct {
		body   string
		status model.Status
		shown  bool
	}{
		{"echo 'OK - fine'\necho 'deprecated option' >&2\nexit 0\n", model.OK, false},
		{"echo 'CRITICAL - down'\necho 'noise' >&2\nexit 2\n", model.Critical, false},
		{"echo 'cannot parse config' >&2\nexit 2\n", model.Critical, true},
		{"echo 'UNKNOWN - bad args'\necho 'usage: check_x -w N' >&2\nexit 3\n", model.Unknown, true},
		{"echo 'boom' >&2\nexit 9\n", model.Unknown, true},
	}
	for _, c := range cases {
		r := run(t, typ, Settings{Command: writeScript(t, c.body)}, "", 5*time.Second)
		has := strings.Contains(r.LongOutput, "stderr:\n")
		if r.Status != c.status || has != c.shown {
			t.Errorf("%q: %v, stderr shown %v (want %v, %v): %q", c.body, r.Status, has, c.status, c.shown, r.LongOutput)
		}
	}
	r := run(t, typ, Settings{Command: writeScript(t, "echo 'cannot parse config' >&2\nexit 2\n")}, "", 5*time.Second)
	if r.Output != "(No output on stdout)" || r.LongOutput != "stderr:\ncannot parse config" {
		t.Errorf("%q %q", r.Output, r.LongOutput)
	}
}

func TestOutputCapped(t *testing.T) {
	const limit = 1000
	typ := newType(t, Options{OutputLimit: limit})
	// The cut at the limit falls inside the value of "cut": it must not
	// be recorded as a shorter number.
	head := "OK - big | a=1 "
	pad := strings.Repeat("p", limit-len(head)-len("=1 cut=123"))
	line := head + pad + "=1 cut=123456789 later=5\n"
	data := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(data, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	body := "cat " + data + "\nhead -c 200000 /dev/zero >&2\nexit 0\n"
	r := run(t, typ, Settings{Command: writeScript(t, body)}, "", 5*time.Second)
	if r.Status != model.OK || r.Output != "OK - big" {
		t.Fatalf("%v %q", r.Status, r.Output)
	}
	var names []string
	for _, m := range r.Metrics {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, []string{"a", pad}) {
		t.Errorf("metrics %q", names)
	}
	for _, want := range []string{`stdout cut inside "cut=123"; that part was not parsed`,
		fmt.Sprintf("stdout truncated: %d bytes kept, %d beyond the limit dropped", limit, len(line)-limit),
		fmt.Sprintf("stderr truncated: %d bytes kept, %d beyond the limit dropped", limit, 200000-limit)} {
		if !strings.Contains(r.LongOutput, want) {
			t.Errorf("long output lacks %q:\n%q", want, r.LongOutput)
		}
	}
	// The per-check setting overrides the type's limit.
	r = run(t, typ, Settings{Command: writeScript(t, body), OutputLimit: 1 << 20}, "", 5*time.Second)
	if len(r.Metrics) != 4 || r.LongOutput != "" || r.Metrics[2].Value.Int() != 123456789 {
		t.Errorf("output_limit = 1 MiB: %d metrics, %q", len(r.Metrics), r.LongOutput)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("RECON_TEST_SECRET", "must-not-leak")
	typ := newType(t, Options{})
	env := func(s Settings) []string {
		r := run(t, typ, s, "", 5*time.Second)
		if r.Status != model.OK {
			t.Fatalf("%v %q %q", r.Status, r.Output, r.LongOutput)
		}
		lines := strings.Split(strings.TrimSpace(r.Output+"\n"+r.LongOutput), "\n")
		slices.Sort(lines)
		return lines
	}
	got := env(Settings{Command: "/usr/bin/env"})
	if want := MinimalEnv(); !slices.Equal(got, []string{want[1], want[2], want[0]}) {
		t.Errorf("default environment %q", got)
	}
	got = env(Settings{Command: "/usr/bin/env", Env: map[string]string{"FOO": "bar baz", "LANG": "de_DE.UTF-8"}})
	if !slices.Equal(got, []string{"FOO=bar baz", "LANG=de_DE.UTF-8", "LC_ALL=C", "PATH=" + defaultPath}) {
		t.Errorf("with env: %q", got)
	}
	// A bare command name is looked up in the plugin's PATH.
	dummy := plugin(t, "check_dummy")
	r := run(t, typ, Settings{Command: "check_dummy 1 found", Env: map[string]string{"PATH": filepath.Dir(dummy)}}, "", 5*time.Second)
	if r.Status != model.Warning || r.Output != "WARNING: found" {
		t.Errorf("PATH lookup: %v %q", r.Status, r.Output)
	}
	if _, err := typ.Prepare(&model.Check{Name: "x", Settings: &Settings{Command: "/bin/true", Env: map[string]string{"A=B": "x"}}}); err == nil {
		t.Error("env name with '=' accepted")
	}
}

// Commands relative to the defining file's directory resolve against it.
func TestRelativeCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plugins", "check_rel"), []byte("#!/bin/sh\necho 'OK - relative'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := newType(t, Options{}).Prepare(&model.Check{Name: "rel", Dir: dir, Settings: &Settings{Command: "./plugins/check_rel"}})
	if err != nil {
		t.Fatal(err)
	}
	if res := r.Run(context.Background(), nil); res.Status != model.OK || res.Output != "OK - relative" {
		t.Errorf("%v %q", res.Status, res.Output)
	}
}

// MaxConcurrent bounds the plugins running at once: a plugin that finds
// another one inside its critical section reports CRITICAL.
func TestConcurrencyLimit(t *testing.T) {
	dir := t.TempDir()
	script := writeScript(t, fmt.Sprintf("mkdir %[1]s/lock 2>/dev/null || { echo 'CRITICAL - overlap'; exit 2; }\nsleep 0.05\nrmdir %[1]s/lock\necho OK\n", dir))
	typ := newType(t, Options{MaxConcurrent: 1})
	r := prepare(t, typ, Settings{Command: script}, "")
	var wg sync.WaitGroup
	results := make([]model.Result, 6)
	for i := range results {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			results[i] = r.Run(ctx, nil)
		})
	}
	wg.Wait()
	for i, res := range results {
		if res.Status != model.OK {
			t.Errorf("run %d: %v %q", i, res.Status, res.Output)
		}
	}

	// A run that gets no slot before its timeout says so; it never started.
	started := filepath.Join(dir, "started")
	hog := prepare(t, typ, Settings{Command: writeScript(t, "touch "+started+"\nsleep 600\n")}, "")
	hogCtx, stopHog := context.WithCancel(context.Background())
	hogDone := make(chan model.Result)
	go func() { hogDone <- hog.Run(hogCtx, nil) }()
	for _, err := os.Stat(started); err != nil; _, err = os.Stat(started) {
		time.Sleep(5 * time.Millisecond)
	}
	res := run(t, typ, Settings{Command: script}, "", 100*time.Millisecond)
	if res.Status != model.Unknown || !strings.Contains(res.Output, "all 1 plugin slots ([nagios] max_concurrent) stayed busy until the timeout") {
		t.Errorf("no slot: %v %q", res.Status, res.Output)
	}
	stopHog()
	if h := <-hogDone; h.Status != model.Unknown || !strings.Contains(h.Output, "cancelled") {
		t.Errorf("cancelled run: %v %q", h.Status, h.Output)
	}
}

// A run whose context is already done starts nothing.
func TestDoneContextStartsNothing(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	r := prepare(t, newType(t, Options{}), Settings{Command: writeScript(t, "touch "+marker+"\necho OK\n")}, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := r.Run(ctx, nil)
	if res.Status != model.Unknown || !strings.Contains(res.Output, "not started") {
		t.Errorf("%v %q", res.Status, res.Output)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the plugin ran")
	}
}

// Type.Exec is what the NRPE server calls: raw execution and result.
func TestTypeExec(t *testing.T) {
	typ := newType(t, Options{MaxConcurrent: 2, OutputLimit: 10})
	argv, err := typ.CommandLine("$USER1$/check_dummy $ARG1$ '$ARG2$'", false, &Macros{Args: []string{"2"}})
	if err == nil {
		t.Fatalf("undefined $USER1$ accepted: %q", argv)
	}
	argv, err = typ.CommandLine(plugin(t, "check_dummy")+" $ARG1$ '$ARG2$'", false, &Macros{Args: []string{"2"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	x, res := typ.Exec(ctx, argv, ExecOptions{})
	if x.ExitCode != 2 || string(x.Stdout) != "CRITICAL: " || x.StdoutDropped != 1 || res.Status != model.Critical || res.Duration <= 0 {
		t.Errorf("%+v %+v", x, res)
	}
}
