package host

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/reconmon/recon/agent/model"
	pb "github.com/reconmon/recon/plugins/proto"
)

// The test binary doubles as a set of misbehaving plugins: run with
// RECON_TEST_PLUGIN=<mode> it serves the Check service in that mode
// instead of running tests.
const testPluginEnv = "RECON_TEST_PLUGIN"

var (
	examplesDir string // built example plugins
	examplesErr error
	selfPath    string // this test binary, as a plugin
	selfSum     string
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(testPluginEnv); mode != "" {
		serveTestPlugin(mode)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "recon-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	examplesDir = dir
	examplesErr = buildExamples(dir)
	if selfPath, err = os.Executable(); err == nil {
		selfSum, err = fileSHA256(selfPath)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "test binary:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildExamples builds the Go example plugins (their own module) with the
// go command that runs these tests.
func buildExamples(dir string) error {
	// go test puts its own GOROOT/bin first in PATH.
	gocmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go command not found: %w", err)
	}
	cmd := exec.Command(gocmd, "build", "-o", dir+string(filepath.Separator), "./hello", "./httpjson", "./jsonl")
	cmd.Dir = filepath.Join("..", "examples")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build examples: %v\n%s", err, out)
	}
	return nil
}

// example returns the path and sha256 of a built example plugin.
func example(t testing.TB, name string) (string, string) {
	t.Helper()
	if examplesErr != nil {
		t.Fatalf("example plugins did not build: %v", examplesErr)
	}
	p := filepath.Join(examplesDir, name)
	sum, err := fileSHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, sum
}

// testPlugin is a plugin written against the bare protocol (no SDK): the
// misbehaviours the host must survive.
type testPlugin struct {
	pb.UnimplementedCheckServer
	mode string
	mu   sync.Mutex
	cfgs map[string]bool
}

// realStderr is the process's stderr: go-plugin sends later writes to
// os.Stderr through its stdio stream instead.
var realStderr = os.Stderr

func serveTestPlugin(mode string) {
	if mode == "healthy" {
		// Lines that make go-plugin's own stderr parser panic (a type
		// assertion on "@message"); the host must not die of them.
		fmt.Fprintln(os.Stderr, `{"@message": 1, "@level": 5, "@timestamp": 7}`)
		fmt.Fprintln(os.Stderr, `{"@level": "warn", "@message": "test plugin warming up", "n": 3}`)
	}
	plugins := pb.ServeCheck(&testPlugin{mode: mode, cfgs: map[string]bool{}})
	if mode == "sink-crash-once" {
		plugins = pb.ServeSink(&testSink{marker: os.Getenv("RECON_TEST_MARKER")})
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  pb.Handshake(),
		VersionedPlugins: plugins,
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}

// testSink crashes on its first batch ever (the marker file remembers it
// across processes), then appends each batch's outputs to the marker.
type testSink struct {
	pb.UnimplementedSinkServer
	marker string
}

func (s *testSink) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return &pb.InfoResponse{Name: "test-sink", Kind: pb.Kind_KIND_SINK, ProtocolVersion: pb.ProtocolVersion}, nil
}

func (s *testSink) ConfigSchema(context.Context, *pb.ConfigSchemaRequest) (*pb.ConfigSchemaResponse, error) {
	return &pb.ConfigSchemaResponse{}, nil
}

func (s *testSink) Configure(context.Context, *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	return &pb.ConfigureResponse{}, nil
}

func (s *testSink) WriteBatch(_ context.Context, r *pb.WriteBatchRequest) (*pb.WriteBatchResponse, error) {
	f, err := os.OpenFile(s.marker, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		f.Close()
		fmt.Fprintln(realStderr, "test sink: crashing on the first batch")
		os.Exit(3)
	}
	if f, err = os.OpenFile(s.marker, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return &pb.WriteBatchResponse{Error: err.Error()}, nil
	}
	defer f.Close()
	for _, res := range r.GetResults() {
		fmt.Fprintln(f, res.GetOutput())
	}
	return &pb.WriteBatchResponse{}, nil
}

func (s *testSink) Close(context.Context, *pb.CloseRequest) (*pb.CloseResponse, error) {
	return &pb.CloseResponse{}, nil
}

func (p *testPlugin) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return &pb.InfoResponse{Name: "test-" + p.mode, Version: "0.0.1", Kind: pb.Kind_KIND_CHECK, ProtocolVersion: pb.ProtocolVersion}, nil
}

func (p *testPlugin) ConfigSchema(context.Context, *pb.ConfigSchemaRequest) (*pb.ConfigSchemaResponse, error) {
	return &pb.ConfigSchemaResponse{JsonSchema: `{"type": "object", "properties": {"n": {"type": "integer", "maximum": 10}}, "additionalProperties": false}`}, nil
}

func (p *testPlugin) Configure(_ context.Context, r *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	p.mu.Lock()
	p.cfgs[r.GetHandle()] = true
	p.mu.Unlock()
	return &pb.ConfigureResponse{}, nil
}

