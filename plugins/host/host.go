// Package host runs recon's out-of-process plugins (hashicorp/go-plugin,
// gRPC only) and exposes them as the "plugin" check type and sink type.
//
// One plugin process serves every check (or sink) that uses the same
// binary with the same checksum, transport and environment. Processes
// start lazily, on the first run that needs them, and stop when the last
// runner or sink using them is closed. Before a process is started its
// binary is checked against the configured sha256 (go-plugin
// SecureConfig); the connection uses go-plugin's AutoMTLS. Each distinct
// check config is validated against the plugin's JSON Schema and sent
// once per process (Configure); runs then name it by a handle.
//
// Supervision: every RPC carries the check's deadline. A plugin that does
// not answer in time (hung), exits, crashes or panics is killed (its
// whole process group) and restarted on a later run after an exponential
// backoff; meanwhile its checks report UNKNOWN with the reason. Nothing a
// plugin does can panic or block the agent: its stderr is parsed by the
// host itself (go-plugin's parser panics on some malformed lines), its
// results are validated like any outside input, and stopping it is
// bounded in time.
package host

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Options configure a Host. Zero values mean the defaults.
type Options struct {
	Logger *slog.Logger
	// MinBackoff is the delay before the first restart after a failure;
	// it doubles with each further failure up to MaxBackoff.
	MinBackoff time.Duration // default 1s
	MaxBackoff time.Duration // default 1m
	// StableAfter: a process that ran this long before failing starts
	// the backoff over.
	StableAfter time.Duration // default 1m
	// StartTimeout bounds starting a process: checksum, handshake, Info
	// and ConfigSchema.
	StartTimeout time.Duration // default 10s
	// StopTimeout bounds a graceful stop before the process group is
	// killed.
	StopTimeout time.Duration // default 2s
	// OutputLimit caps each output string a plugin returns (bytes).
	OutputLimit int // default DefaultOutputLimit
	// MaxBatch caps the checks sent in one RunMany or RunStream call.
	MaxBatch int // default 1000
	// RunSingly sends every scheduled run in a Run call of its own instead
	// of coalescing the runs waiting at the same moment into RunStream
	// calls (for comparison; coalescing is the default).
	RunSingly bool
}

func (o *Options) withDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, time.Minute)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	def(&o.StableAfter, time.Minute)
	def(&o.StartTimeout, 10*time.Second)
	def(&o.StopTimeout, 2*time.Second)
	if o.OutputLimit <= 0 {
		o.OutputLimit = DefaultOutputLimit
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
}

// Host owns the plugin processes of one agent. Create it with New (which
// starts nothing), register CheckType and SinkType built on it, and Close
// it at shutdown.
type Host struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	procs   map[procKey]*proc
	schemas map[schemaKey]*jsonschema.Schema
	closed  bool

	// bg counts background work (starting, stopping processes, releasing
	// configs) that Close must wait for.
	bgMu   sync.Mutex
	bgN    int
	bgZero *sync.Cond
}

// New returns a host with no processes.
func New(opts Options) *Host {
	opts.withDefaults()
	h := &Host{opts: opts, log: opts.Logger, procs: map[procKey]*proc{}, schemas: map[schemaKey]*jsonschema.Schema{}}
	h.bgZero = sync.NewCond(&h.bgMu)
	return h
}

// background runs f in a goroutine that Close waits for.
func (h *Host) background(f func()) {
	h.bgMu.Lock()
	h.bgN++
	h.bgMu.Unlock()
	go func() {
		defer func() {
			h.bgMu.Lock()
			h.bgN--
			if h.bgN == 0 {
				h.bgZero.Broadcast()
			}
			h.bgMu.Unlock()
		}()
		f()
	}()
}

func (h *Host) waitBackground() {
	h.bgMu.Lock()
	for h.bgN > 0 {
		h.bgZero.Wait()
	}
	h.bgMu.Unlock()
}

// Close stops every plugin process and waits for them to exit (each for
// at most StopTimeout before it is killed; a process still starting is
// waited for, at most StartTimeout, and stopped). Runs after Close report
// UNKNOWN.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	procs := make([]*proc, 0, len(h.procs))
	for _, p := range h.procs {
		procs = append(procs, p)
	}
	h.procs = map[procKey]*proc{}
	h.mu.Unlock()
	for _, p := range procs {
		p.mu.Lock()
		p.removed = true // a start in progress stops what it started
		inst := p.inst
		p.inst = nil
		p.mu.Unlock()
		if inst != nil {
			h.stopAsync(inst, true)
		}
	}
	h.waitBackground()
	return nil
}

