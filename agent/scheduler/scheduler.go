// Package scheduler runs checks on time. Every check runs at its period with
// a deterministic splay (an offset derived from its ID, so a fleet of agents
// restarting together does not stampede, and a restart keeps the phase),
// under its timeout, never overlapping itself (a run that comes due while
// the previous one is still going is skipped and counted as late), with
// Nagios soft/hard state semantics and retry periods, inside global and
// per-type concurrency limits. Results go to the Emit function (the durable
// pipeline); when Emit blocks, the check stays busy and later runs are
// skipped and counted — backpressure, not silent loss.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
)

// DefaultMaxConcurrency caps checks running at once when not configured.
const DefaultMaxConcurrency = 512

// Job is a check ready to be scheduled.
type Job struct {
	Check  *model.Check
	Runner checktype.Runner
}

// Options configure a Scheduler.
type Options struct {
	// Agent names this agent in results.
	Agent string
	// MaxConcurrency caps runs in progress across all types (0 = default).
	MaxConcurrency int
	// TypeConcurrency caps runs in progress per check type.
	TypeConcurrency map[string]int
	// Emit receives every result. It may block (backpressure); ctx is
	// cancelled at shutdown after the grace period.
	Emit func(ctx context.Context, r model.Result) error
	// OnResult, if set, observes every result after Emit (metrics). It
	// must not modify or keep the result.
	OnResult func(r *model.Result)
	Logger   *slog.Logger
	// Now is the wall clock (tests simulate clock jumps); nil is time.Now.
	Now func() time.Time
}

// ErrRunning is returned by RunNow while a run of the check is in progress.
var ErrRunning = errors.New("check is already running")

// ErrNotFound is returned for an unknown check ID.
var ErrNotFound = errors.New("no such check")

// Scheduler schedules jobs. Create it with New, start it with Run, change
// its jobs with Update at any time.
type Scheduler struct {
	opts   Options
	log    *slog.Logger
	global chan struct{}

	mu      sync.Mutex
	entries map[uuid.UUID]*entry
	byName  map[string]uuid.UUID
	queue   queue
	perType map[string]chan struct{}
	wake    chan struct{}
	runCtx  context.Context // cancelled when in-flight runs must stop
	wg      sync.WaitGroup
	workers *workers

	// Due runs wait here, per check type, until a global and a per-type
	// slot are both free. Waiting in the scheduler rather than in parked
	// goroutines keeps one full type from holding global slots that other
	// types could use, and keeps goroutines to the runs in progress.
	ready      map[string][]*entry
	readyTypes []string // types with waiting runs, served round-robin
	waiting    int
	stopping   bool

	stats counters
}

type entry struct {
	check   *model.Check
	runner  checktype.Runner
	next    time.Time
	index   int  // in queue; -1 when not queued
	running bool // in progress or waiting for a slot
	removed bool
	due     time.Time // slot of the run waiting in the ready queue
	st      state
	last    *model.Result
	// retired runners are closed once the in-flight run that may use them
	// has finished.
	retired []checktype.Runner
	runs    uint64
	late    uint64
	// passive checks are only run when stale (freshness > 0)
	passive   bool
	freshness time.Duration
}

func (e *entry) setRunner(r checktype.Runner) {
	e.runner = r
	e.passive, e.freshness = false, 0
	if p, ok := r.(checktype.Passive); ok {
		e.passive, e.freshness = true, p.Freshness()
	}
}

// schedule sets the next run of e after now and fixes its place in the
// queue; a passive check without freshness checking leaves the queue.
func (s *Scheduler) schedule(e *entry, now time.Time) {
	switch {
	case e.removed:
		return
	case e.passive && e.freshness <= 0:
		s.queue.remove(e)
		return
	case e.passive:
		e.next = now.Add(e.freshness)
	default:
		e.next = nextSlot(e.check, now)
	}
	s.queue.update(e)
}

// New returns a scheduler with no jobs. It starts nothing.
func New(opts Options) *Scheduler {
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = DefaultMaxConcurrency
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Scheduler{
		opts:    opts,
		log:     opts.Logger,
		global:  make(chan struct{}, opts.MaxConcurrency),
		entries: map[uuid.UUID]*entry{},
		byName:  map[string]uuid.UUID{},
		perType: map[string]chan struct{}{},
		wake:    make(chan struct{}, 1),
		runCtx:  context.Background(),
		workers: newWorkers(10 * time.Second),
		ready:   map[string][]*entry{},
	}
	for t, n := range opts.TypeConcurrency {
		if n > 0 {
			s.perType[t] = make(chan struct{}, n)
		}
	}
	return s
}

