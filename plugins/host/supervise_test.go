package host

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/scheduler"
)

// TestMisbehavingPluginsUnderTheScheduler runs, in the real scheduler, a
// healthy plugin check and a built-in check next to plugins that exit
// mid-run, hang, panic, or do not match their checksum. The bad ones
// report UNKNOWN with the reason and are restarted with backoff; the good
// ones keep running on time; stopping everything does not hang.
func TestMisbehavingPluginsUnderTheScheduler(t *testing.T) {
	h, rec := newTestHost(t, Options{MinBackoff: slow * 150 * time.Millisecond, MaxBackoff: slow * 600 * time.Millisecond, StopTimeout: time.Second})
	typ := NewCheckType(h)
	const period, timeout = slow * 300 * time.Millisecond, slow * 200 * time.Millisecond
	checks := []*model.Check{
		testPluginCheck("healthy", "healthy"),
		testPluginCheck("exit", "exit"),
		testPluginCheck("hang", "hang"),
		testPluginCheck("panic", "panic"),
		pluginCheck("checksum", selfPath, strings.Repeat("ab", 32), nil, func(s *Settings) {
			s.Env = map[string]string{testPluginEnv: "healthy"}
		}),
	}
	builtin := &model.Check{ID: model.CheckID("test", "builtin"), Name: "builtin", Type: "builtin", MaxAttempts: 1}
	checks = append(checks, builtin)
	var jobs []scheduler.Job
	for _, c := range checks {
		c.Period, c.Timeout, c.RetryPeriod = period, timeout, period
		if c == builtin {
			jobs = append(jobs, scheduler.Job{Check: c, Runner: checktype.Func(func(context.Context, *model.Result) model.Result {
				return model.Result{Status: model.OK, Output: "built-in"}
			})})
			continue
		}
		r, err := typ.Prepare(c)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		jobs = append(jobs, scheduler.Job{Check: c, Runner: r})
		if c.Name == "healthy" {
			// Start its process first: the first start of a plugin may
			// take longer than this test's short timeout on a busy machine.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, _, err := r.(*Runner).prepared(ctx)
			cancel()
			if err != nil {
				t.Fatalf("healthy warm-up: %v", err)
			}
		}
	}

	var mu sync.Mutex
	byCheck := map[string][]model.Result{}
	sched := scheduler.New(scheduler.Options{Agent: "test", Emit: func(_ context.Context, r model.Result) error {
		mu.Lock()
		byCheck[r.Check] = append(byCheck[r.Check], r)
		mu.Unlock()
		return nil
	}})
	sched.Update(jobs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sched.Run(ctx, time.Second); close(done) }()

	// Watch the hung plugin's processes: each must be killed.
	hungPIDs := map[int]bool{}
	runFor := slow * 4 * time.Second
	if testing.Short() {
		runFor = slow * 2500 * time.Millisecond
	}
	end := time.Now().Add(runFor)
	for time.Now().Before(end) {
		for _, st := range h.Stats() {
			if st.Running && strings.Contains(st.Name, "hang") {
				hungPIDs[st.PID] = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stats := map[string]Stats{}
	for _, st := range h.Stats() {
		stats[st.Name] = st
	}
	sched.Update(nil) // removes every check, closing its runner
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("scheduler did not stop within 5s: a plugin blocked the agent")
	}
	mu.Lock()
	defer mu.Unlock()

	// On time: every slot of the healthy checks was run.
	wantRuns := int(runFor/period) - 1
	for _, name := range []string{"healthy", "builtin"} {
		rs := byCheck[name]
		if len(rs) < wantRuns {
			t.Errorf("%s: %d results in %v, want >= %d (one per %v)", name, len(rs), runFor, wantRuns, period)
		}
		for i, r := range rs {
			if r.Status != model.OK {
				t.Errorf("%s run %d: %v %q", name, i, r.Status, r.Output)
			}
			if i > 0 {
				// A skipped slot shows as a gap of two periods; a busy
				// machine may delay a dispatch, but not by a whole period.
				if gap := r.Time.Sub(rs[i-1].Time); gap >= 2*period-10*time.Millisecond {
					t.Errorf("%s: %v between runs %d and %d (period %v): a run was missed", name, gap, i-1, i, period)
				}
			}
		}
	}
	if rs := byCheck["healthy"]; len(rs) > 0 {
		// The plugin got the check's timeout minus the host's margin.
		if m, ok := metric(rs[len(rs)-1], "timeout_ms"); !ok || m.Value.Int() < slow*150 || m.Value.Int() > slow*200 {
			t.Errorf("healthy plugin was told timeout_ms=%v, want 150..200", m.Value)
		}
	}

	expect := []struct {
		check  string
		reason string
		plugin string
	}{
		{"exit", "exited (exit status 2): test plugin: exiting in the middle of a run", "test-exit"},
		{"hang", "hung: no answer to Run within", "test-hang"},
		{"panic", "exited (exit status 2): panic: boom from the test plugin", "test-panic"},
		{"checksum", "checksum mismatch: " + selfPath + " has sha256 " + selfSum + ", the configuration pins abab", "test"},
	}
	for _, e := range expect {
		rs := byCheck[e.check]
		if len(rs) < wantRuns {
			t.Errorf("%s: only %d results, want >= %d: a failing plugin must not stop its check from reporting", e.check, len(rs), wantRuns)
		}
		var sawReason, sawDown int
		for _, r := range rs {
			if r.Status != model.Unknown {
				t.Errorf("%s: %v %q, want UNKNOWN", e.check, r.Status, r.Output)
			}
			if !strings.HasPrefix(r.Output, r.Check) && !strings.HasPrefix(r.Output, "test.toml:") {
				t.Errorf("%s: output %q does not start with the check's location", e.check, r.Output)
			}
			if strings.Contains(r.Output, e.reason) {
				sawReason++
			}
			if strings.Contains(r.Output, "is down: ") && strings.Contains(r.Output, "next start attempt in") {
				sawDown++
			}
			if r.Duration > timeout+slow*300*time.Millisecond {
				t.Errorf("%s: a run took %v (timeout %v)", e.check, r.Duration, timeout)
			}
		}
		if sawReason < 2 {
			t.Errorf("%s: the reason %q appeared in %d of %d results, want >= 2 (restarted and failed again); outputs: %q", e.check, e.reason, sawReason, len(rs), outputs(rs))
		}
		if e.check != "checksum" && sawDown == 0 {
			t.Errorf("%s: no result reported the plugin down during its backoff; outputs: %q", e.check, outputs(rs))
		}
	}
	for name, st := range stats {
		switch {
		case strings.HasPrefix(name, "test-exit"), strings.HasPrefix(name, "test-hang"), strings.HasPrefix(name, "test-panic"):
			if st.Failures < 2 || st.Restarts < 1 {
				t.Errorf("%s: %d failures, %d restarts; want the plugin restarted after failing", name, st.Failures, st.Restarts)
			}
		case name == "test-healthy":
			if st.Failures != 0 || st.Restarts != 0 {
				t.Errorf("healthy plugin: %+v", st)
			}
		}
	}
	// Backoff: the checksum failures are spaced out, not one per run.
	if st := stats[selfName()]; st.Failures == 0 || st.Failures > uint64(len(byCheck["checksum"])) {
		t.Errorf("checksum plugin stats %+v for %d runs", st, len(byCheck["checksum"]))
	}
	if len(hungPIDs) < 2 {
		t.Errorf("saw %d hung plugin processes, want >= 2 (killed and restarted)", len(hungPIDs))
	}
	waitFor(t, 5*time.Second, "every hung plugin process to be killed", func() bool {
		for pid := range hungPIDs {
			if !processGone(pid) {
				return false
			}
		}
		return true
	})
	waitFor(t, 5*time.Second, "every plugin process to stop once its checks are gone", func() bool { return len(h.Stats()) == 0 })
	// The garbage stderr line of the healthy plugin was logged, not fatal;
	// its real log line kept its level and fields.
	if rec.find(`{"@message": 1`, "stream=stderr") == "" {
		t.Errorf("malformed stderr line was not logged as plain text")
	}
	if rec.find("WARN test plugin warming up", "n=3", "plugin=") == "" {
		t.Errorf("the plugin's JSON log line did not keep its level and fields")
	}
	if rec.find("ERROR panic: boom from the test plugin") == "" {
		t.Errorf("the plugin's panic was not logged at ERROR")
	}
}

func selfName() string {
	// The checksum check never starts, so the slot keeps the binary's name.
	for i := len(selfPath) - 1; i >= 0; i-- {
		if selfPath[i] == '/' {
			return selfPath[i+1:]
		}
	}
	return selfPath
}

func outputs(rs []model.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Output)
	}
	return out
}

