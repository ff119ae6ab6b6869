// Package checktype is the seam between the scheduler and the things that
// actually check: a Type turns a configured check into a Runner; the
// scheduler only ever calls Runner.Run. Nagios plugins, Lua scripts, go-plugin
// binaries and SNMP polls are each one Type registered in a Registry value.
package checktype

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/reconmon/recon/agent/model"
)

// Type is one kind of check.
type Type interface {
	// NewSettings returns a pointer to a zero settings struct. The config
	// loader decodes the check's type-specific keys into it strictly, so an
	// unknown or mistyped key is reported with its file and line. A type
	// without own keys returns nil.
	NewSettings() any
	// Prepare validates c (whose Settings holds what NewSettings returned,
	// decoded) and returns a Runner for it. Prepare compiles and checks but
	// starts nothing: a failed reload must leave no trace.
	Prepare(c *model.Check) (Runner, error)
}

// Runner runs one prepared check.
//
// Run must return by the time ctx is done (the scheduler sets the check's
// timeout on ctx) with UNKNOWN and the reason when it could not finish. It
// fills Status, Output, LongOutput, Metrics and optionally Duration; the
// scheduler sets identity, time, attempt and state type. prev is the last
// result of this check, or nil.
type Runner interface {
	Run(ctx context.Context, prev *model.Result) model.Result
}

// Closer is implemented by runners that hold resources (a plugin process, a
// pool of Lua states); the scheduler closes a runner when its check is
// removed or replaced.
type Closer interface {
	Close() error
}

// Passive is implemented by runners of checks whose results arrive from
// outside (Nagios passive checks). The scheduler never runs them on a
// period; it runs them only when no result has been submitted for
// Freshness (0: never), and the result they return then is the stale
// result, as in Nagios freshness checking.
type Passive interface {
	Freshness() time.Duration
}

// Registry maps type names to Types. It is a value: build one, register the
// types, pass it to whatever needs it.
type Registry struct {
	types map[string]Type
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]Type{}} }

// Register adds t under name; registering a name twice is a programming
// error and panics at wiring time.
func (r *Registry) Register(name string, t Type) {
	if _, dup := r.types[name]; dup {
		panic(fmt.Sprintf("checktype: %q registered twice", name))
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

// Func adapts a function to Runner.
type Func func(ctx context.Context, prev *model.Result) model.Result

func (f Func) Run(ctx context.Context, prev *model.Result) model.Result { return f(ctx, prev) }

// Unknown builds an UNKNOWN result with the given output; runners use it for
// every failure to run, so the reason always reaches the operator.
func Unknown(format string, args ...any) model.Result {
	return model.Result{Status: model.Unknown, Output: fmt.Sprintf(format, args...)}
}