// Update replaces the scheduled set with jobs. A check whose ID is already
// scheduled keeps its soft/hard state and last result, and its schedule when
// its period is unchanged; its runner is replaced (scripts may have changed)
// and the old one closed after any in-flight run. Checks no longer present
// are removed; an in-flight run of one still delivers its result.
func (s *Scheduler) Update(jobs []Job) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[uuid.UUID]bool, len(jobs))
	s.byName = make(map[string]uuid.UUID, len(jobs))
	for _, j := range jobs {
		s.byName[j.Check.Name] = j.Check.ID
		seen[j.Check.ID] = true
		e, ok := s.entries[j.Check.ID]
		if !ok {
			e = &entry{check: j.Check, index: -1}
			e.setRunner(j.Runner)
			s.entries[j.Check.ID] = e
			s.schedule(e, now)
			continue
		}
		old, oldFresh, wasPassive := e.check, e.freshness, e.passive
		e.retire(e.runner)
		e.check = j.Check
		e.setRunner(j.Runner)
		if old.Period != j.Check.Period || old.RetryPeriod != j.Check.RetryPeriod ||
			oldFresh != e.freshness || wasPassive != e.passive {
			s.schedule(e, now)
		}
		if !e.running {
			e.closeRetired(s.log)
		}
	}
	for id, e := range s.entries {
		if seen[id] {
			continue
		}
		delete(s.entries, id)
		e.removed = true
		s.queue.remove(e)
		e.retire(e.runner)
		if !e.running {
			e.closeRetired(s.log)
		}
	}
	s.poke()
}

func (e *entry) retire(r checktype.Runner) {
	if r != nil {
		e.retired = append(e.retired, r)
	}
}

func (e *entry) closeRetired(log *slog.Logger) {
	for _, r := range e.retired {
		if c, ok := r.(checktype.Closer); ok {
			if err := c.Close(); err != nil {
				log.Warn("close check runner", "check", e.check.Name, "err", err)
			}
		}
	}
	e.retired = nil
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// splay is the check's fixed offset within its period.
func splay(c *model.Check, period time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write(c.ID[:])
	return time.Duration(h.Sum64() % uint64(period))
}

// nextSlot returns the first time after now that lies on the check's grid:
// multiples of period since the Unix epoch, shifted by the splay. The grid
// does not depend on when the agent started.
func nextSlot(c *model.Check, now time.Time) time.Time {
	p := c.Period
	if p <= 0 {
		p = time.Minute
	}
	off := int64(splay(c, p))
	n := now.UnixNano()
	base := n - ((n-off)%int64(p)+int64(p))%int64(p)
	t := base + int64(p)
	for t <= n {
		t += int64(p)
	}
	return time.Unix(0, t)
}

// Run dispatches due checks until ctx is done, then lets in-flight runs
// finish for at most grace before cancelling them, and returns when all
// have returned.
func (s *Scheduler) Run(ctx context.Context, grace time.Duration) error {
	runCtx, cancelRuns := context.WithCancel(context.Background())
	defer cancelRuns()
	s.mu.Lock()
	s.runCtx = runCtx
	s.stopping = false
	s.mu.Unlock()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := s.dispatchDue(s.opts.Now())
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			s.stopAdmitting()
			return s.drain(grace, cancelRuns)
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// stopAdmitting drops the runs still waiting for a slot: at shutdown only
// the runs in progress finish.
func (s *Scheduler) stopAdmitting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	for _, q := range s.ready {
		for _, e := range q {
			e.running = false
			e.closeRetired(s.log)
		}
	}
	clear(s.ready)
	s.readyTypes, s.waiting = s.readyTypes[:0], 0
}

func (s *Scheduler) drain(grace time.Duration, cancel context.CancelFunc) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		s.log.Warn("shutdown: cancelling checks still running after the grace period", "grace", grace)
		cancel()
		<-done
		return nil
	}
}

// maxSleep bounds a sleep so that a wall-clock jump is noticed soon.
const maxSleep = time.Second