func (p *testPlugin) run(r *pb.RunRequest) *pb.Result {
	switch p.mode {
	case "exit":
		fmt.Fprintln(realStderr, "test plugin: exiting in the middle of a run")
		os.Exit(2)
	case "hang":
		select {} // ignores its deadline
	case "panic":
		panic("boom from the test plugin")
	}
	return &pb.Result{Status: pb.Status_STATUS_OK, Output: "pong " + r.GetTarget(),
		Metrics: []*pb.Metric{{Name: "timeout_ms", Value: &pb.Metric_IntValue{IntValue: r.GetTimeoutMs()}}}}
}

func (p *testPlugin) Run(_ context.Context, r *pb.RunRequest) (*pb.RunResponse, error) {
	return &pb.RunResponse{Result: p.run(r)}, nil
}

func (p *testPlugin) RunMany(_ context.Context, r *pb.RunManyRequest) (*pb.RunManyResponse, error) {
	out := &pb.RunManyResponse{}
	for _, q := range r.GetRequests() {
		out.Results = append(out.Results, p.run(q))
	}
	return out, nil
}

// RunStream is only served in mode "stream" (the other modes are plugins
// without it, which get one Run per check): each request runs at once,
// target "slow" for two seconds, and its result is sent when ready.
func (p *testPlugin) RunStream(r *pb.RunManyRequest, stream pb.Check_RunStreamServer) error {
	if p.mode == "stream-bad" {
		// Garbage around one good answer: indexes out of range, a
		// repeat, more indexes than results, a missing result; then the
		// stream ends with the other requests unanswered.
		ok := &pb.Result{Status: pb.Status_STATUS_OK, Output: "first"}
		stream.Send(&pb.RunStreamResults{Index: []int32{-1, 99, 0}, Results: []*pb.Result{ok, ok, ok}})
		stream.Send(&pb.RunStreamResults{Index: []int32{0, 1, 2}, Results: []*pb.Result{{Output: "repeat"}, nil}})
		return nil
	}
	if p.mode != "stream" {
		return status.Error(codes.Unimplemented, "method RunStream not implemented")
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, q := range r.GetRequests() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if q.GetTarget() == "slow" {
				select {
				case <-time.After(2 * time.Second):
				case <-stream.Context().Done():
					return
				}
			}
			mu.Lock()
			defer mu.Unlock()
			stream.Send(&pb.RunStreamResults{Index: []int32{int32(i)}, Results: []*pb.Result{p.run(q)}})
		}()
	}
	wg.Wait()
	return nil
}

// logRecorder is a slog handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex
	records []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.records = append(l.records, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler { return &attrHandler{l, as} }
func (l *logRecorder) WithGroup(string) slog.Handler         { return l }

func (l *logRecorder) find(substrs ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, r := range l.records {
		for _, s := range substrs {
			if !strings.Contains(r, s) {
				continue next
			}
		}
		return r
	}
	return ""
}

type attrHandler struct {
	l     *logRecorder
	attrs []slog.Attr
}

func (h *attrHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(h.attrs...)
	return h.l.Handle(ctx, r)
}
func (h *attrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{h.l, append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h *attrHandler) WithGroup(string) slog.Handler { return h }

// newTestHost returns a host with quick backoffs that records its log and
// is closed when the test ends.
func newTestHost(t testing.TB, opts Options) (*Host, *logRecorder) {
	t.Helper()
	rec := &logRecorder{}
	opts.Logger = slog.New(rec)
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 400 * time.Millisecond
	}
	h := New(opts)
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { h.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Errorf("Host.Close did not return within 15s")
		}
	})
	return h, rec
}

// pluginCheck builds a configured check of type plugin.
func pluginCheck(name, path, sum string, cfg map[string]any, mod func(*Settings)) *model.Check {
	s := &Settings{CommonSettings{Path: path, SHA256: sum, Config: cfg}}
	if mod != nil {
		mod(s)
	}
	return &model.Check{
		ID: model.CheckID("test", name), Name: name, Type: "plugin", Target: "127.0.0.1",
		Period: time.Second, Timeout: 5 * time.Second, MaxAttempts: 1, RetryPeriod: time.Second,
		Settings: s, Source: "test.toml:" + fmt.Sprint(len(name)),
	}
}

// testPluginCheck is a check served by this test binary in a mode.
func testPluginCheck(name, mode string) *model.Check {
	return pluginCheck(name, selfPath, selfSum, nil, func(s *Settings) {
		s.Env = map[string]string{testPluginEnv: mode}
	})
}

func prepare(t testing.TB, typ *CheckType, c *model.Check) *Runner {
	t.Helper()
	r, err := typ.Prepare(c)
	if err != nil {
		t.Fatalf("Prepare %s: %v", c.Name, err)
	}
	t.Cleanup(func() { r.(*Runner).Close() })
	return r.(*Runner)
}

func runOnce(r *Runner, timeout time.Duration) model.Result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.Run(ctx, nil)
}

// processGone reports whether pid no longer runs (or is a zombie no one
// reaped yet, which cannot do anything either).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