// Stats describes one plugin process slot (for /metrics and the API).
type Stats struct {
	Name     string // plugin name from Info, or the binary's name
	Path     string
	Kind     string // "check" or "sink"
	Users    int    // runners and sinks using it
	Running  bool
	PID      int
	Restarts uint64 // processes started after the first
	Failures uint64 // crashes, hangs, exits and failed starts
	// LastError is the last failure's reason, empty if none.
	LastError string
	// Runs counts check runs sent to the plugin and Calls the RPCs that
	// carried them (Run, or RunStream with coalesced runs): their ratio
	// is the mean batch size.
	Runs, Calls uint64
}

// Stats returns the state of every plugin process, sorted by path.
func (h *Host) Stats() []Stats {
	h.mu.Lock()
	procs := make([]*proc, 0, len(h.procs))
	for _, p := range h.procs {
		procs = append(procs, p)
	}
	h.mu.Unlock()
	out := make([]Stats, 0, len(procs))
	for _, p := range procs {
		p.mu.Lock()
		st := Stats{Name: p.name, Path: p.spec.path, Kind: p.spec.kind, Users: p.users, Restarts: p.restarts,
			Failures: p.failuresTotal, LastError: p.lastErr}
		if p.inst != nil && !p.inst.exited() {
			st.Running, st.PID = true, p.inst.pid
		}
		if b := p.batch; b != nil {
			st.Runs, st.Calls = b.runs.Load(), b.calls.Load()
		}
		p.mu.Unlock()
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path+out[i].Kind < out[j].Path+out[j].Kind })
	return out
}

// CommonSettings are the keys shared by plugin checks and sinks.
type CommonSettings struct {
	// Path is the plugin executable, relative to the defining file's
	// directory unless absolute.
	Path string `toml:"path"`
	// SHA256 pins the executable's checksum (hex); required unless
	// InsecureSkipChecksum is set.
	SHA256 string `toml:"sha256"`
	// InsecureSkipChecksum runs the binary without checking its sha256
	// (development only: anyone who can replace the file runs code as recon).
	InsecureSkipChecksum bool `toml:"insecure_skip_checksum"`
	// AutoMTLS (default true) authenticates both ends of the plugin
	// connection with one-time certificates.
	AutoMTLS *bool `toml:"auto_mtls"`
	// Env adds variables to the plugin's minimal environment.
	Env map[string]string `toml:"env"`
	// Config is passed to the plugin after validation against its schema.
	Config map[string]any `toml:"config"`
}

// procSpec is what identifies a plugin process; equal specs share one.
type procSpec struct {
	kind     string // "check", "sink", or "" (inspect: either)
	path     string
	sum      []byte // nil when the checksum check is skipped
	autoMTLS bool
	env      []string
}

type procKey struct {
	kind, path, sum, env string
	autoMTLS             bool
}

func (s *procSpec) key() procKey {
	return procKey{kind: s.kind, path: s.path, sum: hex.EncodeToString(s.sum), env: strings.Join(s.env, "\x00"), autoMTLS: s.autoMTLS}
}

// schemaKey identifies a binary whose schema is known: with a pinned
// checksum the schema cannot change, so a config can be validated at
// Prepare (on reload) without starting anything.
type schemaKey struct{ kind, path, sum string }

// buildSpec validates the common settings and resolves the path.
func buildSpec(kind string, s *CommonSettings, dir string) (procSpec, error) {
	if strings.TrimSpace(s.Path) == "" {
		return procSpec{}, fmt.Errorf("path is required (the plugin executable)")
	}
	path := s.Path
	if !filepath.IsAbs(path) {
		if dir != "" {
			path = filepath.Join(dir, path)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return procSpec{}, fmt.Errorf("path %q: %w", s.Path, err)
		}
		path = abs
	}
	path = filepath.Clean(path)
	spec := procSpec{kind: kind, path: path, autoMTLS: s.AutoMTLS == nil || *s.AutoMTLS}
	switch sum := strings.ToLower(strings.TrimSpace(s.SHA256)); {
	case sum != "":
		b, err := hex.DecodeString(sum)
		if err != nil || len(b) != 32 {
			return procSpec{}, fmt.Errorf("sha256 %q: want 64 hex digits (sha256sum %s)", s.SHA256, s.Path)
		}
		spec.sum = b
	case !s.InsecureSkipChecksum:
		return procSpec{}, fmt.Errorf("sha256 is required: pin the plugin binary's checksum (sha256sum %s), or set insecure_skip_checksum = true", s.Path)
	}
	env, err := pluginEnv(s.Env)
	if err != nil {
		return procSpec{}, err
	}
	spec.env = env
	return spec, nil
}

