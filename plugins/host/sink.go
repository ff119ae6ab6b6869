package host

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	pb "github.com/reconmon/recon/plugins/proto"
)

// SinkSettings are the keys of a sink with type = "plugin": those of a
// plugin check plus the time one batch may take.
type SinkSettings struct {
	CommonSettings
	// Timeout bounds Configure and each WriteBatch (default 30s); a plugin
	// that does not answer in time is killed and restarted, and the
	// pipeline retries the batch.
	Timeout config.Duration `toml:"timeout"`
}

// DefaultSinkTimeout is the default SinkSettings.Timeout.
const DefaultSinkTimeout = 30 * time.Second

// SinkType is the "plugin" sink type.
type SinkType struct {
	h *Host
}

// NewSinkType returns the sink type backed by h.
func NewSinkType(h *Host) *SinkType { return &SinkType{h: h} }

// NewSettings implements sink.Type.
func (t *SinkType) NewSettings() any { return &SinkSettings{} }

// New implements sink.Type; like Prepare it starts nothing.
func (t *SinkType) New(spec *sink.Spec, _ sink.Env) (sink.Sink, error) {
	s, ok := spec.Settings.(*SinkSettings)
	if !ok || s == nil {
		return nil, fmt.Errorf("plugin: settings are %T, want *host.SinkSettings", spec.Settings)
	}
	ps, err := buildSpec(pb.SinkPluginName, &s.CommonSettings, spec.Dir)
	if err != nil {
		return nil, err
	}
	data, handle, err := configJSON(s.Config)
	if err != nil {
		return nil, err
	}
	if sch := t.h.knownSchema(&ps); sch != nil {
		if err := validateConfig(sch, data); err != nil {
			return nil, fmt.Errorf("plugin %s: %w", ps.path, err)
		}
	}
	timeout := s.Timeout.D()
	if timeout <= 0 {
		timeout = DefaultSinkTimeout
	}
	return &Sink{h: t.h, spec: ps, data: data, handle: handle, timeout: timeout, name: spec.Name}, nil
}

// Sink is a plugin sink. The pipeline owns batching, retries and the
// spool; Sink only moves batches to the plugin process.
type Sink struct {
	h       *Host
	spec    procSpec
	data    []byte
	handle  string
	timeout time.Duration
	name    string

	mu sync.Mutex
	p  *proc
}

// Connect starts the plugin process (if no other sink or check runs it)
// and opens the sink's config there.
func (s *Sink) Connect(ctx context.Context) error {
	_, _, err := s.ready(ctx)
	return err
}

func (s *Sink) ready(ctx context.Context) (*proc, *instance, error) {
	s.mu.Lock()
	if s.p == nil {
		p, err := s.h.acquire(s.spec)
		if err != nil {
			s.mu.Unlock()
			return nil, nil, fmt.Errorf("sink %s: %w", s.name, err)
		}
		p.addHandle(s.handle, s.data)
		s.p = p
	}
	p := s.p
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	inst, err := p.get(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("sink %s: %w", s.name, err)
	}
	if err := inst.configure(ctx, s.handle, s.data, s.timeout); err != nil {
		return nil, nil, fmt.Errorf("sink %s: %w", s.name, err)
	}
	return p, inst, nil
}

// WriteBatch sends the batch to the plugin. An error the plugin marks
// permanent is returned as sink.Permanent (dead letter); anything else —
// the plugin's own errors, a crash, a hang — is retried by the pipeline.
func (s *Sink) WriteBatch(ctx context.Context, batch []model.Result) error {
	for attempt := 0; ; attempt++ {
		p, inst, err := s.ready(ctx)
		if err != nil {
			return err
		}
		req := &pb.WriteBatchRequest{Handle: s.handle, Results: make([]*pb.Result, len(batch))}
		for i := range batch {
			req.Results[i] = resultToPB(&batch[i])
		}
		rctx, cancel, budget := rpcContext(ctx, s.timeout)
		req.TimeoutMs = max(pluginTimeout(budget).Milliseconds(), 1)
		resp, err := inst.sink.WriteBatch(rctx, req)
		if status.Code(err) == codes.NotFound && attempt == 0 {
			cancel()
			inst.forget(s.handle)
			continue
		}
		if err != nil {
			err = p.rpcError(rctx, inst, "WriteBatch", budget, err)
			cancel()
			return fmt.Errorf("sink %s: %w", s.name, err)
		}
		cancel()
		if msg := resp.GetError(); msg != "" {
			err := fmt.Errorf("sink %s: plugin %s: %s", s.name, inst.name(), utf8s(msg))
			if resp.GetPermanent() {
				return sink.Permanent(err)
			}
			return err
		}
		return nil
	}
}

// Close releases the sink's config in the plugin and, if it was the last
// user, stops the process. The sink may be connected again afterwards.
func (s *Sink) Close() error {
	s.mu.Lock()
	p := s.p
	s.p = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	if last, inst := p.dropHandle(s.handle); last && inst != nil {
		// Synchronous: a sink's Close (flushing files, closing
		// connections) should be done when Close returns.
		inst.release(s.handle)
	}
	s.h.release(p)
	return nil
}

var (
	_ sink.Type = (*SinkType)(nil)
	_ sink.Sink = (*Sink)(nil)
)
