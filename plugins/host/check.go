package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
	pb "github.com/reconmon/recon/plugins/proto"
)

// Settings are the keys of a check with type = "plugin":
//
//	[[check]]
//	name   = "api-queue"
//	type   = "plugin"
//	path   = "plugins/httpjson"            # relative to this file
//	sha256 = "3f1c…"                       # sha256sum of the binary
//	config = { url = "http://127.0.0.1:8080/stats", field = "queue.depth", warning = "100", critical = "500" }
type Settings struct {
	CommonSettings
}

// CheckType is the "plugin" check type.
type CheckType struct {
	h *Host
}

// NewCheckType returns the check type backed by h.
func NewCheckType(h *Host) *CheckType { return &CheckType{h: h} }

// NewSettings implements checktype.Type.
func (t *CheckType) NewSettings() any { return &Settings{} }

// Prepare validates the settings and the config's conversion to JSON, and
// the config against the plugin's schema when the schema of this exact
// binary (pinned checksum) is already known — on a reload, say. It starts
// nothing: the process starts on the first run, and the schema check then
// happens before the config is used.
func (t *CheckType) Prepare(c *model.Check) (checktype.Runner, error) {
	s, ok := c.Settings.(*Settings)
	if !ok || s == nil {
		return nil, fmt.Errorf("plugin: settings are %T, want *host.Settings", c.Settings)
	}
	spec, err := buildSpec(pb.CheckPluginName, &s.CommonSettings, c.Dir)
	if err != nil {
		return nil, err
	}
	data, handle, err := configJSON(s.Config)
	if err != nil {
		return nil, err
	}
	if sch := t.h.knownSchema(&spec); sch != nil {
		if err := validateConfig(sch, data); err != nil {
			return nil, fmt.Errorf("plugin %s: %w", spec.path, err)
		}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Runner{
		h: t.h, spec: spec, data: data, handle: handle, timeout: timeout, source: c.Source,
		req:   &pb.RunRequest{Handle: handle, Check: c.Name, CheckId: c.ID.String(), Target: c.Target, Tags: c.Tags},
		check: c,
	}, nil
}

// Runner runs one plugin check. It implements checktype.Runner and
// checktype.Closer; RunMany runs many at once.
type Runner struct {
	h       *Host
	spec    procSpec
	data    []byte
	handle  string
	timeout time.Duration
	source  string
	req     *pb.RunRequest // template; copied per run
	check   *model.Check

	mu     sync.Mutex
	p      *proc
	closed bool
}

var errClosed = errors.New("check was removed (runner closed)")

// proc returns the runner's process slot, registering the runner as a
// user on first use.
func (r *Runner) proc() (*proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errClosed
	}
	if r.p == nil {
		p, err := r.h.acquire(r.spec)
		if err != nil {
			return nil, err
		}
		p.addHandle(r.handle, r.data)
		r.p = p
	}
	return r.p, nil
}

// Close implements checktype.Closer: the last user of a plugin process
// stops it.
func (r *Runner) Close() error {
	r.mu.Lock()
	p := r.p
	r.p, r.closed = nil, true
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	if last, inst := p.dropHandle(r.handle); last && inst != nil {
		r.h.background(func() { inst.release(r.handle) })
	}
	r.h.release(p)
	return nil
}

// unknown builds an UNKNOWN result whose output starts with where the
// check is defined, so that an operator finds the config to fix.
func (r *Runner) unknown(err error) model.Result {
	if r.source != "" {
		return checktype.Unknown("%s: %v", r.source, err)
	}
	return checktype.Unknown("%v", err)
}

// prepared returns a running, configured instance for a run.
func (r *Runner) prepared(ctx context.Context) (*proc, *instance, error) {
	p, err := r.proc()
	if err != nil {
		return nil, nil, err
	}
	inst, err := p.get(ctx)
	if err != nil {
		return p, nil, err
	}
	if err := inst.configure(ctx, r.handle, r.data, r.timeout); err != nil {
		return p, nil, err
	}
	return p, inst, nil
}

// Run implements checktype.Runner: the run goes to the plugin with the
// runs of other checks of the same process that are waiting at the same
// moment (see batcher), or alone with Options.RunSingly.
func (r *Runner) Run(ctx context.Context, prev *model.Result) model.Result {
	start := time.Now()
	if dl, ok := ctx.Deadline(); !ok || dl.Sub(start) > r.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	p, err := r.proc()
	if err != nil {
		return r.unknown(err)
	}
	if r.h.opts.RunSingly {
		p.batcher().count(1)
		return r.runDirect(ctx, prev, start)
	}
	return p.batcher().run(ctx, r, prev, start)
}

// runDirect runs the check with one Run call.
func (r *Runner) runDirect(ctx context.Context, prev *model.Result, start time.Time) model.Result {
	for attempt := 0; ; attempt++ {
		p, inst, err := r.prepared(ctx)
		if err != nil {
			return r.unknown(err)
		}
		req := r.request(ctx, prev)
		budget := time.Duration(0)
		if d, ok := ctx.Deadline(); ok {
			budget = time.Until(d)
		}
		resp, err := inst.check.Run(ctx, req)
		if status.Code(err) == codes.NotFound && attempt == 0 {
			inst.forget(r.handle) // the plugin lost the config: send it again
			continue
		}
		if err != nil {
			return r.unknown(p.rpcError(ctx, inst, "Run", budget, err))
		}
		res := resultFromPB(resp.GetResult(), r.h.opts.OutputLimit)
		if resp.GetResult() == nil {
			res = checktype.Unknown("plugin %s returned no result", inst.name())
		}
		if res.Duration == 0 {
			res.Duration = time.Since(start)
		}
		return res
	}
}

