package host

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

// runAll runs every runner at once, as a scheduler does with due checks.
func runAll(rs []*Runner, timeout time.Duration) []model.Result {
	out := make([]model.Result, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = runOnce(r, timeout)
		}()
	}
	wg.Wait()
	return out
}

// TestCoalescedRunsShareCalls: runs of many checks of one plugin that are
// due together go in a few RunStream calls, and every check gets its own
// result (its config, its target, its metrics).
func TestCoalescedRunsShareCalls(t *testing.T) {
	h, _ := newTestHost(t, Options{MaxBatch: 64})
	rs := helloRunners(t, NewCheckType(h), 300)
	for round := range 3 {
		for i, res := range runAll(rs, 5*time.Second) {
			want := fmt.Sprintf("%s, host%d", []string{"hi", "hello"}[i%2], i)
			m, _ := metric(res, "answer")
			if res.Status != model.OK || res.Output != want || m.Value.Int() != 42 || res.Duration <= 0 {
				t.Fatalf("round %d result %d: %v %q %+v, want OK %q with answer=42", round, i, res.Status, res.Output, res.Metrics, want)
			}
		}
	}
	st := h.Stats()
	if len(st) != 1 {
		t.Fatalf("stats %+v: want one process", st)
	}
	if st[0].Runs != 900 {
		t.Errorf("%d runs counted, want 900", st[0].Runs)
	}
	// 300 runs at once, three times: coalesced into a fraction of the calls
	// (MaxBatch 64 allows 15).
	if st[0].Calls == 0 || st[0].Calls > 300 {
		t.Errorf("%d calls for %d runs: runs due together were not coalesced", st[0].Calls, st[0].Runs)
	}
	t.Logf("%d runs in %d calls", st[0].Runs, st[0].Calls)
}

