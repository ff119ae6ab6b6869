// Package lua runs check scripts written in Lua (gopher-lua) as the "lua"
// check type (SPEC §6).
//
// # Design
//
// A script is compiled once per distinct source text into a shared
// *FunctionProto (Prepare). Runs borrow an LState from a small pool owned
// by the Type, shared by every Lua check of the agent: a prepared check holds
// no LState, only a pointer to its compiled script and its settings, so
// 100,000 Lua checks cost a few hundred bytes each plus one pool of at most
// Options.MaxIdle idle states.
//
// # State contract
//
// Every run gets fresh globals: a new environment table whose missing keys
// are looked up, on first use, in the sandbox's library; a library table
// (string, math, http, …) is copied into the run's environment when first
// touched, so a script may change its copy without affecting any other run.
// Nothing a script stores survives the run; the only memory between runs
// of a check is ctx.previous, the last result. Go objects a run opens (TCP
// connections) are closed when the run ends. States used by runs granted
// "io" or "debug" (which can change process-wide or state-wide things) and
// states whose run failed are closed instead of pooled. gopher-lua does not
// clear popped call frames, so an idle state may keep its last run's
// garbage (and compiled script) reachable until its next run: bounded by
// the pool size, never visible to a script.
//
// # Limits
//
// Each run executes under the check's context: the VM checks it before
// every instruction, so `while true do end` ends at the timeout, and every
// module call that can block (network, sleep, exec) honours it. The same
// hook counts instructions against max_instructions. The call stack depth,
// the value stack, strings built by library functions (string.rep,
// string.format, string.gsub, table.concat, module results) and coroutines
// per run are capped. gopher-lua has no allocation hook, so two things are
// bounded only by the instruction budget and the timeout: the `..`
// operator (which can double a string per instruction) and Lua pattern
// matching in string.find/match/gmatch/gsub, which runs in Go without
// interruption (use the re module, Go's linear-time regexp, on large
// inputs). See README.md.
package lua

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios"
)

// Settings are the keys of a check with type = "lua".
type Settings struct {
	// Script is the path of the .lua file (relative paths resolve against
	// the directory of the configuration file that defines the check), or
	// "builtin:NAME" for a script bundled with recon (see Builtins).
	Script string `toml:"script"`
	// Allow grants capabilities beyond the default sandbox: "exec", "pg",
	// "require", "os", "io", "debug".
	Allow []string `toml:"allow"`
	// Config is handed to the script as ctx.config.
	Config map[string]any `toml:"config"`
	// MaxInstructions overrides the per-run VM instruction budget
	// (0: the type's default).
	MaxInstructions int64 `toml:"max_instructions"`
}

// Options configure the "lua" check type for every Lua check of an agent.
type Options struct {
	Logger *slog.Logger
	// MaxIdle bounds the idle LStates kept for reuse across all Lua checks
	// (default 2×GOMAXPROCS, at least 4). Busy states beyond it are closed
	// when their run ends.
	MaxIdle int
	// MaxInstructions is the default VM instruction budget of a run
	// (default DefaultMaxInstructions).
	MaxInstructions int64
	// MaxStringSize caps the length of a string built by a library or
	// module function (default DefaultMaxStringSize).
	MaxStringSize int
	// MaxCoroutines caps coroutines created per run (default 64): each is
	// a whole LState in gopher-lua.
	MaxCoroutines int
	// MaxMetrics caps the metrics of one result (default 10,000).
	MaxMetrics int
	// MaxOutput caps output plus long output of a result in bytes (default
	// 64 KiB, like the Nagios runner).
	MaxOutput int
	// HTTPMaxBody is the default cap of an http response body kept for the
	// script (default 1 MiB); a call may ask for up to MaxStringSize.
	HTTPMaxBody int
	// RootCAs verifies TLS in the http, tcp and tls modules; nil means the
	// system roots.
	RootCAs *x509.CertPool
	// Exec runs the commands of the exec module; nil means nagios.Exec.
	// The agent passes the nagios type's Run so Lua commands share the
	// plugin concurrency limit.
	Exec func(ctx context.Context, argv []string, opts nagios.ExecOptions) nagios.ExecResult
}

