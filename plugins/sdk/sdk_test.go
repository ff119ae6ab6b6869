package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/reconmon/recon/plugins/proto"
)

type cfg struct {
	Greeting string `json:"greeting"`
	Fail     string `json:"fail,omitempty"`
	Sleep    bool   `json:"sleep,omitempty"`

	prepared bool
}

type testCheck struct {
	inFlight, maxInFlight atomic.Int32
	released              atomic.Int32
	lastReq               atomic.Pointer[Request]
}

func (*testCheck) Info() Info           { return Info{Name: "t", Version: "1"} }
func (*testCheck) ConfigSchema() string { return `{"type":"object"}` }

func (c *testCheck) Configure(x *cfg) error {
	if x.Greeting == "panic" {
		panic("configure boom")
	}
	if x.Greeting == "" {
		return errors.New("greeting is required")
	}
	x.prepared = true
	return nil
}

func (c *testCheck) Release(*cfg) { c.released.Add(1) }

func (c *testCheck) Check(ctx context.Context, x *cfg, req Request) (Result, error) {
	c.lastReq.Store(&req)
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(time.Millisecond)
	switch x.Fail {
	case "error":
		return Result{}, errors.New("target unreachable")
	case "panic":
		panic("check boom")
	case "timeout":
		<-ctx.Done()
		return Result{}, ctx.Err()
	}
	if !x.prepared {
		return Unknown("not prepared"), nil
	}
	return Warning("%s, %s", x.Greeting, req.Target).With(
		FloatMetric("f", 1.5).WithUnit("s").WithThresholds("1", "2").WithRange(0, 10),
		IntMetric("i", -2), UintMetric("u", math.MaxUint64), StringMetric("s", "v")), nil
}

func configure(t *testing.T, s *checkServer[cfg], handle, js string) string {
	t.Helper()
	resp, err := s.Configure(context.Background(), &pb.ConfigureRequest{Handle: handle, ConfigJson: []byte(js)})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetError()
}

func newTestServer(impl Check[cfg], opts ...Option) *checkServer[cfg] {
	o := buildOptions(append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...))
	return newCheckServer(impl, o)
}

func TestCheckServerConfigure(t *testing.T) {
	s := newTestServer(&testCheck{})
	cases := []struct{ js, want string }{
		{`{"greeting": "hi"}`, ""},
		{`{"greeting": "hi", "nope": 1}`, `config: json: unknown field "nope"`},
		{`{"greeting": "hi"} {}`, "trailing data"},
		{`{"greeting": 5}`, "cannot unmarshal number"},
		{`{}`, "greeting is required"},
		{`{"greeting": "panic"}`, "plugin panicked in Configure: configure boom"},
		{`not json`, "config: invalid character"},
	}
	for i, c := range cases {
		got := configure(t, s, string(rune('a'+i)), c.js)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: error %q, want %q", c.js, got, c.want)
		}
	}
	if _, err := s.Configure(context.Background(), &pb.ConfigureRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty handle: %v", err)
	}
}

