package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/reconmon/recon/plugins/proto"
)

// Check is a check plugin with config type C. recon validates each
// check's config table against ConfigSchema, the SDK decodes it into a C
// (JSON field names; unknown fields are an error) once per distinct
// config, and calls Check for every run with that config.
type Check[C any] interface {
	Info() Info
	// ConfigSchema returns a JSON Schema for C; "" accepts any object.
	ConfigSchema() string
	// Check runs the check once. ctx carries the check's deadline
	// (req.Timeout). An error becomes an UNKNOWN result with its text.
	Check(ctx context.Context, cfg *C, req Request) (Result, error)
}

// Configurer is implemented by checks that validate or prepare a decoded
// config beyond what the schema says (compile a regexp, build a client).
// An error rejects the config: checks using it report UNKNOWN with it.
type Configurer[C any] interface {
	Configure(cfg *C) error
}

// Releaser is implemented by checks that hold resources per config; it is
// called when no check uses the config any more.
type Releaser[C any] interface {
	Release(cfg *C)
}

// Item is one check run in a batch.
type Item[C any] struct {
	Config  *C
	Request Request
}

// BatchChecker is implemented by checks that run many targets better
// together than one by one (one SNMP bulk request, one SQL query). Without
// it the SDK calls Check concurrently for the items of a batch. It returns
// one result per item, in item order.
type BatchChecker[C any] interface {
	CheckMany(ctx context.Context, items []Item[C]) []Result
}

// configs holds the decoded configs of one plugin process by handle.
type configs[C any] struct {
	mu sync.RWMutex
	m  map[string]*C
}

func (c *configs[C]) get(handle string) (*C, bool) {
	c.mu.RLock()
	cfg, ok := c.m[handle]
	c.mu.RUnlock()
	return cfg, ok
}

// decode turns the host's config JSON into a C, strictly.
func decode[C any](data []byte) (*C, error) {
	cfg := new(C)
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return nil, errors.New("config: trailing data after the JSON object")
	}
	return cfg, nil
}

// errUnknownHandle tells the host to configure the handle again (it does
// so after a plugin restart, which loses every handle).
func errUnknownHandle(h string) error {
	return status.Errorf(codes.NotFound, "unknown config handle %q", h)
}

// checkServer adapts a Check to the gRPC Check service.
type checkServer[C any] struct {
	pb.UnimplementedCheckServer
	impl        Check[C]
	log         *slog.Logger
	concurrency int
	cfgs        configs[C]
}

func newCheckServer[C any](impl Check[C], o *options) *checkServer[C] {
	return &checkServer[C]{impl: impl, log: o.logger, concurrency: o.concurrency, cfgs: configs[C]{m: map[string]*C{}}}
}

func (s *checkServer[C]) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return infoToPB(s.impl.Info(), pb.Kind_KIND_CHECK), nil
}

func (s *checkServer[C]) ConfigSchema(context.Context, *pb.ConfigSchemaRequest) (*pb.ConfigSchemaResponse, error) {
	return &pb.ConfigSchemaResponse{JsonSchema: s.impl.ConfigSchema()}, nil
}