// Defaults of Options. The check's timeout is what bounds a run; the
// instruction budget is a CPU backstop for checks with long timeouts
// (about 10 s of pure Lua on current hardware).
const (
	DefaultMaxInstructions = 1_000_000_000
	DefaultMaxStringSize   = 16 << 20
	DefaultMaxOutput       = 64 << 10
)

// Type is the "lua" check type. It owns the LState pool and the cache of
// compiled scripts; both are values of the Type, nothing is global.
type Type struct {
	opts    Options
	log     *slog.Logger
	pool    pool
	scripts scriptCache
	regexps regexpCache
	http    httpClients
	mono    time.Time // origin of time.monotonic()
	closed  atomic.Bool

	// counters for /metrics
	timeouts, budgetExceeded, scriptErrors atomic.Uint64
}

// Counters reports run failures by kind (timeouts, instruction limit,
// script errors) for the agent's /metrics.
func (t *Type) Counters() map[string]uint64 {
	return map[string]uint64{
		"timeouts":          t.timeouts.Load(),
		"instruction_limit": t.budgetExceeded.Load(),
		"script_errors":     t.scriptErrors.Load(),
	}
}

// New returns the type. It starts nothing.
func New(opts Options) *Type {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxIdle <= 0 {
		opts.MaxIdle = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if opts.MaxInstructions <= 0 {
		opts.MaxInstructions = DefaultMaxInstructions
	}
	if opts.MaxStringSize <= 0 {
		opts.MaxStringSize = DefaultMaxStringSize
	}
	if opts.MaxCoroutines <= 0 {
		opts.MaxCoroutines = 64
	}
	if opts.MaxMetrics <= 0 {
		opts.MaxMetrics = 10_000
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	if opts.HTTPMaxBody <= 0 {
		opts.HTTPMaxBody = 1 << 20
	}
	if opts.HTTPMaxBody > opts.MaxStringSize {
		opts.HTTPMaxBody = opts.MaxStringSize
	}
	if opts.Exec == nil {
		opts.Exec = nagios.Exec
	}
	t := &Type{opts: opts, log: opts.Logger, mono: time.Now()}
	t.pool.max = opts.MaxIdle
	return t
}

// Close drops the idle states; runs still going finish normally.
func (t *Type) Close() error {
	t.closed.Store(true)
	t.pool.drain()
	t.http.close()
	return nil
}

// NewSettings implements checktype.Type.
func (t *Type) NewSettings() any { return &Settings{} }

// capability bits granted by Settings.Allow.
type caps uint8

const (
	capExec caps = 1 << iota
	capIO
	capOS
	capDebug
	capRequire
	capPG
)

var capNames = []struct {
	name string
	bit  caps
}{{"exec", capExec}, {"io", capIO}, {"os", capOS}, {"debug", capDebug}, {"require", capRequire}, {"pg", capPG}}

// Capabilities lists the names Settings.Allow accepts.
func Capabilities() []string {
	names := make([]string, len(capNames))
	for i, c := range capNames {
		names[i] = c.name
	}
	sort.Strings(names)
	return names
}

func parseCaps(allow []string) (caps, error) {
	var c caps
	for _, a := range allow {
		found := false
		for _, n := range capNames {
			if a == n.name {
				c |= n.bit
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("allow: unknown capability %q (want one of %s)", a, strings.Join(Capabilities(), ", "))
		}
	}
	return c, nil
}

// Prepare reads and compiles the script (once per distinct source text,
// shared by every check using it) and validates the settings. It starts
// nothing and holds no LState.
func (t *Type) Prepare(c *model.Check) (checktype.Runner, error) {
	s, ok := c.Settings.(*Settings)
	if !ok || s == nil {
		return nil, fmt.Errorf("lua: settings are %T, want *lua.Settings", c.Settings)
	}
	if strings.TrimSpace(s.Script) == "" {
		return nil, errors.New("script is required (a .lua file or builtin:NAME)")
	}
	cp, err := parseCaps(s.Allow)
	if err != nil {
		return nil, err
	}
	if s.MaxInstructions < 0 {
		return nil, fmt.Errorf("max_instructions must be >= 0, got %d", s.MaxInstructions)
	}
	if err := checkConfig(s.Config); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	path := s.Script
	if !strings.HasPrefix(path, builtinPrefix) && !filepath.IsAbs(path) && c.Dir != "" {
		path = filepath.Join(c.Dir, path)
	}
	sc, err := t.scripts.load(path)
	if err != nil {
		return nil, err
	}
	r := &runner{t: t, s: sc, name: c.Name, target: c.Target, timeout: c.Timeout, caps: cp, config: s.Config,
		maxInstr: s.MaxInstructions}
	if r.maxInstr == 0 {
		r.maxInstr = t.opts.MaxInstructions
	}
	return r, nil
}

// runner is one prepared Lua check: a pointer to the shared compiled
// script and the check's settings; no LState.
type runner struct {
	t        *Type
	s        *script
	name     string
	target   string
	timeout  time.Duration
	caps     caps
	config   map[string]any
	maxInstr int64
	closed   atomic.Bool
}

// Run implements checktype.Runner.
func (r *runner) Run(ctx context.Context, prev *model.Result) (res model.Result) {
	start := time.Now()
	if r.closed.Load() {
		return checktype.Unknown("lua: check %s was removed or replaced (script %s)", r.name, r.s.name)
	}
	if err := ctx.Err(); err != nil {
		return checktype.Unknown("lua: not run: %v", context.Cause(ctx))
	}
	st := r.t.pool.get(r.t)
	healthy := false
	defer func() {
		if p := recover(); p != nil {
			// A bug on the Go side of a module: the run fails, the agent
			// does not, and the state is not reused.
			res = checktype.Unknown("lua: internal error running %s: %v", r.s.name, p)
			healthy = false
			r.t.log.Error("lua: panic in run", "check", r.name, "script", r.s.name, "panic", p)
		}
		if healthy && !r.t.closed.Load() {
			r.t.pool.put(st)
		} else {
			st.close()
		}
		res.Duration = time.Since(start)
	}()
	res, healthy = st.exec(ctx, r, prev, start)
	return res
}

// Close implements checktype.Closer: the check no longer runs and its
// compiled script can be collected once no other check uses it.
func (r *runner) Close() error {
	r.closed.Store(true)
	return nil
}

// RunOptions configure RunFile.
type RunOptions struct {
	Name            string // check name (default: the file's base name without .lua)
	Target          string
	Config          map[string]any
	Allow           []string
	Timeout         time.Duration // default 10s
	MaxInstructions int64
	Previous        *model.Result
	Logger          *slog.Logger
	TypeOptions     Options // type options (limits, RootCAs, Exec); Logger above wins
}

// RunFile runs the script at path (or "builtin:NAME") once and returns its
// result, the way `recon lua run FILE` does. The error is only for a script
// that cannot be prepared (unreadable, syntax error, bad options); anything
// that goes wrong while running is an UNKNOWN result.
func RunFile(ctx context.Context, path string, opts RunOptions) (model.Result, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	name := opts.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(strings.TrimPrefix(path, builtinPrefix)), ".lua")
	}
	topts := opts.TypeOptions
	if opts.Logger != nil {
		topts.Logger = opts.Logger
	}
	t := New(topts)
	defer t.Close()
	chk := &model.Check{ID: model.CheckID("", name), Name: name, Type: "lua", Target: opts.Target, Timeout: opts.Timeout,
		Period: opts.Timeout, MaxAttempts: 1,
		Settings: &Settings{Script: path, Allow: opts.Allow, Config: opts.Config, MaxInstructions: opts.MaxInstructions}}
	r, err := t.Prepare(chk)
	if err != nil {
		return model.Result{}, fmt.Errorf("lua: %s: %w", path, err)
	}
	defer r.(checktype.Closer).Close()
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	res := r.Run(rctx, opts.Previous)
	res.CheckID, res.Check, res.Type, res.Target, res.Time = chk.ID, chk.Name, chk.Type, chk.Target, start
	return res, nil
}

// pool is the bounded LIFO of idle states shared by every Lua check of a
// Type. LIFO keeps the most recently used (warm) states busy.
type pool struct {
	mu   sync.Mutex
	idle []*state
	max  int
}

func (p *pool) get(t *Type) *state {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		st := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return st
	}
	p.mu.Unlock()
	return newState(t)
}

func (p *pool) put(st *state) {
	p.mu.Lock()
	if len(p.idle) < p.max {
		p.idle = append(p.idle, st)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	st.close()
}

func (p *pool) drain() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, st := range idle {
		st.close()
	}
}

// idleStates reports the pool size (tests).
func (p *pool) idleStates() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
