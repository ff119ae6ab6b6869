// Package sink is the seam between the durable pipeline and the places
// results go. A Sink only connects, writes a batch and closes; the pipeline
// owns the spool, batching, retries and backoff.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/store"
)

// Sink writes batches of results somewhere.
type Sink interface {
	// Connect establishes whatever the sink needs. It is called before the
	// first batch and again after a failed write; it must be safe to call
	// more than once.
	Connect(ctx context.Context) error
	// WriteBatch writes every result of the batch or returns an error; on
	// error the pipeline retries the same batch later, so writes must be
	// idempotent on Result.Key.
	WriteBatch(ctx context.Context, batch []model.Result) error
	// Close releases resources. The sink may be connected again afterwards.
	Close() error
}

// Permanent marks an error that retrying cannot fix (the data itself is
// unacceptable to the sink). The pipeline moves such a batch to the sink's
// dead-letter file, counts and logs it; it is never silently dropped.
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Spec is one configured sink.
type Spec struct {
	Name     string // unique; names the spool directory
	Type     string
	Settings any // what the Type's NewSettings returned, decoded
	Source   string
	// Dir is the directory of the defining file; relative paths in
	// Settings resolve against it.
	Dir string
	// BatchSize is the most results handed to one WriteBatch.
	BatchSize int
	// MaxSpoolBytes bounds the on-disk spool; when full, producers block
	// (backpressure) and the wait is counted. 0 means no limit.
	MaxSpoolBytes int64
	// Fsync is the spool's durability policy: "always" (fsync before an
	// append is acknowledged; the default), "interval" or "never".
	Fsync string
	// FsyncInterval applies to Fsync = "interval".
	FsyncInterval time.Duration
}

// Env is what a sink may use from the agent.
type Env struct {
	Agent   string // this agent's name
	DataDir string // the sink may keep files under DataDir/<sink name>
	Logger  *slog.Logger
	// Store returns the agent's queryable trend store (nil if none); the
	// alerter records alert transitions there.
	Store func() store.Store
}

// Reloader is implemented by sinks that re-read files of their own (alert
// rules) on SIGHUP when their configuration is otherwise unchanged. An
// error keeps the previous files in effect.
type Reloader interface {
	Reload() error
}

// Type is one kind of sink.
type Type interface {
	// NewSettings returns a pointer to a zero settings struct, as in
	// checktype.Type.
	NewSettings() any
	// New validates the spec and builds the sink without connecting.
	New(spec *Spec, env Env) (Sink, error)
}

// Registry maps sink type names to Types.
type Registry struct {
	types map[string]Type
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]Type{}} }

// Register adds t under name; a duplicate is a wiring bug and panics.
func (r *Registry) Register(name string, t Type) {
	if _, dup := r.types[name]; dup {
		panic(fmt.Sprintf("sink: %q registered twice", name))
	}
	r.types[name] = t
}

// Lookup returns the type registered under name.
func (r *Registry) Lookup(name string) (Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Names lists registered type names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
