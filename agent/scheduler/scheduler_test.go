package scheduler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
)

func TestStateMachine(t *testing.T) {
	O, W, C := model.OK, model.Warning, model.Critical
	S, H := model.Soft, model.Hard
	cases := []struct {
		name  string
		max   int
		seq   []model.Status
		types []model.StateType
		atts  []int
	}{
		{"problem becomes hard at max", 3, []model.Status{O, C, C, C, C}, []model.StateType{H, S, S, H, H}, []int{1, 1, 2, 3, 3}},
		{"soft recovery", 3, []model.Status{C, O, O}, []model.StateType{S, S, H}, []int{1, 1, 1}},
		{"hard recovery", 2, []model.Status{C, C, O}, []model.StateType{S, H, H}, []int{1, 2, 1}},
		{"max 1 is always hard", 1, []model.Status{W, C, O}, []model.StateType{H, H, H}, []int{1, 1, 1}},
		{"change between problems while soft keeps counting", 3, []model.Status{W, C, W}, []model.StateType{S, S, H}, []int{1, 2, 3}},
		{"change between problems while hard stays hard", 2, []model.Status{C, C, W, C}, []model.StateType{S, H, H, H}, []int{1, 2, 2, 2}},
		{"flap back to soft after recovery", 2, []model.Status{C, C, O, W}, []model.StateType{S, H, H, S}, []int{1, 2, 1, 1}},
	}
	for _, c := range cases {
		var st state
		for i, s := range c.seq {
			st = st.next(s, c.max)
			if st.stateType != c.types[i] || st.attempt != c.atts[i] || st.status != s {
				t.Errorf("%s: step %d (%v): got %v attempt %d, want %v attempt %d", c.name, i, s, st.stateType, st.attempt, c.types[i], c.atts[i])
			}
		}
	}
}

func check(name string, period time.Duration) *model.Check {
	return &model.Check{ID: model.CheckID("t", name), Name: name, Type: "test", Period: period,
		Timeout: period, MaxAttempts: 1, RetryPeriod: period}
}

func TestNextSlot(t *testing.T) {
	now := time.Unix(1_700_000_000, 123456789)
	offsets := map[time.Duration]bool{}
	for i := 0; i < 50; i++ {
		c := check(fmt.Sprint("c", i), 10*time.Second)
		n := nextSlot(c, now)
		if !n.After(now) || n.Sub(now) > c.Period {
			t.Fatalf("next %v not within one period after %v", n, now)
		}
		if nextSlot(c, now) != n {
			t.Fatal("not deterministic")
		}
		// Grid property: successive slots are exactly one period apart.
		if n2 := nextSlot(c, n); n2.Sub(n) != c.Period {
			t.Fatalf("slot after %v is %v", n, n2)
		}
		offsets[time.Duration(n.UnixNano()%int64(c.Period))] = true
	}
	if len(offsets) < 45 {
		t.Errorf("splay does not spread checks: only %d distinct offsets of 50", len(offsets))
	}
}

type collector struct {
	mu      sync.Mutex
	results []model.Result
}

func (c *collector) emit(_ context.Context, r model.Result) error {
	c.mu.Lock()
	c.results = append(c.results, r)
	c.mu.Unlock()
	return nil
}

func (c *collector) snapshot() []model.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]model.Result(nil), c.results...)
}