func (s *checkServer[C]) Configure(_ context.Context, req *pb.ConfigureRequest) (resp *pb.ConfigureResponse, err error) {
	if req.GetHandle() == "" {
		return nil, status.Error(codes.InvalidArgument, "empty config handle")
	}
	if _, ok := s.cfgs.get(req.GetHandle()); ok {
		return &pb.ConfigureResponse{}, nil
	}
	cfg, err := decode[C](req.GetConfigJson())
	if err != nil {
		return &pb.ConfigureResponse{Error: err.Error()}, nil
	}
	if c, ok := s.impl.(Configurer[C]); ok {
		if err := s.protect("Configure", func() error { return c.Configure(cfg) }); err != nil {
			return &pb.ConfigureResponse{Error: err.Error()}, nil
		}
	}
	s.cfgs.mu.Lock()
	if _, dup := s.cfgs.m[req.GetHandle()]; !dup {
		s.cfgs.m[req.GetHandle()] = cfg
		cfg = nil
	}
	s.cfgs.mu.Unlock()
	if cfg != nil {
		// Configured concurrently by another call: release ours.
		s.release(cfg)
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *checkServer[C]) Release(_ context.Context, req *pb.ReleaseRequest) (*pb.ReleaseResponse, error) {
	var gone []*C
	s.cfgs.mu.Lock()
	for _, h := range req.GetHandles() {
		if cfg, ok := s.cfgs.m[h]; ok {
			gone = append(gone, cfg)
			delete(s.cfgs.m, h)
		}
	}
	s.cfgs.mu.Unlock()
	for _, cfg := range gone {
		s.release(cfg)
	}
	return &pb.ReleaseResponse{}, nil
}

func (s *checkServer[C]) release(cfg *C) {
	if r, ok := s.impl.(Releaser[C]); ok {
		_ = s.protect("Release", func() error { r.Release(cfg); return nil })
	}
}

// protect runs f, turning a panic into an error (and a logged stack), so
// that one bad config or target does not take down every check sharing
// this plugin process.
func (s *checkServer[C]) protect(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("plugin panicked", "in", what, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("plugin panicked in %s: %v", what, p)
		}
	}()
	return f()
}

func requestFromPB(r *pb.RunRequest, timeout time.Duration) Request {
	req := Request{
		Check:   r.GetCheck(),
		CheckID: r.GetCheckId(),
		Target:  r.GetTarget(),
		Tags:    r.GetTags(),
		Timeout: timeout,
	}
	if p := r.GetPrevious(); p != nil {
		prev := resultFromPB(p)
		req.Previous = &prev
	}
	return req
}

// deadline bounds ctx by timeoutMS when the host sent one.
func deadline(ctx context.Context, timeoutMS int64) (context.Context, context.CancelFunc, time.Duration) {
	if timeoutMS <= 0 {
		if d, ok := ctx.Deadline(); ok {
			return ctx, func() {}, time.Until(d)
		}
		return ctx, func() {}, 0
	}
	t := time.Duration(timeoutMS) * time.Millisecond
	c, cancel := context.WithTimeout(ctx, t)
	return c, cancel, t
}

func (s *checkServer[C]) runOne(ctx context.Context, cfg *C, req Request) (res Result) {
	start := time.Now()
	var err error
	if perr := s.protect("Check", func() error {
		res, err = s.impl.Check(ctx, cfg, req)
		return nil
	}); perr != nil {
		return Unknown("%v", perr)
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return Unknown("check did not finish within its timeout (%v): %v", req.Timeout.Round(time.Millisecond), err)
		}
		res = Unknown("%v", err)
	}
	if res.Duration == 0 {
		res.Duration = time.Since(start)
	}
	return res
}

func (s *checkServer[C]) Run(ctx context.Context, r *pb.RunRequest) (*pb.RunResponse, error) {
	cfg, ok := s.cfgs.get(r.GetHandle())
	if !ok {
		return nil, errUnknownHandle(r.GetHandle())
	}
	ctx, cancel, timeout := deadline(ctx, r.GetTimeoutMs())
	defer cancel()
	res := s.runOne(ctx, cfg, requestFromPB(r, timeout))
	return &pb.RunResponse{Result: resultToPB(&res)}, nil
}

func (s *checkServer[C]) RunMany(ctx context.Context, r *pb.RunManyRequest) (*pb.RunManyResponse, error) {
	reqs := r.GetRequests()
	items := make([]Item[C], len(reqs))
	for i, q := range reqs {
		cfg, ok := s.cfgs.get(q.GetHandle())
		if !ok {
			return nil, errUnknownHandle(q.GetHandle())
		}
		items[i].Config = cfg
	}
	ctx, cancel, timeout := deadline(ctx, r.GetTimeoutMs())
	defer cancel()
	for i, q := range reqs {
		items[i].Request = requestFromPB(q, timeout)
	}
	var results []Result
	if b, ok := s.impl.(BatchChecker[C]); ok {
		if perr := s.protect("CheckMany", func() error { results = b.CheckMany(ctx, items); return nil }); perr != nil {
			results = nil
			for range items {
				results = append(results, Unknown("%v", perr))
			}
		}
		for len(results) < len(items) {
			results = append(results, Unknown("plugin returned %d results for %d checks", len(results), len(items)))
		}
		results = results[:len(items)]
	} else {
		results = s.fanOut(ctx, items)
	}
	out := &pb.RunManyResponse{Results: make([]*pb.Result, len(results))}
	for i := range results {
		out.Results[i] = resultToPB(&results[i])
	}
	return out, nil
}