func TestCloseStopsTheSharedProcess(t *testing.T) {
	h, _ := newTestHost(t, Options{})
	typ := NewCheckType(h)
	a := prepare(t, typ, testPluginCheck("a", "healthy"))
	b := prepare(t, typ, testPluginCheck("b", "healthy"))
	if st := h.Stats(); len(st) != 0 {
		t.Fatalf("Prepare started something: %+v", st)
	}
	for _, r := range []*Runner{a, b} {
		if res := runOnce(r, 10*time.Second); res.Status != model.OK || res.Output != "pong 127.0.0.1" {
			t.Fatalf("%v %q", res.Status, res.Output)
		}
	}
	st := h.Stats()
	if len(st) != 1 || st[0].Users != 2 {
		t.Fatalf("stats %+v: want one process for both checks", st)
	}
	pid := st[0].PID
	a.Close()
	if res := runOnce(b, 10*time.Second); res.Status != model.OK {
		t.Fatalf("b after a closed: %v %q", res.Status, res.Output)
	}
	if processGone(pid) {
		t.Fatal("closing one of two users stopped the process")
	}
	b.Close()
	waitFor(t, 5*time.Second, "the process to stop after its last user closed", func() bool { return processGone(pid) })
	if res := runOnce(b, time.Second); res.Status != model.Unknown || !strings.Contains(res.Output, "removed") {
		t.Errorf("run after Close: %v %q", res.Status, res.Output)
	}
	// Closing the host makes later runs report UNKNOWN instead of
	// starting processes.
	c := prepare(t, typ, testPluginCheck("c", "healthy"))
	h.Close()
	if res := runOnce(c, time.Second); res.Status != model.Unknown || !strings.Contains(res.Output, "plugin host is closed") {
		t.Errorf("run after Host.Close: %v %q", res.Status, res.Output)
	}
}