func TestCheckServerRun(t *testing.T) {
	tc := &testCheck{}
	s := newTestServer(tc)
	ctx := context.Background()
	if _, err := s.Run(ctx, &pb.RunRequest{Handle: "h"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown handle: %v", err)
	}
	if e := configure(t, s, "h", `{"greeting": "hi"}`); e != "" {
		t.Fatal(e)
	}
	resp, err := s.Run(ctx, &pb.RunRequest{Handle: "h", Target: "db1", Check: "c", CheckId: "id", Tags: map[string]string{"a": "b"},
		TimeoutMs: 1500, Previous: &pb.Result{Status: pb.Status_STATUS_CRITICAL, Output: "was down"}})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetResult()
	if r.GetStatus() != pb.Status_STATUS_WARNING || r.GetOutput() != "hi, db1" || r.GetDurationNs() <= 0 || len(r.GetMetrics()) != 4 {
		t.Fatalf("result %v", r)
	}
	m := r.GetMetrics()
	if m[0].GetFloatValue() != 1.5 || m[0].GetUnit() != "s" || m[0].GetWarn() != "1" || m[0].GetMax() != 10 ||
		m[1].GetIntValue() != -2 || m[2].GetUintValue() != math.MaxUint64 || m[3].GetStringValue() != "v" {
		t.Errorf("metrics %v", m)
	}
	req := tc.lastReq.Load()
	if req.Target != "db1" || req.Check != "c" || req.CheckID != "id" || req.Tags["a"] != "b" || req.Timeout != 1500*time.Millisecond ||
		req.Previous == nil || req.Previous.Status != StatusCritical || req.Previous.Output != "was down" {
		t.Errorf("request %+v", req)
	}

	for _, c := range []struct{ fail, want string }{
		{"error", "target unreachable"},
		{"panic", "plugin panicked in Check: check boom"},
		{"timeout", "check did not finish within its timeout (50ms)"},
	} {
		h := "h-" + c.fail
		configure(t, s, h, `{"greeting": "x", "fail": "`+c.fail+`"}`)
		resp, err := s.Run(ctx, &pb.RunRequest{Handle: h, TimeoutMs: 50})
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.GetResult(); r.GetStatus() != pb.Status_STATUS_UNKNOWN || !strings.Contains(r.GetOutput(), c.want) {
			t.Errorf("%s: %v %q", c.fail, r.GetStatus(), r.GetOutput())
		}
	}
	if _, err := s.Release(ctx, &pb.ReleaseRequest{Handles: []string{"h", "h-error", "unknown"}}); err != nil {
		t.Fatal(err)
	}
	if tc.released.Load() != 2 {
		t.Errorf("released %d configs, want 2", tc.released.Load())
	}
	if _, err := s.Run(ctx, &pb.RunRequest{Handle: "h"}); status.Code(err) != codes.NotFound {
		t.Errorf("released handle still known: %v", err)
	}
}

func TestRunManyFanOut(t *testing.T) {
	tc := &testCheck{}
	s := newTestServer(tc, WithConcurrency(4))
	configure(t, s, "a", `{"greeting": "a"}`)
	configure(t, s, "b", `{"greeting": "b"}`)
	req := &pb.RunManyRequest{TimeoutMs: 5000}
	for i := range 40 {
		req.Requests = append(req.Requests, &pb.RunRequest{Handle: []string{"a", "b"}[i%2], Target: string(rune('A' + i))})
	}
	resp, err := s.RunMany(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.GetResults() {
		want := []string{"a", "b"}[i%2] + ", " + string(rune('A'+i))
		if r.GetOutput() != want {
			t.Errorf("result %d: %q, want %q", i, r.GetOutput(), want)
		}
	}
	if n := tc.maxInFlight.Load(); n < 2 || n > 4 {
		t.Errorf("max concurrent checks %d, want 2..4", n)
	}
	req.Requests = append(req.Requests, &pb.RunRequest{Handle: "zzz"})
	if _, err := s.RunMany(context.Background(), req); status.Code(err) != codes.NotFound {
		t.Errorf("unknown handle in batch: %v", err)
	}
}

type batchCheck struct{ testCheck }

func (b *batchCheck) CheckMany(_ context.Context, items []Item[cfg]) []Result {
	if len(items) > 0 && items[0].Config.Fail == "panic" {
		panic("batch boom")
	}
	out := []Result{OK("batched %s", items[0].Request.Target)}
	return out // fewer than asked for
}

func TestRunManyBatchChecker(t *testing.T) {
	s := newTestServer(&batchCheck{})
	configure(t, s, "a", `{"greeting": "a"}`)
	configure(t, s, "p", `{"greeting": "a", "fail": "panic"}`)
	resp, err := s.RunMany(context.Background(), &pb.RunManyRequest{Requests: []*pb.RunRequest{{Handle: "a", Target: "x"}, {Handle: "a", Target: "y"}}})
	if err != nil {
		t.Fatal(err)
	}
	rs := resp.GetResults()
	if len(rs) != 2 || rs[0].GetOutput() != "batched x" || rs[1].GetStatus() != pb.Status_STATUS_UNKNOWN ||
		!strings.Contains(rs[1].GetOutput(), "plugin returned 1 results for 2 checks") {
		t.Errorf("results %v", rs)
	}
	resp, err = s.RunMany(context.Background(), &pb.RunManyRequest{Requests: []*pb.RunRequest{{Handle: "p"}, {Handle: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.GetResults() {
		if !strings.Contains(r.GetOutput(), "panicked in CheckMany: batch boom") {
			t.Errorf("panicking batch: %v", r)
		}
	}
}

type sinkCfg struct {
	Name string `json:"name"`
}

type memSink struct {
	mu      sync.Mutex
	batches [][]Record
	closed  []string
}

func (*memSink) Info() Info           { return Info{Name: "mem"} }
func (*memSink) ConfigSchema() string { return "" }
func (m *memSink) Open(_ context.Context, c *sinkCfg) (Writer, error) {
	if c.Name == "" {
		return nil, errors.New("name is required")
	}
	return &memWriter{m: m, name: c.Name}, nil
}

type memWriter struct {
	m    *memSink
	name string
}

func (w *memWriter) WriteBatch(_ context.Context, b []Record) error {
	if len(b) > 0 && b[0].Output == "reject" {
		return Permanent(errors.New("unacceptable"))
	}
	if len(b) > 0 && b[0].Output == "flaky" {
		return errors.New("try later")
	}
	w.m.mu.Lock()
	w.m.batches = append(w.m.batches, b)
	w.m.mu.Unlock()
	return nil
}

func (w *memWriter) Close() error {
	w.m.mu.Lock()
	w.m.closed = append(w.m.closed, w.name)
	w.m.mu.Unlock()
	return nil
}

func TestSinkServer(t *testing.T) {
	ms := &memSink{}
	s := newSinkServer[sinkCfg](ms, buildOptions([]Option{WithLogger(slog.New(slog.DiscardHandler))}))
	ctx := context.Background()
	if r, _ := s.Configure(ctx, &pb.ConfigureRequest{Handle: "x", ConfigJson: []byte(`{}`)}); r.GetError() != "name is required" {
		t.Errorf("open error: %v", r)
	}
	if r, _ := s.Configure(ctx, &pb.ConfigureRequest{Handle: "h", ConfigJson: []byte(`{"name": "n"}`)}); r.GetError() != "" {
		t.Fatal(r.GetError())
	}
	if _, err := s.WriteBatch(ctx, &pb.WriteBatchRequest{Handle: "x"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown handle: %v", err)
	}
	rec := &pb.Result{CheckId: "id", Check: "c", Type: "nagios", Agent: "a", Target: "t", TimeUnixNano: 1_700_000_000_123_456_789,
		Status: pb.Status_STATUS_CRITICAL, StateType: pb.StateType_STATE_TYPE_SOFT, Attempt: 2, Output: "o", Tags: map[string]string{"k": "v"},
		Metrics: []*pb.Metric{{Name: "m", Value: &pb.Metric_IntValue{IntValue: 3}}}}
	if r, err := s.WriteBatch(ctx, &pb.WriteBatchRequest{Handle: "h", Results: []*pb.Result{rec}}); err != nil || r.GetError() != "" {
		t.Fatal(err, r)
	}
	got := ms.batches[0][0]
	if got.Key() != "id/1700000000123456789" || got.Status != StatusCritical || got.StateType != "SOFT" || got.Attempt != 2 ||
		got.Tags["k"] != "v" || got.Metrics[0].Value.Int() != 3 || got.Agent != "a" {
		t.Errorf("record %+v", got)
	}
	rec.Output = "reject"
	if r, _ := s.WriteBatch(ctx, &pb.WriteBatchRequest{Handle: "h", Results: []*pb.Result{rec}}); r.GetError() != "unacceptable" || !r.GetPermanent() {
		t.Errorf("permanent: %v", r)
	}
	rec.Output = "flaky"
	if r, _ := s.WriteBatch(ctx, &pb.WriteBatchRequest{Handle: "h", Results: []*pb.Result{rec}}); r.GetError() != "try later" || r.GetPermanent() {
		t.Errorf("transient: %v", r)
	}
	if r, err := s.Close(ctx, &pb.CloseRequest{Handle: "h"}); err != nil || r.GetError() != "" || len(ms.closed) != 1 {
		t.Errorf("close: %v %v %v", r, err, ms.closed)
	}
}

// TestGoPluginRoundTrip serves a check through go-plugin in this process
// (its test mode) and calls it over gRPC like recon does.
func TestGoPluginRoundTrip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	o := buildOptions([]Option{WithLogger(slog.New(slog.DiscardHandler))})
	o.test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: ch, CloseCh: closed}
	go serve(o, pb.ServeCheck(newCheckServer[cfg](&testCheck{}, o)))
	var rc *plugin.ReattachConfig
	select {
	case rc = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("plugin did not start")
	}
	client := plugin.NewClient(&plugin.ClientConfig{HandshakeConfig: pb.Handshake(), Plugins: pb.HostPlugins()[pb.ProtocolVersion],
		Reattach: rc, AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC}})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(pb.CheckPluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(pb.CheckClient)
	info, err := c.Info(ctx, &pb.InfoRequest{})
	if err != nil || info.GetName() != "t" || info.GetKind() != pb.Kind_KIND_CHECK || info.GetProtocolVersion() != 1 {
		t.Fatalf("info %v %v", info, err)
	}
	if r, err := c.Configure(ctx, &pb.ConfigureRequest{Handle: "h", ConfigJson: []byte(`{"greeting":"hey"}`)}); err != nil || r.GetError() != "" {
		t.Fatal(r, err)
	}
	resp, err := c.Run(ctx, &pb.RunRequest{Handle: "h", Target: "x", TimeoutMs: 1000})
	if err != nil || resp.GetResult().GetOutput() != "hey, x" {
		t.Fatalf("%v %v", resp, err)
	}
	// The sink service is not served by a check plugin.
	raw, _ = rpc.Dispense(pb.SinkPluginName)
	if _, err := raw.(pb.SinkClient).Info(ctx, &pb.InfoRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("sink Info on a check plugin: %v", err)
	}
	cancel()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Error("serve did not return after its context was cancelled")
	}
}

func TestLoggerFormat(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(&buf, slog.LevelDebug)
	l.Warn("disk slow", "dev", "sda", slog.Group("g", "a", 1))
	l.Debug("dbg")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
		t.Fatal(err)
	}
	if e["@level"] != "warn" || e["@message"] != "disk slow" || e["dev"] != "sda" {
		t.Errorf("entry %v", e)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", e["@timestamp"].(string)); err != nil {
		t.Errorf("timestamp: %v", err)
	}
	if !strings.Contains(lines[1], `"@level":"debug"`) {
		t.Errorf("debug line %s", lines[1])
	}
}

func TestValueJSON(t *testing.T) {
	for _, c := range []struct {
		v    Value
		want string
	}{
		{Float(1.5), "1.5"}, {Float(math.NaN()), `"NaN"`}, {Float(math.Inf(-1)), `"-Inf"`},
		{Int(-3), "-3"}, {Uint(math.MaxUint64), "18446744073709551615"}, {String("a\"b"), `"a\"b"`}, {Value{}, "0"},
	} {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("%+v: %s %v, want %s", c.v, b, err, c.want)
		}
	}
	b, _ := json.Marshal(Critical("x"))
	if !strings.Contains(string(b), `"status":"CRITICAL"`) {
		t.Errorf("%s", b)
	}
	if Status(9).String() != "Status(9)" || statusToPB(Status(9)) != pb.Status_STATUS_UNSPECIFIED {
		t.Errorf("invalid status handling")
	}
	if !IsPermanent(Permanent(errors.New("x"))) || IsPermanent(errors.New("x")) || Permanent(nil) != nil {
		t.Errorf("Permanent")
	}
}

func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(`{"greeting": "hi", "fail": "error"}`))
	f.Add([]byte(`{"greeting": ["x"]}`))
	f.Add([]byte(` `))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decode[cfg](data)
		if (c == nil) == (err == nil) {
			t.Fatalf("decode returned %v and %v", c, err)
		}
	})
}

