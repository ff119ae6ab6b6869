// Package stream implements temporal streaming with check cloning, the
// Reconnoiter idea: a watcher asks for a check at a finer period than its
// schedule, and a clone of the check runs at that period for as long as
// somebody watches. Watchers of the same check and period share one clone;
// the clone stops when the last one leaves. Clone results go only to the
// watchers — never to the pipeline, so they are never stored or alerted on.
// A watcher that cannot keep up is dropped; it never slows the others.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
)

// MinPeriod is the shortest clone period.
const MinPeriod = 500 * time.Millisecond

// Preparer builds a clone of check id with the given period and timeout:
// a copy of the check and a fresh runner for it.
type Preparer func(id uuid.UUID, period, timeout time.Duration) (*model.Check, checktype.Runner, error)

// Hub manages clones and watchers.
type Hub struct {
	prepare Preparer
	agent   string
	log     *slog.Logger

	mu     sync.Mutex
	clones map[key]*clone

	runs, dropped, started atomic.Uint64
}

type key struct {
	id     uuid.UUID
	period time.Duration
}

// NewHub returns a hub with no clones.
func NewHub(prepare Preparer, agent string, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{prepare: prepare, agent: agent, log: log, clones: map[key]*clone{}}
}

// Watcher receives a clone's results on C until Close, or until the hub
// drops it for being too slow (then C is closed and Dropped is true).
type Watcher struct {
	C       <-chan model.Result
	ch      chan model.Result
	clone   *clone
	hub     *Hub
	once    sync.Once
	dropped atomic.Bool
}

// Dropped reports whether the hub dropped this watcher for falling behind.
func (w *Watcher) Dropped() bool { return w.dropped.Load() }

// Close stops watching; the last watcher's Close stops the clone.
func (w *Watcher) Close() { w.hub.remove(w) }

type clone struct {
	key      key
	check    *model.Check
	runner   checktype.Runner
	watchers map[*Watcher]struct{}
	cancel   context.CancelFunc
	done     chan struct{}
}

// ErrPeriod is returned for a period below MinPeriod.
var ErrPeriod = fmt.Errorf("period must be at least %v", MinPeriod)

// Timeout is the clone's run timeout for a period: a little under the
// period, so runs never overlap.
func Timeout(period time.Duration) time.Duration {
	return period - max(period/10, 50*time.Millisecond)
}

// Watch subscribes to check id at period; buf is the watcher's buffer in
// results (a watcher whose buffer is full is dropped).
func (h *Hub) Watch(id uuid.UUID, period time.Duration, buf int) (*Watcher, error) {
	if period < MinPeriod {
		return nil, ErrPeriod
	}
	if buf < 1 {
		buf = 1
	}
	k := key{id, period}
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.clones[k]
	if !ok {
		chk, r, err := h.prepare(id, period, Timeout(period))
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		c = &clone{key: k, check: chk, runner: r, watchers: map[*Watcher]struct{}{}, cancel: cancel, done: make(chan struct{})}
		h.clones[k] = c
		h.started.Add(1)
		go h.run(ctx, c)
		h.log.Debug("clone started", "check", chk.Name, "period", period)
	}
	ch := make(chan model.Result, buf)
	w := &Watcher{C: ch, ch: ch, clone: c, hub: h}
	c.watchers[w] = struct{}{}
	return w, nil
}

func (h *Hub) remove(w *Watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(w)
}

func (h *Hub) removeLocked(w *Watcher) {
	c := w.clone
	if _, ok := c.watchers[w]; !ok {
		return
	}
	delete(c.watchers, w)
	w.once.Do(func() { close(w.ch) })
	if len(c.watchers) == 0 {
		c.cancel()
		delete(h.clones, c.key)
		h.log.Debug("clone stopped: last watcher left", "check", c.check.Name, "period", c.key.period)
	}
}

// run executes the clone every period until cancelled. A run that takes
// longer than the period makes the next tick wait (no overlap).
func (h *Hub) run(ctx context.Context, c *clone) {
	defer close(c.done)
	defer func() {
		if cl, ok := c.runner.(checktype.Closer); ok {
			cl.Close()
		}
	}()
	t := time.NewTicker(c.key.period)
	defer t.Stop()
	for {
		h.runOnce(ctx, c)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *Hub) runOnce(ctx context.Context, c *clone) {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, c.check.Timeout)
	res := safeRun(rctx, c.runner)
	cancel()
	if ctx.Err() != nil {
		return
	}
	h.runs.Add(1)
	if res.Duration == 0 {
		res.Duration = time.Since(start)
	}
	ch := c.check
	res.CheckID, res.Check, res.Type, res.Target, res.Agent, res.Time = ch.ID, ch.Name, ch.Type, ch.Target, h.agent, start
	res.StateType, res.Attempt = model.Hard, 1
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range c.watchers {
		select {
		case w.ch <- res:
		default:
			// Too slow: drop it rather than hold up the others.
			w.dropped.Store(true)
			h.dropped.Add(1)
			h.removeLocked(w)
		}
	}
}

func safeRun(ctx context.Context, r checktype.Runner) (res model.Result) {
	defer func() {
		if p := recover(); p != nil {
			res = checktype.Unknown("check panicked: %v", p)
		}
	}()
	return r.Run(ctx, nil)
}

// Stats are the hub's gauges and counters.
type Stats struct {
	Clones, Watchers int
	Runs, Dropped    uint64
	Started          uint64
}

// Stats returns the current figures.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := Stats{Clones: len(h.clones), Runs: h.runs.Load(), Dropped: h.dropped.Load(), Started: h.started.Load()}
	for _, c := range h.clones {
		st.Watchers += len(c.watchers)
	}
	return st
}

// Close stops every clone and closes every watcher.
func (h *Hub) Close() {
	h.mu.Lock()
	var dones []chan struct{}
	for _, c := range h.clones {
		for w := range c.watchers {
			h.removeLocked(w)
		}
		dones = append(dones, c.done)
	}
	h.mu.Unlock()
	for _, d := range dones {
		<-d
	}
}

// ErrNotFound is what a Preparer returns for an unknown check.
var ErrNotFound = errors.New("no such check")