func TestKindMismatch(t *testing.T) {
	path, sum := example(t, "jsonl")
	h, _ := newTestHost(t, Options{})
	r := prepare(t, NewCheckType(h), pluginCheck("not-a-check", path, sum, nil, nil))
	res := runOnce(r, 10*time.Second)
	if res.Status != model.Unknown || !strings.Contains(res.Output, "does not serve the check service") {
		t.Errorf("%v %q", res.Status, res.Output)
	}
}

func TestStartWaitIsBoundedByTheCheckTimeout(t *testing.T) {
	h, _ := newTestHost(t, Options{})
	r := prepare(t, NewCheckType(h), testPluginCheck("quick", "healthy"))
	// 1ms is not enough to start a process: the run reports that and
	// returns in time; the start goes on and serves the next run.
	start := time.Now()
	res := runOnce(r, time.Millisecond)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("run with a 1ms timeout took %v", d)
	}
	if res.Status != model.Unknown || !strings.Contains(res.Output, "still starting") {
		t.Errorf("%v %q", res.Status, res.Output)
	}
	waitFor(t, 10*time.Second, "the background start", func() bool { st := h.Stats(); return len(st) == 1 && st[0].Running })
	if res := runOnce(r, 5*time.Second); res.Status != model.OK {
		t.Errorf("next run: %v %q", res.Status, res.Output)
	}
}