// streamRecorder is the server side of a RunStream call; it flattens the
// messages into one result per index, in the order sent.
type streamRecorder struct {
	grpc.ServerStream
	ctx  context.Context
	mu   sync.Mutex
	got  []indexed
	msgs int
}

type indexed struct {
	index  int32
	result *pb.Result
}

func (x indexed) GetIndex() int32       { return x.index }
func (x indexed) GetResult() *pb.Result { return x.result }

func (f *streamRecorder) Context() context.Context { return f.ctx }

func (f *streamRecorder) Send(r *pb.RunStreamResults) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(r.GetIndex()) != len(r.GetResults()) || len(r.GetIndex()) == 0 {
		return fmt.Errorf("message with %d indexes and %d results", len(r.GetIndex()), len(r.GetResults()))
	}
	for k, i := range r.GetIndex() {
		f.got = append(f.got, indexed{i, r.GetResults()[k]})
	}
	f.msgs++
	return nil
}

// TestRunStreamEachOwnTimeout: each request runs under its own timeout and
// its result is sent when ready; a check that times out comes last and does
// not delay the others.
func TestRunStreamEachOwnTimeout(t *testing.T) {
	s := newTestServer(&testCheck{}, WithConcurrency(4))
	configure(t, s, "a", `{"greeting": "a"}`)
	configure(t, s, "t", `{"greeting": "t", "fail": "timeout"}`)
	req := &pb.RunManyRequest{TimeoutMs: 5000, Requests: []*pb.RunRequest{{Handle: "t", Target: "slow", TimeoutMs: 200}}}
	for i := range 10 {
		req.Requests = append(req.Requests, &pb.RunRequest{Handle: "a", Target: fmt.Sprint(i)})
	}
	rec := &streamRecorder{ctx: context.Background()}
	start := time.Now()
	if err := s.RunStream(req, rec); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stream took %v: the 200 ms timeout of request 0 was not applied", d)
	}
	if len(rec.got) != 11 {
		t.Fatalf("%d results, want 11", len(rec.got))
	}
	seen := map[int32]bool{}
	for _, r := range rec.got {
		seen[r.GetIndex()] = true
		if r.GetIndex() > 0 && r.GetResult().GetOutput() != "a, "+fmt.Sprint(r.GetIndex()-1) {
			t.Errorf("result %d: %q", r.GetIndex(), r.GetResult().GetOutput())
		}
	}
	if len(seen) != 11 {
		t.Errorf("indexes %v", seen)
	}
	last := rec.got[len(rec.got)-1]
	if last.GetIndex() != 0 || last.GetResult().GetStatus() != pb.Status_STATUS_UNKNOWN ||
		!strings.Contains(last.GetResult().GetOutput(), "did not finish within its timeout (200ms)") {
		t.Errorf("the timed-out check should come last, UNKNOWN: %v", last)
	}
	req.Requests = append(req.Requests, &pb.RunRequest{Handle: "zzz"})
	if err := s.RunStream(req, &streamRecorder{ctx: context.Background()}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown handle in batch: %v", err)
	}
}

func TestRunStreamBatchChecker(t *testing.T) {
	s := newTestServer(&batchCheck{})
	configure(t, s, "a", `{"greeting": "a"}`)
	configure(t, s, "p", `{"greeting": "a", "fail": "panic"}`)
	rec := &streamRecorder{ctx: context.Background()}
	if err := s.RunStream(&pb.RunManyRequest{Requests: []*pb.RunRequest{{Handle: "a", Target: "x"}, {Handle: "a", Target: "y"}}}, rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 2 || rec.got[0].GetResult().GetOutput() != "batched x" ||
		!strings.Contains(rec.got[1].GetResult().GetOutput(), "plugin returned 1 results for 2 checks") {
		t.Errorf("results %v", rec.got)
	}
	rec = &streamRecorder{ctx: context.Background()}
	if err := s.RunStream(&pb.RunManyRequest{Requests: []*pb.RunRequest{{Handle: "p"}, {Handle: "p"}}}, rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 2 {
		t.Fatalf("%d results", len(rec.got))
	}
	for _, r := range rec.got {
		if !strings.Contains(r.GetResult().GetOutput(), "panicked in CheckMany: batch boom") {
			t.Errorf("panicking batch: %v", r)
		}
	}
}