// dispatchDue queues every due check, starts as many as the concurrency
// limits allow and returns how long to sleep.
//
// The schedule is on the wall clock (a check's slots are multiples of its
// period since the epoch). When the clock jumps forward, overdue checks run
// once and continue from the new time (no burst of missed runs); when it
// jumps back, a head of the queue more than one period away can only come
// from the jump, and the whole schedule is recomputed from the new time.
func (s *Scheduler) dispatchDue(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		if head := s.queue.head(); head.next.Sub(now) > s.horizon(head)+time.Second {
			s.log.Warn("wall clock moved backwards; rescheduling every check", "by", head.next.Sub(now)-s.horizon(head))
			for _, it := range s.queue {
				e := it.e
				switch {
				case e.passive:
					e.next = now.Add(e.freshness)
				default:
					e.next = nextSlot(e.check, now)
				}
			}
			s.queue.rebuild()
		}
	}
	sleep := maxSleep
	for len(s.queue) > 0 {
		e := s.queue.head()
		if !s.queue.due(now) {
			sleep = min(e.next.Sub(now), maxSleep)
			break
		}
		if e.running {
			// The previous run is still going (or still waiting for a
			// slot): skip this slot, count it.
			e.late++
			s.stats.late.Add(1)
			s.schedule(e, now)
			continue
		}
		e.running = true
		e.due = e.next
		s.schedule(e, now)
		typ := e.check.Type
		if len(s.ready[typ]) == 0 {
			s.readyTypes = append(s.readyTypes, typ)
		}
		s.ready[typ] = append(s.ready[typ], e)
		s.waiting++
	}
	s.startReady()
	return sleep
}

// startReady starts waiting runs while slots are free, one per type in
// turn so that a busy type cannot starve the others. Called with s.mu held
// whenever runs are queued or a slot is released.
func (s *Scheduler) startReady() {
	for s.waiting > 0 && !s.stopping {
		started := false
		for i := 0; i < len(s.readyTypes); {
			typ := s.readyTypes[i]
			q := s.ready[typ]
			e := q[0]
			if !e.removed {
				release, ok, globalFull := s.tryAcquire(typ)
				if globalFull {
					return
				}
				if !ok { // this type is at its limit
					i++
					continue
				}
				s.start(e, release)
				started = true
			} else {
				e.running = false
				e.closeRetired(s.log)
			}
			q[0] = nil
			q = q[1:]
			s.waiting--
			if len(q) > 0 {
				s.ready[typ] = q
				i++
				continue
			}
			delete(s.ready, typ)
			s.readyTypes = append(s.readyTypes[:i], s.readyTypes[i+1:]...)
		}
		if !started {
			return
		}
	}
}

// start runs e, which holds slots released by release, on a worker.
func (s *Scheduler) start(e *entry, release func()) {
	now := s.opts.Now()
	s.stats.lag.observe(now.Sub(e.due))
	s.wg.Add(1)
	ctx, r, c, prev := s.runCtx, e.runner, e.check, e.last
	s.workers.do(func() { s.run(ctx, e, r, c, prev, release) })
}

// tryAcquire takes a global and a per-type slot without waiting.
func (s *Scheduler) tryAcquire(typ string) (release func(), ok, globalFull bool) {
	select {
	case s.global <- struct{}{}:
	default:
		return nil, false, true
	}
	ch := s.perType[typ]
	if ch == nil {
		return func() { <-s.global }, true, false
	}
	select {
	case ch <- struct{}{}:
		return func() { <-ch; <-s.global }, true, false
	default:
		<-s.global
		return nil, false, false
	}
}

// horizon is how far ahead an entry can legitimately be scheduled.
func (s *Scheduler) horizon(e *entry) time.Duration {
	if e.passive {
		return e.freshness
	}
	return max(e.check.Period, e.check.RetryPeriod)
}

