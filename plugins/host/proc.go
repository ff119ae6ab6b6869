package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	plugin "github.com/hashicorp/go-plugin"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/reconmon/recon/plugins/proto"
)

var errHostClosed = errors.New("plugin host is closed (agent shutting down)")

// maxMessage bounds one gRPC message from a plugin (go-plugin's default
// is 2 GiB); a RunMany answer of MaxBatch results fits easily.
const maxMessage = 64 << 20

// minHangBudget: an RPC that had less time than this when it started
// and ran out is not evidence of a hung plugin (the check's timeout was
// spent elsewhere, e.g. waiting for the process to start).
const minHangBudget = 50 * time.Millisecond

// proc is one plugin process slot: the current instance (process), its
// failure history and backoff, and the config handles its users need.
type proc struct {
	h    *Host
	spec procSpec

	mu            sync.Mutex
	name          string
	users         int
	removed       bool
	inst          *instance
	starting      *startCall
	failures      int // consecutive, for the backoff
	failuresTotal uint64
	starts        uint64
	restarts      uint64
	retryAt       time.Time
	lastErr       string
	handles       map[string]*handleRef
	warnedCksum   bool
	batch         *batcher // coalesces check runs (coalesce.go)
}

// batcher returns the slot's run coalescer.
func (p *proc) batcher() *batcher {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.batch == nil {
		p.batch = &batcher{p: p}
	}
	return p.batch
}

type handleRef struct {
	refs int
	json []byte
}

type startCall struct {
	done chan struct{}
	inst *instance
	err  error
}

func newProc(h *Host, spec procSpec) *proc {
	return &proc{h: h, spec: spec, name: filepath.Base(spec.path), handles: map[string]*handleRef{}}
}

// downError says why a plugin cannot serve a run right now.
type downError struct {
	name    string
	reason  string
	retryIn time.Duration
}

func (e *downError) Error() string {
	return fmt.Sprintf("plugin %s is down: %s (next start attempt in %v)", e.name, e.reason, e.retryIn.Round(time.Millisecond))
}

// get returns a running instance, starting one if none runs and the
// backoff allows. It waits for a start at most until ctx is done; the
// start itself goes on in the background and serves later runs.
func (p *proc) get(ctx context.Context) (*instance, error) {
	p.mu.Lock()
	if p.removed {
		p.mu.Unlock()
		return nil, errHostClosed
	}
	if inst := p.inst; inst != nil {
		if !inst.exited() {
			p.mu.Unlock()
			return inst, nil
		}
		// Exited while idle: that is a failure like any other.
		p.failLocked(inst, inst.exitReason())
	}
	if now := time.Now(); now.Before(p.retryAt) {
		err := &downError{name: p.name, reason: p.lastErr, retryIn: p.retryAt.Sub(now)}
		p.mu.Unlock()
		return nil, err
	}
	call := p.starting
	if call == nil {
		call = &startCall{done: make(chan struct{})}
		p.starting = call
		p.h.background(func() { p.start(call) })
	}
	name := p.name
	p.mu.Unlock()
	select {
	case <-call.done:
		return call.inst, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("plugin %s was still starting when the check's time ran out: %w", name, context.Cause(ctx))
	}
}

func (p *proc) start(call *startCall) {
	inst, err := p.launch()
	p.mu.Lock()
	p.starting = nil
	switch {
	case err != nil:
		p.recordFailureLocked(time.Time{}, "start failed: "+err.Error())
		call.err = fmt.Errorf("plugin %s: start failed: %w", p.name, err)
	case p.removed:
		// Every user left while it started.
		call.err = errHostClosed
		p.h.stopAsync(inst, true)
	default:
		p.inst = inst
		p.name = inst.name()
		p.starts++
		if p.starts > 1 {
			p.restarts++
		}
		call.inst = inst
	}
	p.mu.Unlock()
	close(call.done)
}

// backoff returns the delay before the n-th consecutive restart.
func (p *proc) backoff(n int) time.Duration {
	d := p.h.opts.MinBackoff
	for i := 1; i < n && d < p.h.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.h.opts.MaxBackoff)
}

func (p *proc) recordFailureLocked(started time.Time, reason string) {
	if !started.IsZero() && time.Since(started) >= p.h.opts.StableAfter {
		p.failures = 0
	}
	p.failures++
	p.failuresTotal++
	d := p.backoff(p.failures)
	p.retryAt = time.Now().Add(d)
	p.lastErr = reason
	p.h.log.Error("plugin failed; its checks report UNKNOWN until it is restarted", "plugin", p.name,
		"path", p.spec.path, "reason", reason, "restart_in", d, "consecutive_failures", p.failures)
}

