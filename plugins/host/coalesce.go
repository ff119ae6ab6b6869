package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/reconmon/recon/agent/model"
	pb "github.com/reconmon/recon/plugins/proto"
)

// Scheduled runs of the checks one plugin process serves are coalesced
// into RunStream calls, the way a database commits a group: a run that
// finds nothing else in flight goes out at once, alone, as a plain Run;
// runs that arrive while calls are in flight gather (for at most linger)
// and go together in the next RunStream call (up to MaxBatch). At low load
// every run is its own call; under load batches grow until the calls keep
// up, and the per-call cost is shared. Each run keeps its own timeout and
// gets its result as soon as the plugin sends it: a slow target holds back
// no one else. A plugin without RunStream (an older SDK, another language)
// gets one Run per check.

// call is one run waiting for its result.
type call struct {
	r        *Runner
	prev     *model.Result
	start    time.Time
	deadline time.Time
	done     chan model.Result // buffered: a delivery never blocks
}

func (c *call) deliver(res model.Result) {
	if res.Duration == 0 {
		res.Duration = time.Since(c.start)
	}
	select {
	case c.done <- res:
	default: // delivered already
	}
}

// batcher coalesces the runs of one process slot.
type batcher struct {
	p *proc

	mu      sync.Mutex
	queue   []*call
	sending bool
	// noStream is the instance that answered RunStream with
	// Unimplemented; a restarted process is asked again.
	noStream *instance

	direct int // lone runs in flight as plain Run calls (under mu)

	runs, calls atomic.Uint64 // runs sent, and the RPCs that carried them
	streams     atomic.Int64  // RunStream calls in flight
}

// linger is how long, while earlier calls are still in flight, a batch
// waits for more runs before it is sent: under load the batches grow
// (and the cost of a call is shared by more runs) for at most this delay;
// with nothing in flight a run goes out at once.
const linger = time.Millisecond

// run queues a run of r and waits for its result; ctx has the run's
// deadline.
func (b *batcher) run(ctx context.Context, r *Runner, prev *model.Result, start time.Time) model.Result {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = start.Add(r.timeout)
	}
	b.mu.Lock()
	if !b.sending && b.direct == 0 && b.streams.Load() == 0 {
		// Nothing else is going on: a plain Run from this goroutine is
		// the quickest way; runs arriving meanwhile are batched.
		b.direct++
		b.mu.Unlock()
		b.count(1)
		res := r.runDirect(ctx, prev, start)
		b.mu.Lock()
		b.direct--
		b.mu.Unlock()
		return res
	}
	c := &call{r: r, prev: prev, start: start, deadline: dl, done: make(chan model.Result, 1)}
	b.queue = append(b.queue, c)
	if !b.sending {
		b.sending = true
		go b.send()
	}
	b.mu.Unlock()
	select {
	case res := <-c.done:
		return res
	case <-ctx.Done():
	}
	b.mu.Lock()
	for i, q := range b.queue {
		if q == c {
			// Never sent (the process was starting or busy): nothing
			// can explain more than the deadline.
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			b.mu.Unlock()
			return r.unknown(fmt.Errorf("plugin %s: not run within %v, waiting for the plugin process: %w", r.spec.path, r.timeout, context.Cause(ctx)))
		}
	}
	b.mu.Unlock()
	// The call's own deadline has passed. The stream ends at the latest
	// deadline of its batch and then says why (a hung plugin is killed);
	// give that a moment to arrive so the reason is not lost.
	select {
	case res := <-c.done:
		return res
	case <-time.After(time.Second):
		return r.unknown(fmt.Errorf("plugin %s: no result within %v: %w", r.spec.path, r.timeout, context.Cause(ctx)))
	}
}

// send starts calls for the queued runs until the queue is empty.
func (b *batcher) send() {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.sending = false
			b.mu.Unlock()
			return
		}
		if (b.direct > 0 || b.streams.Load() > 0) && len(b.queue) < b.p.h.opts.MaxBatch {
			b.mu.Unlock()
			time.Sleep(linger)
			b.mu.Lock()
		}
		n := min(len(b.queue), b.p.h.opts.MaxBatch)
		batch := make([]*call, n)
		copy(batch, b.queue)
		b.queue = append(b.queue[:0], b.queue[n:]...)
		noStream := b.noStream
		b.mu.Unlock()
		b.start(batch, noStream)
	}
}

