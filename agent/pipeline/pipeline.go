package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/internal/ctxsleep"
)

// Output is one sink with its queue, as handed to the pipeline.
type Output struct {
	Spec *sink.Spec
	Sink sink.Sink
	// Open opens the sink's queue. SetOutputs calls it only after stopping
	// a running output of the same name, because both would use the same
	// spool directory.
	Open func() (Queue, error)
	// DeadLetterDir is where results the sink permanently rejects are kept
	// (as JSON lines); empty disables dead-lettering, and such batches are
	// then retried forever rather than dropped.
	DeadLetterDir string
	// Fingerprint identifies the configuration; SetOutputs keeps a running
	// output whose name and fingerprint are unchanged.
	Fingerprint string
}

// Backoff bounds for retrying a failing sink.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// Pipeline fans results out to outputs and live subscribers.
type Pipeline struct {
	log     *slog.Logger
	mu      sync.Mutex // serialises SetOutputs and Close
	workers atomic.Pointer[[]*worker]
	subs    subscribers
	closed  bool
}

// New returns a pipeline with no outputs.
func New(log *slog.Logger) *Pipeline {
	if log == nil {
		log = slog.Default()
	}
	p := &Pipeline{log: log}
	p.workers.Store(&[]*worker{})
	return p
}

// SetOutputs makes outs the pipeline's outputs. A running output with the
// same name and fingerprint keeps running (the new Output's sink is closed
// unused); others are started; running outputs not in outs are stopped —
// their spools stay on disk, nothing is discarded. If a queue cannot be
// opened, the outputs stopped so far are restarted with their old
// configuration and the error is returned.
func (p *Pipeline) SetOutputs(outs []Output) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.workers.Load()
	byName := map[string]*worker{}
	for _, w := range old {
		byName[w.out.Spec.Name] = w
	}
	wanted := map[string]bool{}
	var next []*worker
	var stopped, started []*worker
	rollback := func(err error) error {
		for _, w := range started {
			w.stop()
		}
		restored := make([]*worker, 0, len(old))
		for _, w := range old {
			if slicesContains(stopped, w) {
				if nw, err := p.startWorker(w.out); err == nil {
					restored = append(restored, nw)
				} else {
					p.log.Error("restart of previous output failed", "sink", w.out.Spec.Name, "err", err)
				}
				continue
			}
			restored = append(restored, w)
		}
		p.workers.Store(&restored)
		return err
	}
	for _, o := range outs {
		wanted[o.Spec.Name] = true
		w, running := byName[o.Spec.Name]
		if running && w.out.Fingerprint == o.Fingerprint && o.Fingerprint != "" {
			next = append(next, w)
			if o.Sink != w.out.Sink {
				o.Sink.Close()
			}
			continue
		}
		if o.Open == nil {
			return rollback(fmt.Errorf("pipeline: output %s has no queue opener", o.Spec.Name))
		}
		if running {
			w.stop()
			stopped = append(stopped, w)
		}
		nw, err := p.startWorker(o)
		if err != nil {
			return rollback(fmt.Errorf("pipeline: start output %s: %w", o.Spec.Name, err))
		}
		started = append(started, nw)
		next = append(next, nw)
	}
	for _, w := range old {
		if !wanted[w.out.Spec.Name] {
			w.stop()
			p.log.Warn("sink removed from the configuration; its spool stays on disk", "sink", w.out.Spec.Name,
				"queued", w.queue.Stats().Depth)
		}
	}
	p.workers.Store(&next)
	return nil
}

func slicesContains(ws []*worker, w *worker) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

// Publish appends results to every output's queue and returns once all
// have them (durably, for spools). It blocks while a queue is full. On an
// append error it retries with backoff until ctx is done, because giving up
// would lose the result for that sink.
func (p *Pipeline) Publish(ctx context.Context, rs ...model.Result) error {
	if len(rs) == 0 {
		return nil
	}
	for _, w := range *p.workers.Load() {
		if err := p.appendTo(ctx, w, rs); err != nil {
			return err
		}
	}
	p.subs.deliver(rs)
	return nil
}