// failLocked records that inst failed and kills it. Only the first
// report of one instance's failure counts.
func (p *proc) failLocked(inst *instance, reason string) {
	if p.inst == inst {
		p.inst = nil
		p.recordFailureLocked(inst.started, reason)
	}
	p.h.stopAsync(inst, false)
}

func (p *proc) fail(inst *instance, reason string) {
	p.mu.Lock()
	p.failLocked(inst, reason)
	p.mu.Unlock()
}

// addHandle registers a user of a config handle.
func (p *proc) addHandle(handle string, data []byte) {
	p.mu.Lock()
	r := p.handles[handle]
	if r == nil {
		r = &handleRef{json: data}
		p.handles[handle] = r
	}
	r.refs++
	p.mu.Unlock()
}

// dropHandle unregisters a user of a handle and reports whether it was
// the last; the caller then tells the running instance, if any.
func (p *proc) dropHandle(handle string) (last bool, inst *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.handles[handle]
	if r == nil {
		return false, nil
	}
	r.refs--
	if r.refs > 0 {
		return false, nil
	}
	delete(p.handles, handle)
	return true, p.inst
}

// rpcError turns a failed RPC into the error a check reports, and kills
// the instance when the failure means the process is broken: it did not
// answer within the deadline (hung), or it is gone (exited, crashed,
// panicked). Other errors (the plugin answered with an error status)
// leave it running.
func (p *proc) rpcError(ctx context.Context, inst *instance, op string, budget time.Duration, err error) error {
	code := status.Code(err)
	name := inst.name()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && (code == codes.DeadlineExceeded || code == codes.Canceled):
		if budget < minHangBudget || inst.exited() {
			break
		}
		reason := fmt.Sprintf("hung: no answer to %s within %v; killed", op, budget.Round(time.Millisecond))
		p.fail(inst, reason)
		return fmt.Errorf("plugin %s %s (restart after backoff)", name, reason)
	case ctx.Err() != nil:
		return fmt.Errorf("plugin %s: %s cancelled: %w", name, op, context.Cause(ctx))
	}
	if inst.exited() || code == codes.Unavailable || code == codes.Canceled {
		// The connection broke: wait a moment for the process to be
		// reaped so that the reason can say how it ended.
		inst.waitExit(ctx, 500*time.Millisecond)
		reason := "connection lost: " + status.Convert(err).Message()
		if inst.exited() {
			reason = inst.exitReason()
		}
		p.fail(inst, reason)
		return fmt.Errorf("plugin %s %s during %s (restart after backoff)", name, reason, op)
	}
	return fmt.Errorf("plugin %s: %s: %s: %s", name, op, code, status.Convert(err).Message())
}

// instance is one running plugin process.
type instance struct {
	p         *proc
	client    *plugin.Client
	cmd       *exec.Cmd
	pid       int
	started   time.Time
	stderr    *stderrLog
	sockDir   string
	check     pb.CheckClient
	sink      pb.SinkClient
	info      Info
	schema    *jsonschema.Schema
	schemaSrc string

	mu         sync.Mutex
	configured map[string]*configureCall

	stopOnce sync.Once
}

type configureCall struct {
	done chan struct{}
	err  error
}

func (i *instance) name() string {
	if i.info.Name != "" {
		return i.info.Name
	}
	return filepath.Base(i.p.spec.path)
}

func (i *instance) exited() bool { return i.client.Exited() }

// waitExit waits up to d (and at most until ctx is done) for the process
// to have exited.
func (i *instance) waitExit(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for !i.exited() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// exitReason says how the process ended; call it once exited() is true.
func (i *instance) exitReason() string {
	reason := "exited"
	// ProcessState is set by go-plugin's Wait before Exited reports true.
	if ps := i.cmd.ProcessState; ps != nil {
		reason = "exited (" + ps.String() + ")"
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			reason = "killed by signal " + ws.Signal().String()
		}
	}
	i.stderr.flush()
	if line := crashLine(i.stderr.lastLines()); line != "" {
		const max = 300
		if len(line) > max {
			line = line[:max] + "…"
		}
		reason += ": " + line
	}
	return reason
}

// stop ends the process: gracefully (go-plugin asks it to shut down, then
// kills it after timeout) or at once. Either way the whole process group
// is killed last, so children a plugin started do not outlive it.
func (i *instance) stop(graceful bool, timeout time.Duration) {
	i.stopOnce.Do(func() {
		if !graceful {
			killGroup(i.pid)
		}
		done := make(chan struct{})
		go func() {
			i.client.Kill()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(timeout):
			killGroup(i.pid)
			<-done
		}
		killGroup(i.pid)
		i.stderr.flush()
		_ = os.RemoveAll(i.sockDir)
	})
}