// TestSlowTargetHoldsBackNoOne: one RunStream call carries a run whose
// target takes two seconds and fifty fast ones; the fast ones get their
// results at once.
func TestSlowTargetHoldsBackNoOne(t *testing.T) {
	h, _ := newTestHost(t, Options{})
	typ := NewCheckType(h)
	slow := prepare(t, typ, testPluginCheck("slow", "stream"))
	slow.req.Target = "slow"
	var fast []*Runner
	for i := range 50 {
		fast = append(fast, prepare(t, typ, testPluginCheck(fmt.Sprint("fast", i), "stream")))
	}
	// Start the process first so the batch below is not held by its start.
	if res := runOnce(fast[0], 5*time.Second); res.Status != model.OK {
		t.Fatalf("warm-up: %v %q", res.Status, res.Output)
	}
	p, err := slow.proc()
	if err != nil {
		t.Fatal(err)
	}
	b := p.batcher()
	calls0 := b.calls.Load()
	now := time.Now()
	newCall := func(r *Runner) *call {
		return &call{r: r, start: now, deadline: now.Add(5 * time.Second), done: make(chan model.Result, 1)}
	}
	batch := []*call{newCall(slow)}
	for _, r := range fast {
		batch = append(batch, newCall(r))
	}
	b.start(batch, nil)
	for i, c := range batch[1:] {
		select {
		case res := <-c.done:
			if res.Status != model.OK || res.Output != "pong 127.0.0.1" {
				t.Errorf("fast %d: %v %q", i, res.Status, res.Output)
			}
		case <-time.After(time.Second):
			t.Fatalf("fast %d: no result after %v: the slow target held it back", i, time.Since(now))
		}
	}
	select {
	case res := <-batch[0].done:
		if res.Status != model.OK || res.Output != "pong slow" || res.Duration < 2*time.Second {
			t.Errorf("slow: %v %q after %v", res.Status, res.Output, res.Duration)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("slow: no result")
	}
	if n := b.calls.Load() - calls0; n != 1 {
		t.Errorf("%d calls for one batch", n)
	}
}

// TestPluginWithoutRunStreamRunsSingly: a plugin that does not serve
// RunStream gets one Run per check, and is not asked again.
func TestPluginWithoutRunStreamRunsSingly(t *testing.T) {
	h, _ := newTestHost(t, Options{})
	typ := NewCheckType(h)
	rs := prepareN(t, typ, "c", "healthy", 20)
	for range 2 {
		for i, res := range runAll(rs, 5*time.Second) {
			if res.Status != model.OK || res.Output != "pong 127.0.0.1" {
				t.Errorf("run %d: %v %q", i, res.Status, res.Output)
			}
		}
	}
	if st := h.Stats(); len(st) != 1 || st[0].Runs != 40 || st[0].Calls != 40 {
		t.Errorf("stats %+v: want 40 runs in 40 Run calls", st)
	}
}

// TestRunSinglyOption: with RunSingly every run is its own Run call.
func TestRunSinglyOption(t *testing.T) {
	path, sum := example(t, "hello")
	h, _ := newTestHost(t, Options{RunSingly: true})
	typ := NewCheckType(h)
	var rs []*Runner
	for i := range 20 {
		rs = append(rs, prepare(t, typ, pluginCheck(fmt.Sprint("h", i), path, sum, map[string]any{"greeting": "hi"}, nil)))
	}
	for i, res := range runAll(rs, 5*time.Second) {
		if res.Status != model.OK || res.Output != "hi, 127.0.0.1" {
			t.Errorf("run %d: %v %q", i, res.Status, res.Output)
		}
	}
	if st := h.Stats(); len(st) != 1 || st[0].Runs != 20 || st[0].Calls != 20 {
		t.Errorf("stats %+v: want 20 runs in 20 Run calls", st)
	}
}

// TestMalformedRunStreamAnswers: what a plugin sends out of range, twice,
// or not at all never reaches the wrong check; the checks left without an
// answer get UNKNOWN with the reason.
func TestMalformedRunStreamAnswers(t *testing.T) {
	h, _ := newTestHost(t, Options{})
	typ := NewCheckType(h)
	rs := prepareN(t, typ, "bad", "stream-bad", 4)
	// Start the process with a plain Run (the lone-run path).
	if res := runOnce(rs[0], 5*time.Second); res.Status != model.OK {
		t.Fatalf("warm-up: %v %q", res.Status, res.Output)
	}
	p, err := rs[0].proc()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var batch []*call
	for _, r := range rs {
		batch = append(batch, &call{r: r, start: now, deadline: now.Add(5 * time.Second), done: make(chan model.Result, 1)})
	}
	p.batcher().start(batch, nil)
	var got []model.Result
	for i, c := range batch {
		select {
		case res := <-c.done:
			got = append(got, res)
		case <-time.After(5 * time.Second):
			t.Fatalf("check %d: no result", i)
		}
	}
	if got[0].Status != model.OK || got[0].Output != "first" {
		t.Errorf("check 0: %v %q, want the first answer", got[0].Status, got[0].Output)
	}
	// An empty result on the wire (the nil element): UNKNOWN, and why.
	if got[1].Status != model.Unknown || !strings.Contains(got[1].Output+got[1].LongOutput, "plugin returned no status") {
		t.Errorf("check 1: %v %q %q", got[1].Status, got[1].Output, got[1].LongOutput)
	}
	for i := 2; i < 4; i++ {
		if got[i].Status != model.Unknown || !strings.Contains(got[i].Output, "ended a batch with 2 of 4 results missing") {
			t.Errorf("check %d: %v %q", i, got[i].Status, got[i].Output)
		}
	}
}

// prepareN prepares n checks of the test plugin named prefix0…, all with
// the given behaviour.
func prepareN(t *testing.T, typ *CheckType, prefix, behaviour string, n int) []*Runner {
	t.Helper()
	var rs []*Runner
	for i := range n {
		rs = append(rs, prepare(t, typ, testPluginCheck(fmt.Sprint(prefix, i), behaviour)))
	}
	return rs
}