func (p *Pipeline) appendTo(ctx context.Context, w *worker, rs []model.Result) error {
	backoff := minBackoff
	for {
		err := w.queue.Append(ctx, rs)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pipeline: append to %s: %w", w.out.Spec.Name, err)
		}
		if errors.Is(err, ErrPermanent) && w.out.DeadLetterDir != "" {
			// The queue can never take these (e.g. one result too large
			// for the spool): keep them in the dead-letter file instead
			// of wedging every producer behind them.
			for _, r := range rs {
				if derr := appendDeadLetter(w.out.DeadLetterDir, r, err); derr != nil {
					return fmt.Errorf("pipeline: append to %s: %w (dead letter: %v)", w.out.Spec.Name, err, derr)
				}
			}
			w.deadLettered.Add(uint64(len(rs)))
			p.log.Error("results rejected by the spool kept in the dead-letter file", "sink", w.out.Spec.Name, "err", err, "count", len(rs))
			return nil
		}
		if errors.Is(err, ErrQueueClosed) {
			// A reload replaced the output: append to its successor, or
			// nowhere if the sink was removed from the configuration.
			nw := p.find(w.out.Spec.Name)
			if nw == nil || nw == w {
				return nil
			}
			w = nw
			continue
		}
		w.appendErrors.Add(1)
		// Many producers may fail together (a full disk): log once per
		// sink every 30s, not once per result.
		if w.shouldLogAppendError() {
			p.log.Error("spool append failed; producers wait and retry", "sink", w.out.Spec.Name, "err", err,
				"failures_so_far", w.appendErrors.Load())
		}
		if !ctxsleep.Sleep(ctx, backoff) {
			return fmt.Errorf("pipeline: append to %s: %w", w.out.Spec.Name, err)
		}
		backoff = nextBackoff(backoff)
	}
}

func (p *Pipeline) find(name string) *worker {
	for _, w := range *p.workers.Load() {
		if w.out.Spec.Name == name {
			return w
		}
	}
	return nil
}

// Close stops every output. Queued results stay in the spools.
func (p *Pipeline) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, w := range *p.workers.Load() {
		w.stop()
	}
	p.workers.Store(&[]*worker{})
	p.subs.closeAll()
}

// Sinks returns the sinks of the running outputs, in configuration order.
func (p *Pipeline) Sinks() []sink.Sink {
	ws := *p.workers.Load()
	out := make([]sink.Sink, len(ws))
	for i, w := range ws {
		out[i] = w.out.Sink
	}
	return out
}

// OutputStats describes one output for /metrics and the API.
type OutputStats struct {
	Name, Type   string
	Queue        QueueStats
	Written      uint64 // results written by the sink
	Batches      uint64
	WriteErrors  uint64
	AppendErrors uint64
	DeadLettered uint64
	Connected    bool
	LastError    string
}

// Stats returns every output's statistics.
func (p *Pipeline) Stats() []OutputStats {
	var out []OutputStats
	for _, w := range *p.workers.Load() {
		out = append(out, w.stats())
	}
	return out
}

type worker struct {
	out    Output
	queue  Queue
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	written, batches, writeErrors, appendErrors, deadLettered atomic.Uint64
	lastAppendLog                                             atomic.Int64
	connected                                                 atomic.Bool
	lastErr                                                   atomic.Pointer[string]
}

func (p *Pipeline) startWorker(o Output) (*worker, error) {
	q, err := o.Open()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{out: o, queue: q, log: p.log.With("sink", o.Spec.Name), cancel: cancel, done: make(chan struct{})}
	go w.loop(ctx)
	return w, nil
}

func (w *worker) shouldLogAppendError() bool {
	now := time.Now().UnixNano()
	last := w.lastAppendLog.Load()
	return now-last > int64(30*time.Second) && w.lastAppendLog.CompareAndSwap(last, now)
}

func (w *worker) stop() {
	w.cancel()
	<-w.done
	if err := w.out.Sink.Close(); err != nil {
		w.log.Warn("close sink", "err", err)
	}
	if err := w.queue.Close(); err != nil {
		w.log.Warn("close queue", "err", err)
	}
}