func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// configure makes sure the instance has the handle's config: validated
// against the plugin's schema, then sent once. Concurrent callers share
// one Configure call; a failed RPC is retried by the next caller, a
// rejected config is remembered for the life of the instance.
func (i *instance) configure(ctx context.Context, handle string, data []byte, timeout time.Duration) error {
	i.mu.Lock()
	c := i.configured[handle]
	if c != nil {
		i.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return fmt.Errorf("plugin %s: waiting for Configure: %w", i.name(), context.Cause(ctx))
		}
	}
	c = &configureCall{done: make(chan struct{})}
	i.configured[handle] = c
	i.mu.Unlock()

	retry := false
	c.err, retry = i.doConfigure(ctx, handle, data, timeout)
	if retry {
		i.mu.Lock()
		delete(i.configured, handle)
		i.mu.Unlock()
	}
	close(c.done)
	return c.err
}

func (i *instance) doConfigure(ctx context.Context, handle string, data []byte, timeout time.Duration) (err error, retry bool) {
	if err := validateConfig(i.schema, data); err != nil {
		return fmt.Errorf("plugin %s: %w", i.name(), err), false
	}
	cctx, cancel, budget := rpcContext(ctx, timeout)
	defer cancel()
	req := &pb.ConfigureRequest{Handle: handle, ConfigJson: data}
	var resp *pb.ConfigureResponse
	if i.check != nil {
		resp, err = i.check.Configure(cctx, req)
	} else {
		resp, err = i.sink.Configure(cctx, req)
	}
	if err != nil {
		return i.p.rpcError(cctx, i, "Configure", budget, err), true
	}
	if resp.GetError() != "" {
		return fmt.Errorf("plugin %s rejected the config: %s", i.name(), utf8s(resp.GetError())), false
	}
	return nil, false
}

// forget drops a handle from the instance's configured set (the plugin
// said it does not know it).
func (i *instance) forget(handle string) {
	i.mu.Lock()
	delete(i.configured, handle)
	i.mu.Unlock()
}

// release tells the plugin that no user of the handle is left.
func (i *instance) release(handle string) {
	i.mu.Lock()
	_, was := i.configured[handle]
	delete(i.configured, handle)
	i.mu.Unlock()
	if !was || i.exited() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if i.check != nil {
		_, err = i.check.Release(ctx, &pb.ReleaseRequest{Handles: []string{handle}})
	} else {
		var resp *pb.CloseResponse
		resp, err = i.sink.Close(ctx, &pb.CloseRequest{Handle: handle})
		if err == nil && resp.GetError() != "" {
			err = errors.New(utf8s(resp.GetError()))
		}
	}
	if err != nil {
		i.p.h.log.Warn("plugin: releasing a config failed", "plugin", i.name(), "err", err)
	}
}

// rpcContext bounds ctx by timeout and returns the time the RPC has.
func rpcContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc, time.Duration) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= timeout {
		return ctx, func() {}, time.Until(d)
	}
	c, cancel := context.WithTimeout(ctx, timeout)
	return c, cancel, timeout
}

// pluginTimeout is the time a plugin is told it has: a little less than
// the host waits, so that a plugin that honours its deadline answers
// before the host gives up on it and kills it as hung.
func pluginTimeout(budget time.Duration) time.Duration {
	margin := min(budget/10, 500*time.Millisecond)
	return budget - margin
}