func (c *collector) waitFor(t *testing.T, n int, within time.Duration) []model.Result {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if rs := c.snapshot(); len(rs) >= n {
			return rs
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("got %d results, want %d within %v", len(c.snapshot()), n, within)
	return nil
}

func start(t *testing.T, s *Scheduler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, time.Second); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func TestNoOverlapAndLate(t *testing.T) {
	var inFlight, maxInFlight atomic.Int32
	slow := checktype.Func(func(ctx context.Context, _ *model.Result) model.Result {
		n := inFlight.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(120 * time.Millisecond)
		inFlight.Add(-1)
		return model.Result{Status: model.OK}
	})
	var col collector
	s := New(Options{Emit: col.emit})
	c := check("slow", 30*time.Millisecond)
	c.Timeout = 30 * time.Millisecond
	s.Update([]Job{{Check: c, Runner: slow}})
	start(t, s)
	col.waitFor(t, 3, 5*time.Second)
	if m := maxInFlight.Load(); m != 1 {
		t.Errorf("runs overlapped: %d at once", m)
	}
	if st := s.Stats(); st.Late == 0 {
		t.Errorf("no late runs counted although each run takes 4 periods: %+v", st)
	}
}

func TestRetriesAndStateTypes(t *testing.T) {
	crit := checktype.Func(func(context.Context, *model.Result) model.Result {
		return model.Result{Status: model.Critical, Output: "down"}
	})
	var col collector
	s := New(Options{Emit: col.emit, Agent: "a1"})
	c := check("crit", time.Hour) // only retries can produce more than one result in time
	c.MaxAttempts, c.RetryPeriod, c.Timeout = 3, 20*time.Millisecond, time.Second
	c.Tags = map[string]string{"role": "db"}
	s.Update([]Job{{Check: c, Runner: crit}})
	// Make it due now instead of within the hour.
	s.mu.Lock()
	e := s.entries[c.ID]
	e.next = time.Now()
	s.queue.update(e)
	s.mu.Unlock()
	start(t, s)
	rs := col.waitFor(t, 3, 5*time.Second)
	want := []struct {
		t model.StateType
		a int
	}{{model.Soft, 1}, {model.Soft, 2}, {model.Hard, 3}}
	for i, w := range want {
		r := rs[i]
		if r.StateType != w.t || r.Attempt != w.a {
			t.Errorf("result %d: %v attempt %d, want %v attempt %d", i, r.StateType, r.Attempt, w.t, w.a)
		}
		if r.CheckID != c.ID || r.Check != "crit" || r.Agent != "a1" || r.Tags["role"] != "db" || r.Time.IsZero() || r.Duration <= 0 {
			t.Errorf("result %d identity not filled: %+v", i, r)
		}
	}
	// After HARD, it goes back to the period (an hour): no fourth result soon.
	time.Sleep(100 * time.Millisecond)
	if n := len(col.snapshot()); n != 3 {
		t.Errorf("got %d results after the hard state, want 3", n)
	}
}

func TestConcurrencyLimits(t *testing.T) {
	for _, tc := range []struct {
		name           string
		global, perTyp int
		want           int32
	}{{"global", 3, 0, 3}, {"per type", 10, 2, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			var inFlight, maxInFlight atomic.Int32
			r := checktype.Func(func(ctx context.Context, _ *model.Result) model.Result {
				n := inFlight.Add(1)
				for {
					m := maxInFlight.Load()
					if n <= m || maxInFlight.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(30 * time.Millisecond)
				inFlight.Add(-1)
				return model.Result{}
			})
			var col collector
			opts := Options{Emit: col.emit, MaxConcurrency: tc.global}
			if tc.perTyp > 0 {
				opts.TypeConcurrency = map[string]int{"test": tc.perTyp}
			}
			s := New(opts)
			var jobs []Job
			for i := 0; i < 12; i++ {
				jobs = append(jobs, Job{Check: check(fmt.Sprint("c", i), 50*time.Millisecond), Runner: r})
			}
			s.Update(jobs)
			start(t, s)
			col.waitFor(t, 24, 10*time.Second)
			if m := maxInFlight.Load(); m != tc.want {
				t.Errorf("max in flight %d, want %d", m, tc.want)
			}
		})
	}
}

func TestTimeoutAndPanic(t *testing.T) {
	var gotDeadline atomic.Int64
	waiter := checktype.Func(func(ctx context.Context, _ *model.Result) model.Result {
		d, _ := ctx.Deadline()
		gotDeadline.Store(int64(time.Until(d)))
		<-ctx.Done()
		return checktype.Unknown("timed out")
	})
	panicker := checktype.Func(func(context.Context, *model.Result) model.Result { panic("boom") })
	var col collector
	s := New(Options{Emit: col.emit})
	c1, c2 := check("waiter", 100*time.Millisecond), check("panicker", 100*time.Millisecond)
	c1.Timeout = 40 * time.Millisecond
	s.Update([]Job{{Check: c1, Runner: waiter}, {Check: c2, Runner: panicker}})
	start(t, s)
	rs := col.waitFor(t, 4, 5*time.Second)
	var sawPanic bool
	for _, r := range rs {
		if r.Check == "panicker" {
			sawPanic = true
			if r.Status != model.Unknown || r.Output != "check panicked: boom" {
				t.Errorf("panic result: %+v", r)
			}
		}
	}
	if !sawPanic {
		t.Error("no result from the panicking check")
	}
	if d := time.Duration(gotDeadline.Load()); d <= 0 || d > 40*time.Millisecond {
		t.Errorf("run context deadline %v, want within the 40ms timeout", d)
	}
}

type closingRunner struct {
	closed atomic.Bool
	status model.Status
}

func (r *closingRunner) Run(context.Context, *model.Result) model.Result {
	return model.Result{Status: r.status}
}
func (r *closingRunner) Close() error { r.closed.Store(true); return nil }

func TestUpdateKeepsStateAndClosesRunners(t *testing.T) {
	var col collector
	s := New(Options{Emit: col.emit})
	c := check("c", 20*time.Millisecond)
	c.MaxAttempts = 5
	old := &closingRunner{status: model.Critical}
	gone := &closingRunner{}
	s.Update([]Job{{Check: c, Runner: old}, {Check: check("gone", 20*time.Millisecond), Runner: gone}})
	start(t, s)
	col.waitFor(t, 4, 5*time.Second)
	s.mu.Lock()
	attemptBefore := s.entries[c.ID].st.attempt
	s.mu.Unlock()
	if attemptBefore < 1 {
		t.Fatal("no soft state built up")
	}
	c2 := *c
	nw := &closingRunner{status: model.Critical}
	s.Update([]Job{{Check: &c2, Runner: nw}})
	deadline := time.Now().Add(5 * time.Second)
	for !(old.closed.Load() && gone.closed.Load()) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !old.closed.Load() || !gone.closed.Load() {
		t.Fatalf("replaced/removed runners not closed: old %v gone %v", old.closed.Load(), gone.closed.Load())
	}
	n := len(col.snapshot())
	rs := col.waitFor(t, n+2, 5*time.Second)
	last := rs[len(rs)-1]
	if last.Check != "c" || last.Attempt <= attemptBefore && last.StateType != model.Hard {
		t.Errorf("state not kept across update: before attempt %d, after %+v", attemptBefore, last)
	}
	for _, r := range rs[n:] {
		if r.Check == "gone" {
			t.Errorf("removed check still runs")
		}
	}
	if nw.closed.Load() {
		t.Error("current runner closed")
	}
}

func TestGracefulStop(t *testing.T) {
	finished := make(chan struct{})
	r := checktype.Func(func(ctx context.Context, _ *model.Result) model.Result {
		select {
		case <-time.After(100 * time.Millisecond):
			close(finished)
			return model.Result{Status: model.OK}
		case <-ctx.Done():
			return checktype.Unknown("cancelled")
		}
	})
	var col collector
	s := New(Options{Emit: col.emit})
	c := check("g", time.Hour)
	c.Timeout = time.Minute
	s.Update([]Job{{Check: c, Runner: r}})
	s.mu.Lock()
	e := s.entries[c.ID]
	e.next = time.Now()
	s.queue.update(e)
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, 5*time.Second); close(done) }()
	time.Sleep(30 * time.Millisecond) // let the run start
	cancel()
	<-done
	select {
	case <-finished:
	default:
		t.Fatal("Run returned before the in-flight check finished")
	}
	if rs := col.snapshot(); len(rs) != 1 || rs[0].Status != model.OK {
		t.Errorf("in-flight result not delivered: %+v", rs)
	}
}