// acquire waits for the slots of a run outside the schedule (RunNow).
func (s *Scheduler) acquire(ctx context.Context, typ string) (release func(), err error) {
	// The type's slot first: waiting for it must not hold a global slot
	// that runs of other types could use.
	ch := s.perType[typ]
	if ch != nil {
		select {
		case ch <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	select {
	case s.global <- struct{}{}:
	case <-ctx.Done():
		if ch != nil {
			<-ch
		}
		return nil, ctx.Err()
	}
	if ch == nil {
		return func() { <-s.global }, nil
	}
	return func() { <-s.global; <-ch }, nil
}

func (s *Scheduler) runContext() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runCtx
}

// run executes one run of e in the slots that release frees, records and
// emits its result and returns it.
func (s *Scheduler) run(ctx context.Context, e *entry, r checktype.Runner, c *model.Check, prev *model.Result, release func()) model.Result {
	defer s.wg.Done()
	res := s.execute(ctx, r, c, prev)
	release()
	s.mu.Lock()
	s.startReady()
	e.st = e.st.next(res.Status, c.MaxAttempts)
	res.StateType, res.Attempt = e.st.stateType, e.st.attempt
	if e.st.retrying() && !e.removed && !e.passive {
		// Re-check soon, like Nagios's retry_interval.
		if t := s.opts.Now().Add(c.RetryPeriod); t.Before(e.next) {
			e.next = t
			if e.index >= 0 {
				s.queue.update(e)
			}
			s.poke()
		}
	}
	e.runs++
	last := new(model.Result)
	*last = res
	e.last = last
	s.mu.Unlock()

	s.stats.runs.Add(1)
	s.stats.byStatus[res.Status&3].Add(1)
	if s.opts.Emit != nil {
		if err := s.opts.Emit(ctx, res); err != nil {
			s.stats.emitErrors.Add(1)
			s.log.Error("result not delivered to the pipeline", "check", c.Name, "err", err)
		}
	}
	if s.opts.OnResult != nil {
		s.opts.OnResult(last) // read-only: no second heap copy of res per run
	}
	s.mu.Lock()
	e.running = false
	e.closeRetired(s.log)
	s.mu.Unlock()
	return res
}

// execute runs the check under its timeout.
func (s *Scheduler) execute(ctx context.Context, r checktype.Runner, c *model.Check, prev *model.Result) model.Result {
	start := s.opts.Now()
	rctx, cancel := context.WithTimeout(ctx, c.Timeout)
	res := safeRun(rctx, r, prev)
	cancel()
	if res.Duration == 0 {
		res.Duration = time.Since(start)
	}
	if !res.Status.Valid() {
		res.LongOutput = joinLines(res.LongOutput, fmt.Sprintf("invalid status %d from the check type", res.Status))
		res.Status = model.Unknown
	}
	res.CheckID, res.Check, res.Type, res.Target = c.ID, c.Name, c.Type, c.Target
	res.Agent = s.opts.Agent
	res.Time = start
	if len(c.Tags) > 0 && res.Tags == nil {
		res.Tags = c.Tags
	}
	return res
}

// safeRun turns a panic in a check type into an UNKNOWN result: one broken
// check must not take the agent down.
func safeRun(ctx context.Context, r checktype.Runner, prev *model.Result) (res model.Result) {
	defer func() {
		if p := recover(); p != nil {
			res = checktype.Unknown("check panicked: %v", p)
		}
	}()
	return r.Run(ctx, prev)
}

func joinLines(a, b string) string {
	if a == "" {
		return b
	}
	return a + "\n" + b
}

// RunNow runs the check immediately, outside its schedule, and returns the
// result, which also goes to the pipeline like any other.
func (s *Scheduler) RunNow(ctx context.Context, id uuid.UUID) (model.Result, error) {
	s.mu.Lock()
	e, ok := s.entries[id]
	if !ok {
		s.mu.Unlock()
		return model.Result{}, ErrNotFound
	}
	if e.running {
		s.mu.Unlock()
		return model.Result{}, ErrRunning
	}
	e.running = true
	r, c, prev := e.runner, e.check, e.last
	s.wg.Add(1)
	s.mu.Unlock()

	done := make(chan model.Result, 1)
	// The scheduled path, so state, stats and emit are identical. The run
	// goes on under the scheduler's context even if the caller gives up.
	go func() {
		ctx := s.runContext()
		release, err := s.acquire(ctx, c.Type)
		if err != nil {
			// Only shutdown gets here: no slot was free before cancellation.
			s.mu.Lock()
			e.running = false
			e.closeRetired(s.log)
			s.mu.Unlock()
			s.wg.Done()
			done <- checktype.Unknown("not run: %v", err)
			return
		}
		done <- s.run(ctx, e, r, c, prev, release)
	}()
	select {
	case res := <-done:
		return res, nil
	case <-ctx.Done():
		return model.Result{}, ctx.Err()
	}
}

// ErrNotPassive is returned by Submit for a check that is not passive.
var ErrNotPassive = errors.New("check does not accept passive results (type = \"passive\")")

// Submit records an externally produced result for the passive check id:
// it fills in the check's identity, applies the soft/hard state machine,
// restarts the freshness timer and emits the result like a scheduled one.
// The result's Time is kept when set (the submitter's timestamp).
func (s *Scheduler) Submit(ctx context.Context, id uuid.UUID, res model.Result) (model.Result, error) {
	s.mu.Lock()
	e, ok := s.entries[id]
	if !ok {
		s.mu.Unlock()
		return res, ErrNotFound
	}
	if !e.passive {
		s.mu.Unlock()
		return res, ErrNotPassive
	}
	c := e.check
	if !res.Status.Valid() {
		res.Status = model.Unknown
	}
	res.CheckID, res.Check, res.Type, res.Target, res.Agent = c.ID, c.Name, c.Type, c.Target, s.opts.Agent
	if res.Time.IsZero() {
		res.Time = s.opts.Now()
	}
	if len(c.Tags) > 0 && res.Tags == nil {
		res.Tags = c.Tags
	}
	e.st = e.st.next(res.Status, c.MaxAttempts)
	res.StateType, res.Attempt = e.st.stateType, e.st.attempt
	last := res
	e.last = &last
	e.runs++
	s.schedule(e, s.opts.Now())
	s.mu.Unlock()
	s.poke()
	s.stats.runs.Add(1)
	s.stats.byStatus[res.Status&3].Add(1)
	if s.opts.Emit != nil {
		if err := s.opts.Emit(ctx, res); err != nil {
			s.stats.emitErrors.Add(1)
			return res, fmt.Errorf("deliver passive result: %w", err)
		}
	}
	if s.opts.OnResult != nil {
		s.opts.OnResult(&res)
	}
	return res, nil
}

// Lookup finds a check by name.
func (s *Scheduler) Lookup(name string) (uuid.UUID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byName[name]
	return id, ok
}

// CheckState is a snapshot of one scheduled check for the API.
type CheckState struct {
	Check   *model.Check
	Last    *model.Result
	Next    time.Time
	Running bool
	Runs    uint64
	Late    uint64
}

// Checks returns a snapshot of every scheduled check.
func (s *Scheduler) Checks() []CheckState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]CheckState, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, CheckState{Check: e.check, Last: e.last, Next: e.next, Running: e.running, Runs: e.runs, Late: e.late})
	}
	return out
}