// start sends one batch and leaves a goroutine receiving its results.
func (b *batcher) start(batch []*call, noStream *instance) {
	dl := batch[0].deadline
	for _, c := range batch[1:] {
		if c.deadline.After(dl) {
			dl = c.deadline
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	inst, err := b.p.get(ctx)
	if err != nil {
		cancel()
		for _, c := range batch {
			c.deliver(c.r.unknown(err))
		}
		return
	}
	if inst == noStream {
		cancel()
		b.singly(batch)
		return
	}
	budget := time.Until(dl)
	req := &pb.RunManyRequest{Requests: make([]*pb.RunRequest, 0, len(batch)), TimeoutMs: max(pluginTimeout(budget).Milliseconds(), 1)}
	sent := batch[:0:0]
	configured := map[string]error{}
	for _, c := range batch {
		r := c.r
		cerr, seen := configured[r.handle]
		if !seen {
			cerr = inst.configure(ctx, r.handle, r.data, r.timeout)
			configured[r.handle] = cerr
		}
		if cerr != nil {
			c.deliver(r.unknown(cerr))
			continue
		}
		q := r.request(ctx, c.prev)
		q.TimeoutMs = max(pluginTimeout(time.Until(c.deadline)).Milliseconds(), 1)
		req.Requests = append(req.Requests, q)
		sent = append(sent, c)
	}
	if len(sent) == 0 {
		cancel()
		return
	}
	stream, err := inst.check.RunStream(ctx, req)
	if err != nil {
		b.count(len(sent))
		err = b.p.rpcError(ctx, inst, "Run", budget, err)
		cancel()
		for _, c := range sent {
			c.deliver(c.r.unknown(err))
		}
		return
	}
	b.streams.Add(1)
	go func() {
		defer cancel()
		defer b.streams.Add(-1)
		b.receive(ctx, inst, stream, sent, budget)
	}()
}

// receive delivers the results of one stream as they come.
func (b *batcher) receive(ctx context.Context, inst *instance, stream pb.Check_RunStreamClient, sent []*call, budget time.Duration) {
	got := make([]bool, len(sent))
	left := len(sent)
	counted := false // once the plugin has taken the batch
	for left > 0 {
		m, err := stream.Recv()
		if err != nil {
			code := status.Code(err)
			switch {
			case left == len(sent) && code == codes.Unimplemented:
				b.mu.Lock()
				b.noStream = inst
				b.mu.Unlock()
				b.singly(sent)
				return
			case left == len(sent) && code == codes.NotFound:
				// The plugin lost a config (it restarted its state):
				// the single-run path configures again.
				for _, c := range sent {
					inst.forget(c.r.handle)
				}
				b.singly(sent)
				return
			}
			if !counted {
				b.count(len(sent))
			}
			switch {
			case errors.Is(err, io.EOF):
				err = fmt.Errorf("plugin %s ended a batch with %d of %d results missing", inst.name(), left, len(sent))
			default:
				err = b.p.rpcError(ctx, inst, "Run", budget, err)
			}
			for i, c := range sent {
				if !got[i] {
					c.deliver(c.r.unknown(err))
				}
			}
			return
		}
		if !counted {
			counted = true
			b.count(len(sent))
		}
		results := m.GetResults()
		for k, i := range m.GetIndex() {
			if i < 0 || int(i) >= len(sent) || got[i] || k >= len(results) {
				continue // not ours, or a repeat: the first answer stands
			}
			got[i] = true
			left--
			c := sent[i]
			if results[k] == nil {
				c.deliver(c.r.unknown(fmt.Errorf("plugin %s returned no result", inst.name())))
				continue
			}
			c.deliver(resultFromPB(results[k], b.p.h.opts.OutputLimit))
		}
	}
}

// count records a call carrying n runs.
func (b *batcher) count(n int) {
	b.runs.Add(uint64(n))
	b.calls.Add(1)
}

// singly runs each call with its own Run.
func (b *batcher) singly(batch []*call) {
	for _, c := range batch {
		go func() {
			ctx, cancel := context.WithDeadline(context.Background(), c.deadline)
			defer cancel()
			b.count(1)
			c.deliver(c.r.runDirect(ctx, c.prev, c.start))
		}()
	}
}