func (w *worker) stats() OutputStats {
	s := OutputStats{Name: w.out.Spec.Name, Type: w.out.Spec.Type, Queue: w.queue.Stats(),
		Written: w.written.Load(), Batches: w.batches.Load(), WriteErrors: w.writeErrors.Load(),
		AppendErrors: w.appendErrors.Load(), DeadLettered: w.deadLettered.Load(), Connected: w.connected.Load()}
	if e := w.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// loop drains the queue in order: peek a batch, write it (retrying with
// backoff and reconnecting until it succeeds), commit it.
func (w *worker) loop(ctx context.Context) {
	defer close(w.done)
	size := w.out.Spec.BatchSize
	if size <= 0 {
		size = 1000
	}
	backoff := minBackoff
	for {
		batch, err := w.queue.Peek(ctx, size)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrQueueClosed) {
				return
			}
			// A read error may be transient (I/O): keep the sink
			// draining rather than stall it until a reload.
			w.log.Error("read spool; retrying", "err", err, "retry_in", backoff)
			if !ctxsleep.Sleep(ctx, backoff) {
				return
			}
			backoff = nextBackoff(backoff)
			continue
		}
		backoff = minBackoff
		if !w.deliver(ctx, batch) {
			return
		}
		for {
			err := w.queue.Commit(len(batch))
			if err == nil || errors.Is(err, ErrQueueClosed) {
				break
			}
			w.log.Error("commit spool; retrying", "err", err, "retry_in", backoff)
			if !ctxsleep.Sleep(ctx, backoff) {
				return
			}
			backoff = nextBackoff(backoff)
		}
	}
}

// deliver writes batch until it is written or dead-lettered; false means
// the worker is stopping and the batch stays queued.
func (w *worker) deliver(ctx context.Context, batch []model.Result) bool {
	backoff := minBackoff
	failing := false
	for {
		err := w.write(ctx, batch)
		if err == nil {
			if failing {
				w.log.Info("sink recovered", "batch", len(batch))
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if sink.IsPermanent(err) {
			if w.rejectPermanently(ctx, batch, err) {
				return true
			}
		}
		w.writeErrors.Add(1)
		msg := err.Error()
		w.lastErr.Store(&msg)
		if !failing || backoff >= maxBackoff {
			w.log.Error("sink write failed; retrying", "err", err, "batch", len(batch), "retry_in", backoff)
		}
		failing = true
		if w.connected.Swap(false) {
			w.out.Sink.Close()
		}
		if !ctxsleep.Sleep(ctx, backoff) {
			return false
		}
		backoff = nextBackoff(backoff)
	}
}

func (w *worker) write(ctx context.Context, batch []model.Result) error {
	if !w.connected.Load() {
		if err := w.out.Sink.Connect(ctx); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		w.connected.Store(true)
	}
	if err := w.out.Sink.WriteBatch(ctx, batch); err != nil {
		return err
	}
	w.written.Add(uint64(len(batch)))
	w.batches.Add(1)
	return nil
}

// rejectPermanently isolates the results the sink can never accept by
// splitting the batch, writes the good ones, and keeps the bad ones in the
// dead-letter file. It returns false when dead-lettering is impossible, in
// which case the caller keeps retrying: never a silent drop.
func (w *worker) rejectPermanently(ctx context.Context, batch []model.Result, cause error) bool {
	if w.out.DeadLetterDir == "" {
		return false
	}
	if len(batch) > 1 {
		mid := len(batch) / 2
		for _, half := range [][]model.Result{batch[:mid], batch[mid:]} {
			err := w.write(ctx, half)
			if err == nil {
				continue
			}
			if !sink.IsPermanent(err) || !w.rejectPermanently(ctx, half, err) {
				return false
			}
		}
		return true
	}
	if err := appendDeadLetter(w.out.DeadLetterDir, batch[0], cause); err != nil {
		w.log.Error("dead-letter write failed; will retry the batch", "err", err)
		return false
	}
	w.deadLettered.Add(1)
	w.log.Error("sink permanently rejected a result; kept in the dead-letter file", "check", batch[0].Check,
		"time", batch[0].Time, "err", cause, "dir", w.out.DeadLetterDir)
	return true
}

func appendDeadLetter(dir string, r model.Result, cause error) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "deadletter.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	line := []byte(`{"error":`)
	line = appendQuoted(line, cause.Error())
	line = append(line, `,"result":`...)
	line = r.AppendJSON(line)
	line = append(line, "}\n"...)
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func appendQuoted(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func nextBackoff(d time.Duration) time.Duration {
	d *= 2
	if d > maxBackoff {
		d = maxBackoff
	}
	// ±20% jitter so many agents do not retry in lockstep.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