// RunStream runs a batch like RunMany, each request under its own
// timeout, and sends each result as soon as it is ready, together with the
// others ready at that moment, so that one slow target does not hold back
// the others of the batch.
func (s *checkServer[C]) RunStream(r *pb.RunManyRequest, stream pb.Check_RunStreamServer) error {
	reqs := r.GetRequests()
	items := make([]Item[C], len(reqs))
	for i, q := range reqs {
		cfg, ok := s.cfgs.get(q.GetHandle())
		if !ok {
			return errUnknownHandle(q.GetHandle())
		}
		items[i].Config = cfg
	}
	ctx := stream.Context()
	if b, ok := s.impl.(BatchChecker[C]); ok {
		// The author runs the batch as one: one deadline, the longest.
		bctx, cancel, timeout := deadline(ctx, r.GetTimeoutMs())
		defer cancel()
		for i, q := range reqs {
			items[i].Request = requestFromPB(q, timeout)
		}
		var results []Result
		perr := s.protect("CheckMany", func() error { results = b.CheckMany(bctx, items); return nil })
		out := &pb.RunStreamResults{Index: make([]int32, len(items)), Results: make([]*pb.Result, len(items))}
		for i := range items {
			var res Result
			switch {
			case perr != nil:
				res = Unknown("%v", perr)
			case i < len(results):
				res = results[i]
			default:
				res = Unknown("plugin returned %d results for %d checks", len(results), len(items))
			}
			out.Index[i], out.Results[i] = int32(i), resultToPB(&res)
		}
		return stream.Send(out)
	}
	type done struct {
		i   int
		res *pb.Result
	}
	ready := make(chan done, len(items))
	var next atomic.Int64
	workers := min(s.concurrency, len(items))
	for range workers {
		go func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				q := reqs[i]
				ms := q.GetTimeoutMs()
				if ms <= 0 {
					ms = r.GetTimeoutMs()
				}
				ictx, cancel, timeout := deadline(ctx, ms)
				res := s.runOne(ictx, items[i].Config, requestFromPB(q, timeout))
				cancel()
				ready <- done{i, resultToPB(&res)}
			}
		}()
	}
	// One sender: a message carries every result ready when it is sent.
	for sent := 0; sent < len(items); {
		var d done
		select {
		case d = <-ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		out := &pb.RunStreamResults{Index: []int32{int32(d.i)}, Results: []*pb.Result{d.res}}
	drain:
		for {
			select {
			case d = <-ready:
				out.Index = append(out.Index, int32(d.i))
				out.Results = append(out.Results, d.res)
			default:
				break drain
			}
		}
		if err := stream.Send(out); err != nil {
			return err
		}
		sent += len(out.Index)
	}
	return nil
}

// fanOut calls Check for every item with at most s.concurrency at once.
func (s *checkServer[C]) fanOut(ctx context.Context, items []Item[C]) []Result {
	results := make([]Result, len(items))
	workers := min(s.concurrency, len(items))
	if workers <= 1 {
		for i := range items {
			results[i] = s.runOne(ctx, items[i].Config, items[i].Request)
		}
		return results
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				results[i] = s.runOne(ctx, items[i].Config, items[i].Request)
			}
		}()
	}
	wg.Wait()
	return results
}

func infoToPB(i Info, k pb.Kind) *pb.InfoResponse {
	return &pb.InfoResponse{
		Name: i.Name, Version: i.Version, Description: i.Description, Kind: k,
		ProtocolVersion: pb.ProtocolVersion, Sdk: "recon-go-sdk (" + runtime.Version() + ")",
	}
}