func TestRunNow(t *testing.T) {
	var col collector
	s := New(Options{Emit: col.emit})
	c := check("now", time.Hour)
	s.Update([]Job{{Check: c, Runner: checktype.Func(func(context.Context, *model.Result) model.Result {
		return model.Result{Status: model.Warning, Output: "w"}
	})}})
	res, err := s.RunNow(context.Background(), c.ID)
	if err != nil || res.Status != model.Warning || res.Check != "now" {
		t.Fatalf("RunNow: %+v %v", res, err)
	}
	if rs := col.snapshot(); len(rs) != 1 {
		t.Errorf("RunNow result not emitted: %d", len(rs))
	}
	if _, err := s.RunNow(context.Background(), model.CheckID("t", "nope")); err != ErrNotFound {
		t.Errorf("unknown id: %v", err)
	}
}

// BenchmarkSchedulerThroughput measures results/s through the scheduler
// with a trivial runner: many checks at a short period.
func BenchmarkSchedulerThroughput(b *testing.B) {
	const checks = 10000
	var n atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	r := checktype.Func(func(context.Context, *model.Result) model.Result {
		return model.Result{Status: model.OK, Metrics: []model.Metric{{Name: "x", Value: model.Float(1)}}}
	})
	s := New(Options{Emit: func(context.Context, model.Result) error {
		if n.Add(1) == target {
			close(done)
		}
		return nil
	}})
	jobs := make([]Job, checks)
	for i := range jobs {
		c := check(fmt.Sprint("c", i), 50*time.Millisecond)
		jobs[i] = Job{Check: c, Runner: r}
	}
	s.Update(jobs)
	ctx, cancel := context.WithCancel(context.Background())
	b.ResetTimer()
	go s.Run(ctx, time.Second)
	<-done
	b.StopTimer()
	cancel()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "results/s")
}

type passiveRunner struct {
	fresh time.Duration
	runs  atomic.Int32
}

func (p *passiveRunner) Freshness() time.Duration { return p.fresh }
func (p *passiveRunner) Run(context.Context, *model.Result) model.Result {
	p.runs.Add(1)
	return model.Result{Status: model.Unknown, Output: "stale"}
}