// Check returns the snapshot of one check.
func (s *Scheduler) Check(id uuid.UUID) (CheckState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return CheckState{}, false
	}
	return CheckState{Check: e.check, Last: e.last, Next: e.next, Running: e.running, Runs: e.runs, Late: e.late}, true
}

// Stats are the scheduler's counters.
type Stats struct {
	Runs       uint64
	Late       uint64
	EmitErrors uint64
	ByStatus   [4]uint64
	Checks     int
	// Waiting counts due runs waiting for a concurrency slot.
	Waiting int
	// LagBuckets[i] counts dispatches that started between 2^(i-1) and
	// 2^i microseconds after their due time (bucket 0: under 1 µs).
	LagBuckets [lagBuckets]uint64
}

// LagQuantile estimates the q-quantile of dispatch lag (the upper bound of
// the bucket holding it).
func (st Stats) LagQuantile(q float64) time.Duration {
	var total uint64
	for _, n := range st.LagBuckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	want := uint64(q * float64(total))
	var acc uint64
	for i, n := range st.LagBuckets {
		acc += n
		if acc >= want && n > 0 {
			return time.Duration(1<<i) * time.Microsecond
		}
	}
	return time.Duration(1<<(lagBuckets-1)) * time.Microsecond
}

const lagBuckets = 32

type counters struct {
	runs, late, emitErrors atomic.Uint64
	byStatus               [4]atomic.Uint64
	lag                    lagHist
}

type lagHist [lagBuckets]atomic.Uint64

func (h *lagHist) observe(d time.Duration) {
	us := uint64(d / time.Microsecond)
	i := bits.Len64(us)
	if i >= lagBuckets {
		i = lagBuckets - 1
	}
	h[i].Add(1)
}

// Stats returns the current counters.
func (s *Scheduler) Stats() Stats {
	st := Stats{Runs: s.stats.runs.Load(), Late: s.stats.late.Load(), EmitErrors: s.stats.emitErrors.Load()}
	for i := range st.ByStatus {
		st.ByStatus[i] = s.stats.byStatus[i].Load()
	}
	for i := range st.LagBuckets {
		st.LagBuckets[i] = s.stats.lag[i].Load()
	}
	s.mu.Lock()
	st.Checks = len(s.entries)
	st.Waiting = s.waiting
	s.mu.Unlock()
	return st
}
