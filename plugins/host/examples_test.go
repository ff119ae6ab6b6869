package host

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/pipeline"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/internal/testutil"
)

func metric(r model.Result, name string) (model.Metric, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return model.Metric{}, false
}

func TestExampleHTTPJSON(t *testing.T) {
	path, sum := example(t, "httpjson")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stats":
			fmt.Fprint(w, `{"queue": {"depth": 150}, "state": "green", "items": [{"count": 3}], "ok": true}`)
		case "/broken":
			w.WriteHeader(http.StatusBadGateway)
		default:
			fmt.Fprint(w, `not json`)
		}
	}))
	defer srv.Close()
	h, rec := newTestHost(t, Options{})
	typ := NewCheckType(h)
	cfg := func(kv ...any) map[string]any {
		m := map[string]any{"url": srv.URL + "/stats"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name   string
		cfg    map[string]any
		status model.Status
		output string
		metric string
		value  string
	}{
		{"depth-warn", cfg("field", "queue.depth", "warning", "100", "critical", "500"), model.Warning, "queue.depth = 150 (warning 100)", "queue.depth", "150"},
		{"depth-crit", cfg("field", "queue.depth", "warning", "100", "critical", "120"), model.Critical, "queue.depth = 150 (critical 120)", "queue.depth", "150"},
		{"depth-ok", cfg("field", "queue.depth", "critical", "@0:10", "metric", "depth"), model.OK, "queue.depth = 150", "depth", "150"},
		{"array", cfg("field", "items.0.count", "warning", "2:"), model.OK, "items.0.count = 3", "items.0.count", "3"},
		{"string", cfg("field", "state", "expect", "green"), model.OK, `state = "green"`, "state", "green"},
		{"string-bad", cfg("field", "state", "expect", "blue"), model.Critical, `state = "green", want "blue"`, "state", "green"},
		{"missing", cfg("field", "queue.length"), model.Unknown, `queue.length: no field "length"`, "", ""},
		{"http-error", map[string]any{"url": srv.URL + "/broken", "field": "x"}, model.Critical, "HTTP 502, want 200", "", ""},
		{"not-json", map[string]any{"url": srv.URL + "/other", "field": "x"}, model.Unknown, "answer is not JSON", "", ""},
	}
	var runners []*Runner
	for _, tc := range cases {
		runners = append(runners, prepare(t, typ, pluginCheck(tc.name, path, sum, tc.cfg, nil)))
	}
	for i, tc := range cases {
		res := runOnce(runners[i], 10*time.Second)
		if res.Status != tc.status || !strings.Contains(res.Output, tc.output) {
			t.Errorf("%s: got %v %q, want %v containing %q (long: %q)", tc.name, res.Status, res.Output, tc.status, tc.output, res.LongOutput)
		}
		if tc.metric != "" {
			m, ok := metric(res, tc.metric)
			if !ok || m.Value.String() != tc.value {
				t.Errorf("%s: metric %s = %v (present %v), want %s; all: %+v", tc.name, tc.metric, m.Value, ok, tc.value, res.Metrics)
			}
		}
		if _, ok := metric(res, "response_time"); !ok && tc.status != model.Unknown {
			t.Errorf("%s: no response_time metric", tc.name)
		}
	}
	// Every check shares one process.
	st := h.Stats()
	if len(st) != 1 || !st[0].Running || st[0].Users != len(cases) || st[0].Name != "httpjson" {
		t.Fatalf("stats: %+v, want one running httpjson process with %d users", st, len(cases))
	}
	if st[0].Restarts != 0 || st[0].Failures != 0 {
		t.Errorf("healthy plugin restarted: %+v", st[0])
	}
	if rec.find("plugin started", "httpjson") == "" {
		t.Errorf("no 'plugin started' log line naming the plugin")
	}

	t.Run("schema violations are reported with the check's location", func(t *testing.T) {
		c := pluginCheck("bad-config", path, sum, map[string]any{"url": "ftp://x", "field": "", "warning": "abc", "extra": 1}, nil)
		c.Source = "conf.d/api.toml:12"
		// The binary's schema is known by now: Prepare refuses the config
		// (a reload fails with file:line instead of a failing check).
		_, err := typ.Prepare(c)
		if err == nil {
			t.Fatal("Prepare accepted a config that violates the plugin's schema")
		}
		t.Logf("Prepare: %v", err)
		for _, want := range []string{"invalid config", "config.url", "config.field", "config.warning", "config: additional properties 'extra'"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		// With a fresh host the schema is unknown at Prepare; the first run
		// validates before the plugin sees the config.
		h2, _ := newTestHost(t, Options{})
		r := prepare(t, NewCheckType(h2), c)
		res := runOnce(r, 10*time.Second)
		if res.Status != model.Unknown || !strings.HasPrefix(res.Output, "conf.d/api.toml:12: ") || !strings.Contains(res.Output, "config.warning") {
			t.Errorf("run with invalid config: %v %q", res.Status, res.Output)
		}
	})

	t.Run("the plugin's own config check", func(t *testing.T) {
		c := pluginCheck("inverted-range", path, sum, cfg("field", "queue.depth", "warning", "10:5"), nil)
		res := runOnce(prepare(t, typ, c), 10*time.Second)
		if res.Status != model.Unknown || !strings.Contains(res.Output, "rejected the config: warning: range \"10:5\": start is greater than end") {
			t.Errorf("got %v %q", res.Status, res.Output)
		}
	})

	t.Run("RunMany", func(t *testing.T) {
		rs := runners[:3]
		results := RunMany(context.Background(), rs)
		for i, res := range results {
			if res.Status != cases[i].status || res.Check != cases[i].name || res.CheckID != rs[i].check.ID || res.Time.IsZero() {
				t.Errorf("RunMany[%d]: %v %q check=%q", i, res.Status, res.Output, res.Check)
			}
		}
	})
}

// helloRunners prepares n checks of the hello example: greetings "hi" and
// "hello" in turn, targets host0, host1, …
func helloRunners(t *testing.T, typ *CheckType, n int) []*Runner {
	t.Helper()
	path, sum := example(t, "hello")
	var rs []*Runner
	for i := range n {
		c := pluginCheck(fmt.Sprintf("hello-%d", i), path, sum, map[string]any{"greeting": []string{"hi", "hello"}[i%2]}, nil)
		c.Target = fmt.Sprintf("host%d", i)
		rs = append(rs, prepare(t, typ, c))
	}
	return rs
}

func TestExampleHelloRunMany(t *testing.T) {
	h, _ := newTestHost(t, Options{MaxBatch: 64})
	rs := helloRunners(t, NewCheckType(h), 300)
	results := RunMany(context.Background(), rs)
	for i, res := range results {
		want := fmt.Sprintf("%s, host%d", []string{"hi", "hello"}[i%2], i)
		m, _ := metric(res, "answer")
		if res.Status != model.OK || res.Output != want || m.Value.Int() != 42 || m.Value.Kind() != model.KindInt {
			t.Fatalf("result %d: %v %q %+v, want OK %q with answer=42", i, res.Status, res.Output, res.Metrics, want)
		}
	}
	if st := h.Stats(); len(st) != 1 || st[0].Users != 300 {
		t.Errorf("stats %+v: want one process for 300 checks", st)
	}
}

func TestExampleJSONLSinkThroughPipeline(t *testing.T) {
	path, sum := example(t, "jsonl")
	out := filepath.Join(t.TempDir(), "results.jsonl")
	h, _ := newTestHost(t, Options{})
	typ := NewSinkType(h)
	spec := &sink.Spec{Name: "archive", Type: "plugin", BatchSize: 50, Settings: &SinkSettings{
		CommonSettings: CommonSettings{Path: path, SHA256: sum, Config: map[string]any{"path": out}}}}
	s, err := typ.New(spec, sink.Env{})
	if err != nil {
		t.Fatal(err)
	}
	pipe := pipeline.New(nil)
	if err := pipe.SetOutputs([]pipeline.Output{{Spec: spec, Sink: s, Fingerprint: "x",
		Open: func() (pipeline.Queue, error) { return pipeline.NewMemQueue(0), nil }}}); err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	base := time.Unix(1_700_000_000, 0)
	var rs []model.Result
	for i := range 120 {
		rs = append(rs, model.Result{CheckID: id, Check: "disk", Type: "nagios", Target: "db1", Time: base.Add(time.Duration(i) * time.Second),
			Status: model.Status(i % 4), StateType: model.Soft, Attempt: 2, Output: fmt.Sprintf("run %d \xff", i),
			Metrics: []model.Metric{{Name: "used", Value: model.Float(float64(i) / 2), Unit: "%"}, {Name: "state", Value: model.String("ok")}},
			Tags:    map[string]string{"env": "prod"}})
	}
	if err := pipe.Publish(context.Background(), rs...); err != nil {
		t.Fatal(err)
	}
	readLines := func() []map[string]any {
		f, err := os.Open(out)
		if err != nil {
			return nil
		}
		defer f.Close()
		var lines []map[string]any
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			lines = append(lines, m)
		}
		return lines
	}
	waitFor(t, 20*time.Second, "120 lines in the JSON lines file", func() bool { return len(readLines()) >= 120 })
	pipe.Close()
	lines := readLines()
	if len(lines) != 120 {
		t.Fatalf("%d lines, want 120", len(lines))
	}
	l := lines[7]
	if l["check"] != "disk" || l["status"] != "UNKNOWN" || l["state_type"] != "SOFT" || l["output"] != "run 7 \uFFFD" ||
		l["key"] != id.String()+"/"+fmt.Sprint(base.Add(7*time.Second).UnixNano()) {
		t.Errorf("line 7: %v", l)
	}
	if ms, _ := l["metrics"].([]any); len(ms) != 2 || ms[0].(map[string]any)["value"] != 3.5 || ms[1].(map[string]any)["value"] != "ok" {
		t.Errorf("line 7 metrics: %v", l["metrics"])
	}
	// pipeline.Close closed the sink, the last user: the process is gone.
	waitFor(t, 5*time.Second, "the sink plugin to stop", func() bool { return len(h.Stats()) == 0 })

	t.Run("replay is idempotent and permanent errors are permanent", func(t *testing.T) {
		s, err := typ.New(spec, sink.Env{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		if err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteBatch(ctx, rs[:50]); err != nil {
			t.Fatal(err)
		}
		if n := len(readLines()); n != 120 {
			t.Errorf("replayed batch added lines: %d, want 120", n)
		}
		small := &sink.Spec{Name: "small", Type: "plugin", Settings: &SinkSettings{CommonSettings: CommonSettings{
			Path: path, SHA256: sum, Config: map[string]any{"path": out, "max_line_bytes": 100}}}}
		s2, err := typ.New(small, sink.Env{})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		big := rs[0]
		big.Time = big.Time.Add(time.Hour)
		err = s2.WriteBatch(ctx, []model.Result{big})
		if err == nil || !sink.IsPermanent(err) || !strings.Contains(err.Error(), "over max_line_bytes 100") {
			t.Errorf("oversized result: err %v (permanent %v), want a permanent error", err, sink.IsPermanent(err))
		}
		// Both sinks use one process (same binary and environment).
		if st := h.Stats(); len(st) != 1 || st[0].Users != 2 || st[0].Kind != "sink" {
			t.Errorf("stats: %+v", st)
		}
	})
}

// debianPython returns Debian's python3 when it can run the example
// (python3-grpcio, python3-protobuf, python3-cryptography).
func debianPython(t testing.TB) string {
	t.Helper()
	py := testutil.RequireBinary(t, "/usr/bin/python3")
	out, err := exec.Command(py, "-c", "import grpc, google.protobuf, cryptography").CombinedOutput()
	if err != nil {
		testutil.MissingPeer(t, "python3-grpcio, python3-protobuf and python3-cryptography are needed by the Python example plugin: %v: %s", err, out)
	}
	return py
}

func TestExamplePython(t *testing.T) {
	debianPython(t)
	path, err := filepath.Abs(filepath.Join("..", "examples", "python", "tcp_check.py"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	for _, mtls := range []bool{true, false} {
		t.Run(fmt.Sprintf("auto_mtls=%v", mtls), func(t *testing.T) {
			h, rec := newTestHost(t, Options{})
			typ := NewCheckType(h)
			set := func(s *Settings) { s.AutoMTLS = &mtls }
			open := prepare(t, typ, pluginCheck("open", path, sum, map[string]any{"port": port, "warning_ms": 1000, "critical_ms": 2000}, set))
			shut := prepare(t, typ, pluginCheck("closed", path, sum, map[string]any{"port": closedPort}, set))
			res := runOnce(open, 20*time.Second)
			m, ok := metric(res, "connect_time")
			if res.Status != model.OK || !strings.Contains(res.Output, fmt.Sprintf("127.0.0.1:%d open", port)) || !ok || m.Unit != "ms" || m.Warn != "1000" {
				t.Fatalf("open port: %v %q %+v", res.Status, res.Output, res.Metrics)
			}
			res = runOnce(shut, 20*time.Second)
			if res.Status != model.Critical || !strings.Contains(res.Output, "refused") {
				t.Errorf("closed port: %v %q", res.Status, res.Output)
			}
			results := RunMany(context.Background(), []*Runner{open, shut, open})
			if results[0].Status != model.OK || results[1].Status != model.Critical || results[2].Status != model.OK {
				t.Errorf("RunMany: %v %v %v", results[0].Status, results[1].Status, results[2].Status)
			}
			st := h.Stats()
			if len(st) != 1 || st[0].Name != "tcp_check" || !st[0].Running {
				t.Fatalf("stats %+v", st)
			}
			if rec.find("INFO tcp_check serving", "plugin=tcp_check.py", fmt.Sprintf("auto_mtls=%v", mtls)) == "" {
				t.Errorf("the plugin's JSON log line did not reach slog at INFO with the plugin's name")
			}
			pid := st[0].PID
			// Schema validation applies to the Python plugin's schema too
			// (known by now, so at Prepare).
			if _, err := typ.Prepare(pluginCheck("bad", path, sum, map[string]any{"port": 70000}, set)); err == nil ||
				!strings.Contains(err.Error(), "config.port: maximum: got 70,000, want 65,535") {
				t.Errorf("invalid port: %v", err)
			}
			open.Close()
			shut.Close()
			// Graceful stop through GRPCController/Shutdown, well within
			// go-plugin's 2s grace (the plugin implements it).
			start := time.Now()
			waitFor(t, 5*time.Second, "the Python plugin to exit", func() bool { return processGone(pid) })
			if d := time.Since(start); d > 1500*time.Millisecond {
				t.Errorf("graceful stop took %v: Shutdown not honoured?", d)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path, sum := example(t, "hello")
	info, schema, err := Inspect(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "hello" || info.Kind != "check" || info.Version != "1.0.0" || info.ProtocolVersion != 1 || info.SHA256 != sum ||
		!strings.HasPrefix(info.SDK, "recon-go-sdk") || info.Path != path {
		t.Errorf("info %+v", info)
	}
	var s map[string]any
	if err := json.Unmarshal(schema, &s); err != nil || s["required"] == nil {
		t.Errorf("schema %s: %v", schema, err)
	}
	jpath, _ := example(t, "jsonl")
	if info, _, err := Inspect(ctx, jpath); err != nil || info.Kind != "sink" || info.Name != "jsonl" {
		t.Errorf("jsonl: %+v %v", info, err)
	}
	if _, _, err := Inspect(ctx, "/bin/true"); err == nil {
		t.Errorf("inspecting /bin/true (not a plugin) succeeded")
	}
	if _, _, err := Inspect(ctx, "/nonexistent/plugin"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing binary: %v", err)
	}
}

// TestSinkPluginCrashIsRetried: a sink plugin that dies on a batch makes
// WriteBatch fail (retryably); the pipeline retries, the host restarts the
// plugin and configures it again, and every result arrives.
func TestSinkPluginCrashIsRetried(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "marker")
	h, _ := newTestHost(t, Options{MinBackoff: 50 * time.Millisecond})
	spec := &sink.Spec{Name: "flaky", Type: "plugin", BatchSize: 10, Settings: &SinkSettings{CommonSettings: CommonSettings{
		Path: selfPath, SHA256: selfSum, Env: map[string]string{testPluginEnv: "sink-crash-once", "RECON_TEST_MARKER": marker}}}}
	s, err := NewSinkType(h).New(spec, sink.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	batch := []model.Result{{Output: "one"}, {Output: "two"}}
	err = s.WriteBatch(ctx, batch)
	if err == nil || sink.IsPermanent(err) || !strings.Contains(err.Error(), "exited (exit status 3)") {
		t.Fatalf("first batch: %v (permanent %v), want a retryable error naming the exit", err, sink.IsPermanent(err))
	}
	pipe := pipeline.New(nil)
	defer pipe.Close()
	if err := pipe.SetOutputs([]pipeline.Output{{Spec: spec, Sink: s, Fingerprint: "x",
		Open: func() (pipeline.Queue, error) { return pipeline.NewMemQueue(0), nil }}}); err != nil {
		t.Fatal(err)
	}
	if err := pipe.Publish(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the batch to be written after the restart", func() bool {
		b, _ := os.ReadFile(marker)
		return string(b) == "one\ntwo\n"
	})
	if st := h.Stats(); len(st) != 1 || st[0].Failures != 1 || st[0].Restarts != 1 {
		t.Errorf("stats %+v: want one failure and one restart", st)
	}
}