func TestPassiveSubmitAndFreshness(t *testing.T) {
	var col collector
	s := New(Options{Emit: col.emit, Agent: "a"})
	c := check("passive", time.Minute)
	c.MaxAttempts = 2
	pr := &passiveRunner{fresh: 150 * time.Millisecond}
	active := check("active", time.Hour)
	s.Update([]Job{{Check: c, Runner: pr}, {Check: active, Runner: &closingRunner{}}})
	start(t, s)
	id, ok := s.Lookup("passive")
	if !ok || id != c.ID {
		t.Fatal("lookup by name")
	}
	// Results keep arriving faster than the freshness threshold: never stale.
	for i := 0; i < 4; i++ {
		if _, err := s.Submit(context.Background(), id, model.Result{Status: model.Critical, Output: "down"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pr.runs.Load() != 0 {
		t.Errorf("fresh passive check was run %d times", pr.runs.Load())
	}
	rs := col.snapshot()
	if len(rs) != 4 || rs[0].StateType != model.Soft || rs[1].StateType != model.Hard || rs[0].Check != "passive" || rs[0].Agent != "a" {
		t.Errorf("submitted results: %+v", rs)
	}
	// Silence: the freshness check produces the stale result.
	col.waitFor(t, 5, 5*time.Second)
	if r := col.snapshot()[4]; r.Output != "stale" || r.Status != model.Unknown {
		t.Errorf("stale result: %+v", r)
	}
	if _, err := s.Submit(context.Background(), active.ID, model.Result{}); err != ErrNotPassive {
		t.Errorf("active check accepted a passive result: %v", err)
	}
}

// fakeClock is a wall clock the test can move.
type fakeClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *fakeClock) jump(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

func TestClockJumps(t *testing.T) {
	var clk fakeClock
	var col collector
	s := New(Options{Emit: col.emit, Now: clk.now})
	c := check("tick", 100*time.Millisecond)
	s.Update([]Job{{Check: c, Runner: checktype.Func(func(context.Context, *model.Result) model.Result { return model.Result{} })}})
	start(t, s)
	col.waitFor(t, 3, 5*time.Second)
	// Backwards by an hour: checks must keep running, not wait an hour.
	clk.jump(-time.Hour)
	n := len(col.snapshot())
	col.waitFor(t, n+5, 5*time.Second)
	// Forwards by a day: one overdue run, then the normal period — no
	// burst of the 864,000 missed slots.
	clk.jump(24 * time.Hour)
	n = len(col.snapshot())
	time.Sleep(500 * time.Millisecond)
	got := len(col.snapshot()) - n
	if got < 2 || got > 8 {
		t.Errorf("%d runs in 500ms after a forward jump at a 100ms period", got)
	}
}

// TestBusyTypeDoesNotStarveOthers: runs of a type at its own limit wait in
// the scheduler, not in global slots, so other types keep running; at
// shutdown the waiting runs are dropped and nothing more starts.
func TestBusyTypeDoesNotStarveOthers(t *testing.T) {
	var slowInFlight, slowMax, slowStarted atomic.Int32
	release := make(chan struct{})
	slow := checktype.Func(func(ctx context.Context, _ *model.Result) model.Result {
		slowStarted.Add(1)
		n := slowInFlight.Add(1)
		for {
			m := slowMax.Load()
			if n <= m || slowMax.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
		case <-time.After(300 * time.Millisecond):
		}
		slowInFlight.Add(-1)
		return model.Result{}
	})
	var fastRuns atomic.Int32
	fast := checktype.Func(func(context.Context, *model.Result) model.Result {
		fastRuns.Add(1)
		return model.Result{}
	})
	var col collector
	s := New(Options{Emit: col.emit, MaxConcurrency: 4, TypeConcurrency: map[string]int{"slow": 1}})
	var jobs []Job
	for i := range 20 {
		c := check(fmt.Sprint("slow", i), 50*time.Millisecond)
		c.Type, c.Timeout = "slow", time.Second
		jobs = append(jobs, Job{Check: c, Runner: slow})
	}
	jobs = append(jobs, Job{Check: check("fast", 20*time.Millisecond), Runner: fast})
	s.Update(jobs)
	stop := start(t, s)
	time.Sleep(time.Second)
	st := s.Stats()
	if st.Waiting == 0 {
		t.Errorf("no runs waiting although 20 slow checks share one slot: %+v", st)
	}
	if n := fastRuns.Load(); n < 10 {
		t.Errorf("fast check ran %d times in 1 s (period 20 ms): starved by the busy type", n)
	}
	if m := slowMax.Load(); m != 1 {
		t.Errorf("slow type ran %d at once, limit 1", m)
	}
	close(release)
	stop()
	if st := s.Stats(); st.Waiting != 0 {
		t.Errorf("%d runs still waiting after shutdown", st.Waiting)
	}
	n := slowStarted.Load()
	time.Sleep(100 * time.Millisecond)
	if slowStarted.Load() != n {
		t.Error("runs started after shutdown")
	}
}
