package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/reconmon/recon/plugins/proto"
)

// Sink is a sink plugin with config type C. Open is called once per
// distinct config (when recon connects the sink) and returns the Writer
// that receives its batches.
type Sink[C any] interface {
	Info() Info
	ConfigSchema() string
	Open(ctx context.Context, cfg *C) (Writer, error)
}

// Writer writes batches for one opened config.
type Writer interface {
	// WriteBatch writes every record or returns an error; recon retries
	// the same batch later unless the error is marked Permanent. Writes
	// must be idempotent on Record.Key (delivery is at least once).
	WriteBatch(ctx context.Context, batch []Record) error
	// Close releases what Open acquired.
	Close() error
}

type sinkServer[C any] struct {
	pb.UnimplementedSinkServer
	impl Sink[C]
	log  *slog.Logger

	mu      sync.Mutex
	writers map[string]*sinkWriter
}

// sinkWriter serialises the batches of one handle: a sink's batches are
// ordered, and most writers are not safe for concurrent use.
type sinkWriter struct {
	mu sync.Mutex
	w  Writer
}

func newSinkServer[C any](impl Sink[C], o *options) *sinkServer[C] {
	return &sinkServer[C]{impl: impl, log: o.logger, writers: map[string]*sinkWriter{}}
}

func (s *sinkServer[C]) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return infoToPB(s.impl.Info(), pb.Kind_KIND_SINK), nil
}

func (s *sinkServer[C]) ConfigSchema(context.Context, *pb.ConfigSchemaRequest) (*pb.ConfigSchemaResponse, error) {
	return &pb.ConfigSchemaResponse{JsonSchema: s.impl.ConfigSchema()}, nil
}

func (s *sinkServer[C]) protect(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("plugin panicked", "in", what, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("plugin panicked in %s: %v", what, p)
		}
	}()
	return f()
}

func (s *sinkServer[C]) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	h := req.GetHandle()
	if h == "" {
		return nil, status.Error(codes.InvalidArgument, "empty config handle")
	}
	s.mu.Lock()
	_, open := s.writers[h]
	s.mu.Unlock()
	if open {
		return &pb.ConfigureResponse{}, nil
	}
	cfg, err := decode[C](req.GetConfigJson())
	if err != nil {
		return &pb.ConfigureResponse{Error: err.Error()}, nil
	}
	var w Writer
	if err := s.protect("Open", func() (err error) { w, err = s.impl.Open(ctx, cfg); return err }); err != nil {
		return &pb.ConfigureResponse{Error: err.Error()}, nil
	}
	if w == nil {
		return &pb.ConfigureResponse{Error: "plugin bug: Open returned no Writer and no error"}, nil
	}
	s.mu.Lock()
	_, dup := s.writers[h]
	if !dup {
		s.writers[h] = &sinkWriter{w: w}
	}
	s.mu.Unlock()
	if dup {
		_ = s.protect("Close", w.Close)
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *sinkServer[C]) WriteBatch(ctx context.Context, req *pb.WriteBatchRequest) (*pb.WriteBatchResponse, error) {
	s.mu.Lock()
	sw, ok := s.writers[req.GetHandle()]
	s.mu.Unlock()
	if !ok {
		return nil, errUnknownHandle(req.GetHandle())
	}
	ctx, cancel, _ := deadline(ctx, req.GetTimeoutMs())
	defer cancel()
	batch := make([]Record, len(req.GetResults()))
	for i, r := range req.GetResults() {
		batch[i] = recordFromPB(r)
	}
	sw.mu.Lock()
	err := s.protect("WriteBatch", func() error { return sw.w.WriteBatch(ctx, batch) })
	sw.mu.Unlock()
	if err != nil {
		return &pb.WriteBatchResponse{Error: err.Error(), Permanent: IsPermanent(err)}, nil
	}
	return &pb.WriteBatchResponse{}, nil
}

func (s *sinkServer[C]) Close(_ context.Context, req *pb.CloseRequest) (*pb.CloseResponse, error) {
	s.mu.Lock()
	sw, ok := s.writers[req.GetHandle()]
	delete(s.writers, req.GetHandle())
	s.mu.Unlock()
	if !ok {
		return &pb.CloseResponse{}, nil
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if err := s.protect("Close", sw.w.Close); err != nil {
		return &pb.CloseResponse{Error: err.Error()}, nil
	}
	return &pb.CloseResponse{}, nil
}