// pluginEnv is the plugin's environment: a minimal one from the agent's
// (plugins do not inherit the agent's secrets) plus the configured
// variables, sorted so that equal settings give equal specs.
func pluginEnv(extra map[string]string) ([]string, error) {
	env := map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin"}
	for _, k := range []string{"PATH", "TMPDIR", "TZ", "LANG", "LC_ALL", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	for k, v := range extra {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("env: invalid variable %q", k)
		}
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

// acquire returns the process slot for spec, counting one more user.
func (h *Host) acquire(spec procSpec) (*proc, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errHostClosed
	}
	k := spec.key()
	p := h.procs[k]
	if p == nil {
		p = newProc(h, spec)
		h.procs[k] = p
	}
	p.mu.Lock()
	p.users++
	p.mu.Unlock()
	return p, nil
}

// release counts one user less; the last one stops the process.
func (h *Host) release(p *proc) {
	h.mu.Lock()
	p.mu.Lock()
	p.users--
	var inst *instance
	if p.users <= 0 {
		p.removed = true
		inst, p.inst = p.inst, nil
		if h.procs[p.spec.key()] == p {
			delete(h.procs, p.spec.key())
		}
	}
	p.mu.Unlock()
	h.mu.Unlock()
	if inst != nil {
		h.stopAsync(inst, true)
	}
}

// stopAsync stops inst in the background (graceful: ask it to exit
// first); Close waits for every such stop.
func (h *Host) stopAsync(inst *instance, graceful bool) {
	h.background(func() { inst.stop(graceful, h.opts.StopTimeout) })
}

func (h *Host) knownSchema(spec *procSpec) *jsonschema.Schema {
	if spec.sum == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.schemas[schemaKey{spec.kind, spec.path, hex.EncodeToString(spec.sum)}]
}

func (h *Host) rememberSchema(spec *procSpec, s *jsonschema.Schema) {
	if spec.sum == nil {
		return
	}
	h.mu.Lock()
	h.schemas[schemaKey{spec.kind, spec.path, hex.EncodeToString(spec.sum)}] = s
	h.mu.Unlock()
}

// Info is what a plugin says about itself.
type Info struct {
	Name            string `json:"name"`
	Version         string `json:"version"`
	Description     string `json:"description,omitempty"`
	Kind            string `json:"kind"` // "check" or "sink"
	ProtocolVersion int    `json:"protocol_version"`
	SDK             string `json:"sdk,omitempty"`
	// Path and SHA256 describe the binary (Inspect fills them).
	Path   string `json:"path,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Inspect starts the plugin at path (without a checksum pin: it runs
// the binary), asks for its Info and config schema, and stops it. The
// binary's sha256 is in Info, ready to be pinned in the configuration.
func Inspect(ctx context.Context, path string) (Info, []byte, error) {
	return New(Options{}).Inspect(ctx, path)
}

// Inspect is the package Inspect with this host's options.
func (h *Host) Inspect(ctx context.Context, path string) (Info, []byte, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Info{}, nil, fmt.Errorf("plugin inspect: %w", err)
	}
	sum, err := fileSHA256(abs)
	if err != nil {
		return Info{}, nil, fmt.Errorf("plugin inspect: %w", err)
	}
	env, _ := pluginEnv(nil)
	p := newProc(h, procSpec{path: abs, autoMTLS: true, env: env})
	type out struct {
		inst *instance
		err  error
	}
	ch := make(chan out, 1)
	go func() {
		inst, err := p.launch()
		ch <- out{inst, err}
	}()
	select {
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.inst != nil {
				o.inst.stop(false, h.opts.StopTimeout)
			}
		}()
		return Info{}, nil, fmt.Errorf("plugin inspect %s: %w", path, ctx.Err())
	case o := <-ch:
		if o.err != nil {
			return Info{}, nil, fmt.Errorf("plugin inspect %s: %w", path, o.err)
		}
		defer o.inst.stop(true, h.opts.StopTimeout)
		info := o.inst.info
		info.Path, info.SHA256 = abs, sum
		return info, []byte(o.inst.schemaSrc), nil
	}
}