func (r *Runner) request(ctx context.Context, prev *model.Result) *pb.RunRequest {
	req := &pb.RunRequest{
		Handle: r.req.Handle, Check: r.req.Check, CheckId: r.req.CheckId, Target: r.req.Target, Tags: r.req.Tags,
	}
	if d, ok := ctx.Deadline(); ok {
		req.TimeoutMs = max(pluginTimeout(time.Until(d)).Milliseconds(), 1)
	}
	if prev != nil {
		req.Previous = resultToPB(prev)
	}
	return req
}

// RunMany runs many prepared plugin checks with as few round trips as
// possible: one RunMany call per plugin process per Options.MaxBatch
// checks, all under ctx (give it the batch's deadline; without one, the
// shortest check timeout applies). It returns one result per runner, in
// order, with identity (check, ID, type, target, time, tags) filled in
// as the scheduler would.
func RunMany(ctx context.Context, runners []*Runner) []model.Result {
	start := time.Now()
	results := make([]model.Result, len(runners))
	if len(runners) == 0 {
		return results
	}
	if _, ok := ctx.Deadline(); !ok {
		timeout := runners[0].timeout
		for _, r := range runners[1:] {
			timeout = min(timeout, r.timeout)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// Group by process slot, keeping each runner's index.
	type group struct {
		p   *proc
		idx []int
	}
	var groups []*group
	byProc := map[*proc]*group{}
	for i, r := range runners {
		p, err := r.proc()
		if err != nil {
			results[i] = r.unknown(err)
			continue
		}
		g := byProc[p]
		if g == nil {
			g = &group{p: p}
			byProc[p] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		batch := runners[0].h.opts.MaxBatch
		for lo := 0; lo < len(g.idx); lo += batch {
			idx := g.idx[lo:min(lo+batch, len(g.idx))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				runBatch(ctx, g.p, runners, idx, results)
			}()
		}
	}
	wg.Wait()
	for i, r := range runners {
		res := &results[i]
		if res.Duration == 0 {
			res.Duration = time.Since(start)
		}
		c := r.check
		res.CheckID, res.Check, res.Type, res.Target, res.Time = c.ID, c.Name, c.Type, c.Target, start
		res.StateType, res.Attempt = model.Hard, 1
		if res.Tags == nil {
			res.Tags = c.Tags
		}
	}
	return results
}

// runBatch runs runners[idx] (all of process slot p) in one RunMany call.
func runBatch(ctx context.Context, p *proc, runners []*Runner, idx []int, results []model.Result) {
	fail := func(err error) {
		for _, i := range idx {
			results[i] = runners[i].unknown(err)
		}
	}
	for attempt := 0; ; attempt++ {
		inst, err := p.get(ctx)
		if err != nil {
			fail(err)
			return
		}
		var budget time.Duration
		if d, ok := ctx.Deadline(); ok {
			budget = time.Until(d)
		}
		req := &pb.RunManyRequest{Requests: make([]*pb.RunRequest, 0, len(idx)), TimeoutMs: max(pluginTimeout(budget).Milliseconds(), 1)}
		configured := map[string]bool{}
		var sent []int
		for _, i := range idx {
			r := runners[i]
			if !configured[r.handle] {
				if err := inst.configure(ctx, r.handle, r.data, r.timeout); err != nil {
					// This config is bad; the others still run.
					for _, j := range idx {
						if runners[j].handle == r.handle {
							results[j] = runners[j].unknown(err)
						}
					}
					if inst.exited() || ctx.Err() != nil {
						fail(err)
						return
					}
					configured[r.handle] = false
					continue
				}
				configured[r.handle] = true
			}
			if !configured[r.handle] {
				continue
			}
			q := r.request(ctx, nil)
			q.TimeoutMs = req.TimeoutMs
			req.Requests = append(req.Requests, q)
			sent = append(sent, i)
		}
		if len(sent) == 0 {
			return
		}
		resp, err := inst.check.RunMany(ctx, req)
		if status.Code(err) == codes.NotFound && attempt == 0 {
			for _, i := range sent {
				inst.forget(runners[i].handle)
			}
			continue
		}
		if err != nil {
			err = p.rpcError(ctx, inst, "RunMany", budget, err)
			for _, i := range sent {
				results[i] = runners[i].unknown(err)
			}
			return
		}
		got := resp.GetResults()
		for k, i := range sent {
			if k >= len(got) {
				results[i] = runners[i].unknown(fmt.Errorf("plugin %s returned %d results for %d checks", inst.name(), len(got), len(sent)))
				continue
			}
			results[i] = resultFromPB(got[k], p.h.opts.OutputLimit)
		}
		return
	}
}

var (
	_ checktype.Type   = (*CheckType)(nil)
	_ checktype.Runner = (*Runner)(nil)
	_ checktype.Closer = (*Runner)(nil)
)