// launch starts a process and connects to it: checksum (go-plugin
// SecureConfig), handshake with protocol negotiation, AutoMTLS, then Info
// and ConfigSchema, which must agree with what the slot expects.
func (p *proc) launch() (_ *instance, err error) {
	h := p.h
	spec := &p.spec
	log := h.log.With("plugin", filepath.Base(spec.path), "path", spec.path)
	if spec.sum == nil && spec.kind != "" { // kind "": Inspect, run by hand
		p.mu.Lock()
		warn := !p.warnedCksum
		p.warnedCksum = true
		p.mu.Unlock()
		if warn {
			log.Warn("starting a plugin without checksum verification (insecure_skip_checksum = true): anyone who can replace the file runs code as the agent")
		}
	}
	// A private socket directory, removed when the process is gone: a
	// killed plugin cannot unlink its socket itself.
	sockDir, err := os.MkdirTemp("", "recon-plugin-")
	if err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	cmd := exec.Command(spec.path)
	cmd.Env = append(append(make([]string, 0, len(spec.env)+1), spec.env...), plugin.EnvUnixSocketDir+"="+sockDir)
	cmd.SysProcAttr = procAttr()
	stderr := newStderrLog(log.With("stream", "stderr"))
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  pb.Handshake(),
		VersionedPlugins: pb.HostPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         spec.autoMTLS,
		Logger:           newHclog(log, filepath.Base(spec.path)),
		Stderr:           stderr,
		SyncStdout:       newStderrLog(log.With("stream", "stdout")),
		SyncStderr:       stderr, // a Go plugin's os.Stderr, relayed by go-plugin
		StartTimeout:     h.opts.StartTimeout,
		SkipHostEnv:      true,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage))},
	}
	if spec.sum != nil {
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: spec.sum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cfg)
	inst := &instance{p: p, client: client, cmd: cmd, stderr: stderr, sockDir: sockDir, started: time.Now(),
		configured: map[string]*configureCall{}}
	defer func() {
		if err != nil {
			if cmd.Process != nil {
				inst.pid = cmd.Process.Pid
			}
			inst.stop(false, h.opts.StopTimeout)
			if inst.pid > 0 && client.Exited() {
				err = fmt.Errorf("%w; process %s", err, inst.exitReason())
			}
		}
	}()
	rpc, err := client.Client()
	if err != nil {
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			actual, herr := fileSHA256(spec.path)
			if herr != nil {
				return nil, fmt.Errorf("checksum mismatch: %w", herr)
			}
			return nil, fmt.Errorf("checksum mismatch: %s has sha256 %s, the configuration pins %s",
				spec.path, actual, hex.EncodeToString(spec.sum))
		}
		return nil, err
	}
	inst.pid = cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.StartTimeout)
	defer cancel()
	if err := inst.connect(ctx, rpc, log); err != nil {
		return nil, err
	}
	h.rememberSchema(spec, inst.schema)
	log.Info("plugin started", "name", inst.info.Name, "version", inst.info.Version, "kind", inst.info.Kind,
		"protocol", client.NegotiatedVersion(), "pid", inst.pid, "auto_mtls", spec.autoMTLS)
	return inst, nil
}

// connect dispenses the service of the slot's kind (for Inspect: whichever
// the plugin serves) and fetches Info and the schema.
func (i *instance) connect(ctx context.Context, rpc plugin.ClientProtocol, log *slog.Logger) error {
	kinds := []string{i.p.spec.kind}
	if i.p.spec.kind == "" {
		kinds = []string{pb.CheckPluginName, pb.SinkPluginName}
	}
	var info *pb.InfoResponse
	var err error
	for _, kind := range kinds {
		raw, derr := rpc.Dispense(kind)
		if derr != nil {
			return fmt.Errorf("dispense %s: %w", kind, derr)
		}
		switch c := raw.(type) {
		case pb.CheckClient:
			i.check, i.sink = c, nil
			info, err = c.Info(ctx, &pb.InfoRequest{})
		case pb.SinkClient:
			i.check, i.sink = nil, c
			info, err = c.Info(ctx, &pb.InfoRequest{})
		default:
			return fmt.Errorf("dispense %s: unexpected client %T", kind, raw)
		}
		if status.Code(err) != codes.Unimplemented {
			break
		}
	}
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return fmt.Errorf("the plugin does not serve the %s service (is it a plugin of another kind?)", kinds[len(kinds)-1])
		}
		return fmt.Errorf("Info: %w", err)
	}
	i.info = Info{
		Name: utf8s(info.GetName()), Version: utf8s(info.GetVersion()), Description: utf8s(info.GetDescription()),
		ProtocolVersion: int(info.GetProtocolVersion()), SDK: utf8s(info.GetSdk()),
	}
	switch info.GetKind() {
	case pb.Kind_KIND_CHECK:
		i.info.Kind = pb.CheckPluginName
	case pb.Kind_KIND_SINK:
		i.info.Kind = pb.SinkPluginName
	default:
		return fmt.Errorf("Info: plugin reports kind %v", info.GetKind())
	}
	if (i.check != nil) != (i.info.Kind == pb.CheckPluginName) {
		return fmt.Errorf("Info: plugin %q says it is a %s plugin but serves the other service", i.info.Name, i.info.Kind)
	}
	if v := i.client.NegotiatedVersion(); i.info.ProtocolVersion != 0 && i.info.ProtocolVersion != v {
		return fmt.Errorf("Info: plugin %q reports protocol version %d but negotiated %d", i.info.Name, i.info.ProtocolVersion, v)
	}
	var sch *pb.ConfigSchemaResponse
	if i.check != nil {
		sch, err = i.check.ConfigSchema(ctx, &pb.ConfigSchemaRequest{})
	} else {
		sch, err = i.sink.ConfigSchema(ctx, &pb.ConfigSchemaRequest{})
	}
	if err != nil {
		return fmt.Errorf("ConfigSchema: %w", err)
	}
	i.schemaSrc = sch.GetJsonSchema()
	if i.schema, err = compileSchema(i.schemaSrc); err != nil {
		return fmt.Errorf("plugin %q: %w", i.info.Name, err)
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
