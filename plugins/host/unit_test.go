package host

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/proto"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	pb "github.com/reconmon/recon/plugins/proto"
)

func TestConfigJSON(t *testing.T) {
	var doc struct {
		Config map[string]any `toml:"config"`
	}
	src := `config = { b = 1, a = "x", when = 2024-05-01T10:00:00Z, day = 2024-05-01, list = [1.5, true, { k = "v" }], nested = { z = [] } }`
	if err := toml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	data, h1, err := configJSON(doc.Config)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":"x","b":1,"day":"2024-05-01","list":[1.5,true,{"k":"v"}],"nested":{"z":[]},"when":"2024-05-01T10:00:00Z"}`
	if string(data) != want {
		t.Errorf("got  %s\nwant %s", data, want)
	}
	// Same config, same handle; different config, different handle.
	_, h2, _ := configJSON(map[string]any{"list": []any{1.5, true, map[string]any{"k": "v"}}, "b": int64(1), "a": "x",
		"nested": map[string]any{"z": []any{}}, "day": doc.Config["day"], "when": doc.Config["when"]})
	_, h3, _ := configJSON(map[string]any{"a": "y"})
	if h1 != h2 || h1 == h3 || len(h1) != 32 {
		t.Errorf("handles %q %q %q", h1, h2, h3)
	}
	if data, _, err := configJSON(nil); err != nil || string(data) != "{}" {
		t.Errorf("nil config: %s %v", data, err)
	}
	bad := []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"x": math.NaN()}, "config.x: NaN cannot be passed"},
		{map[string]any{"a": []any{map[string]any{"b": math.Inf(1)}}}, "config.a[0].b: +Inf"},
		{map[string]any{"c": make(chan int)}, "config.c: unsupported value of type chan int"},
	}
	for _, b := range bad {
		if _, _, err := configJSON(b.cfg); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%v: err %v, want %q", b.cfg, err, b.want)
		}
	}
}

func TestCompileSchemaRejects(t *testing.T) {
	cases := []struct {
		name, schema, want string
	}{
		{"not json", `{"type":`, "config schema is not JSON"},
		{"bad keyword type", `{"type": 5}`, "does not compile"},
		{"bad pattern", `{"pattern": "("}`, "does not compile"},
		{"external ref", `{"$ref": "file:///etc/passwd"}`, "external $ref \"file:///etc/passwd\" not allowed"},
		{"remote ref", `{"$ref": "https://example.com/s.json"}`, "not allowed"},
		{"too large", `{"description": "` + strings.Repeat("x", maxSchemaBytes) + `"}`, "limit"},
	}
	for _, c := range cases {
		if _, err := compileSchema(c.schema); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
	s, err := compileSchema("")
	if err != nil {
		t.Fatal(err)
	}
	if err := validateConfig(s, []byte(`{"anything": [1]}`)); err != nil {
		t.Errorf("empty schema rejects an object: %v", err)
	}
	if err := validateConfig(s, []byte(`[1]`)); err == nil {
		t.Errorf("empty schema accepts a non-object")
	}
}

func TestValidateConfigMessages(t *testing.T) {
	s, err := compileSchema(`{
	  "type": "object", "additionalProperties": false, "required": ["url"],
	  "properties": {
	    "url": {"type": "string", "format": "uri"},
	    "port": {"type": "integer", "minimum": 1},
	    "headers": {"type": "array", "items": {"type": "string"}},
	    "mode": {"enum": ["fast", "slow"]}
	  }}`)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		cfg  string
		want []string
	}{
		{`{"url": "http://x", "port": 8}`, nil},
		{`{"port": 0}`, []string{"config: missing property 'url'", "config.port: minimum: got 0, want 1"}},
		{`{"url": "not a uri"}`, []string{"config.url: 'not a uri' is not valid uri"}},
		{`{"url": "http://x", "headers": ["a", 2]}`, []string{"config.headers[1]: got number, want string"}},
		{`{"url": "http://x", "mode": "medium", "x": 1}`, []string{"config.mode: value must be one of 'fast', 'slow'", "config: additional properties 'x' not allowed"}},
	}
	for _, c := range cases {
		err := validateConfig(s, []byte(c.cfg))
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.cfg, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", c.cfg)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not contain %q", c.cfg, err, w)
			}
		}
	}
}

func FuzzSchema(f *testing.F) {
	f.Add(`{"type": "object", "properties": {"a": {"type": "integer", "maximum": 3}}}`, `{"a": 4}`)
	f.Add(`{"$ref": "#/$defs/x", "$defs": {"x": {"pattern": "^a+$"}}}`, `"aaa"`)
	f.Add(`{"allOf": [{"$ref": "#"}]}`, `{}`)
	f.Add(`{"$schema": "http://json-schema.org/draft-04/schema#", "type": ["string", "null"]}`, `null`)
	f.Add(`{"if": {"minProperties": 1}, "then": {"required": ["b"]}, "format": "email"}`, `{"c": "x@"}`)
	f.Fuzz(func(t *testing.T, schema, cfg string) {
		s, err := compileSchema(schema)
		if err != nil {
			return
		}
		_ = validateConfig(s, []byte(cfg))
	})
}

func TestResultFromPB(t *testing.T) {
	min, max := 0.0, 100.0
	cases := []struct {
		name    string
		in      *pb.Result
		status  model.Status
		output  string
		long    string // substring
		metrics int
	}{
		{"ok", &pb.Result{Status: pb.Status_STATUS_OK, Output: "fine", Metrics: []*pb.Metric{
			{Name: "a", Value: &pb.Metric_FloatValue{FloatValue: 1.5}, Unit: "s", Warn: "1", Crit: "2", Min: &min, Max: &max},
			{Name: "b", Value: &pb.Metric_UintValue{UintValue: math.MaxUint64}},
			{Name: "c", Value: &pb.Metric_StringValue{StringValue: "x"}},
			{Name: "d", Value: &pb.Metric_IntValue{IntValue: -3}},
		}}, model.OK, "fine", "", 4},
		{"no status", &pb.Result{Output: "forgot"}, model.Unknown, "forgot", "plugin returned no status", 0},
		{"invalid status", &pb.Result{Status: 99}, model.Unknown, "", "invalid status 99", 0},
		{"critical stays critical", &pb.Result{Status: pb.Status_STATUS_CRITICAL, Metrics: []*pb.Metric{{Name: ""}}}, model.Critical, "", "metric #1: no name", 0},
		{"metric without value", &pb.Result{Status: pb.Status_STATUS_OK, Metrics: []*pb.Metric{{Name: "v"}, {Name: "w", Value: &pb.Metric_IntValue{}}}}, model.Unknown, "", `metric #1: "v" has no value`, 1},
		{"multi-line output", &pb.Result{Status: pb.Status_STATUS_WARNING, Output: "first\r\nsecond", LongOutput: "third"}, model.Warning, "first", "second\nthird", 0},
		{"invalid utf-8", &pb.Result{Status: pb.Status_STATUS_OK, Output: "a\xffb"}, model.Unknown, "a\uFFFDb", "output is not valid UTF-8", 0},
		{"too long", &pb.Result{Status: pb.Status_STATUS_OK, Output: strings.Repeat("é", 40)}, model.Unknown, strings.Repeat("é", 25), "output cut to 50 of 80 bytes", 0},
		{"bad metric name", &pb.Result{Status: pb.Status_STATUS_OK, Metrics: []*pb.Metric{{Name: "m\xff", Value: &pb.Metric_IntValue{}}}}, model.Unknown, "", "name is not valid UTF-8", 0},
	}
	for _, c := range cases {
		got := resultFromPB(c.in, 50)
		if got.Status != c.status || got.Output != c.output || !strings.Contains(got.LongOutput, c.long) || len(got.Metrics) != c.metrics {
			t.Errorf("%s: got %v %q long=%q metrics=%d", c.name, got.Status, got.Output, got.LongOutput, len(got.Metrics))
		}
	}
	got := resultFromPB(cases[0].in, 0)
	if m := got.Metrics[1]; m.Value.Kind() != model.KindUint || m.Value.Uint() != math.MaxUint64 {
		t.Errorf("uint metric %+v", m)
	}
	if m := got.Metrics[0]; *m.Min != 0 || *m.Max != 100 || m.Unit != "s" || m.Warn != "1" {
		t.Errorf("float metric %+v", m)
	}
	many := &pb.Result{Status: pb.Status_STATUS_OK}
	for range maxMetrics + 5 {
		many.Metrics = append(many.Metrics, &pb.Metric{Name: "m", Value: &pb.Metric_IntValue{}})
	}
	if got := resultFromPB(many, 0); len(got.Metrics) != maxMetrics || !strings.Contains(got.LongOutput, "only the first") {
		t.Errorf("too many metrics: %d %q", len(got.Metrics), got.LongOutput)
	}
}

func TestResultToPBRoundTrip(t *testing.T) {
	r := model.Result{CheckID: model.CheckID("a", "b"), Check: "b\xfe", Type: "nagios", Target: "t", Time: time.Unix(5, 6),
		Duration: time.Second, Status: model.Critical, StateType: model.Soft, Attempt: 2, Output: "out\xff",
		Metrics: []model.Metric{{Name: "x", Value: model.Int(-1)}, {Name: "y", Value: model.String("\xff")}},
		Tags:    map[string]string{"k\xff": "v"}}
	p := resultToPB(&r)
	b, err := proto.Marshal(p) // fails on invalid UTF-8 in string fields
	if err != nil {
		t.Fatal(err)
	}
	var back pb.Result
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.TimeUnixNano != 5_000_000_006 || back.StateType != pb.StateType_STATE_TYPE_SOFT || back.Output != "out\uFFFD" ||
		back.Tags["k\uFFFD"] != "v" || back.Metrics[0].GetIntValue() != -1 || back.Status != pb.Status_STATUS_CRITICAL {
		t.Errorf("%v", &back)
	}
}

func FuzzResultFromPB(f *testing.F) {
	seed, _ := proto.Marshal(&pb.Result{Status: pb.Status_STATUS_OK, Output: "x\ny", Metrics: []*pb.Metric{{Name: "a", Value: &pb.Metric_FloatValue{FloatValue: 1}}}})
	f.Add(seed)
	f.Add([]byte{0x08, 0x63})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r pb.Result
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		got := resultFromPB(&r, 1024)
		if !got.Status.Valid() {
			t.Fatalf("invalid status %v", got.Status)
		}
		if len(got.Output) > 1024 || strings.Contains(got.Output, "\n") {
			t.Fatalf("output %q", got.Output)
		}
	})
}

func TestParseLogLine(t *testing.T) {
	cases := []struct {
		line  string
		json  bool
		level slog.Level
		msg   string
		attrs string
	}{
		{`plain text`, false, slog.LevelInfo, "plain text", ""},
		{`{"@level":"warn","@message":"disk slow","@timestamp":"2024-01-01T00:00:00.000000Z","dev":"sda","n":3,"o":{"a":1},"b":true}`, true, slog.LevelWarn, "disk slow", "[b true dev sda n 3 o {\"a\":1}]"},
		{`{"@level":"ERROR","@message":"x"}`, true, slog.LevelError, "x", ""},
		{`{"@level":"trace","@message":"t"}`, true, slog.LevelDebug - 4, "t", ""},
		{`{"@message": 1, "@level": 5, "@timestamp": 7}`, false, slog.LevelInfo, `{"@message": 1, "@level": 5, "@timestamp": 7}`, ""},
		{`{"@level": "info"}`, false, slog.LevelInfo, `{"@level": "info"}`, ""},
		{`{"@message": "m", "@level": ["x"]}`, false, slog.LevelInfo, `{"@message": "m", "@level": ["x"]}`, ""},
		{`{not json`, false, slog.LevelInfo, `{not json`, ""},
		{`[1,2]`, false, slog.LevelInfo, `[1,2]`, ""},
	}
	for _, c := range cases {
		e := parseLogLine(c.line)
		attrs := ""
		if len(e.attrs) > 0 {
			attrs = fmt.Sprint(e.attrs)
		}
		if e.json != c.json || e.level != c.level || e.msg != c.msg || attrs != c.attrs {
			t.Errorf("%s: got json=%v %v %q %q", c.line, e.json, e.level, e.msg, attrs)
		}
	}
}

func FuzzParseLogLine(f *testing.F) {
	f.Add(`{"@level":"warn","@message":"m","k":[1,{"a":null}]}`)
	f.Add(`{"@message": {}, "@timestamp": 7}`)
	f.Add("panic: boom\x00\xff")
	f.Fuzz(func(t *testing.T, line string) {
		e := parseLogLine(line)
		if len(e.attrs)%2 != 0 || len(e.attrs) > 2*(maxLogFields+1) {
			t.Fatalf("attrs %v", e.attrs)
		}
		l := newStderrLog(slog.New(slog.DiscardHandler))
		l.Write([]byte(line + "\n" + line))
		l.flush()
		if len(l.lastLines()) > tailLines {
			t.Fatal("tail grew past its limit")
		}
	})
}

func TestStderrLog(t *testing.T) {
	rec := &logRecorder{}
	l := newStderrLog(slog.New(rec))
	l.Write([]byte("first line\n{\"@level\":\"debug\",\"@message\":\"dbg\"}\npartial"))
	l.Write([]byte(" end\n\npanic: oh no\n\ngoroutine 1 [running]:\nmain.main()\n"))
	l.Write([]byte(strings.Repeat("x", maxLogLine+100) + "\n"))
	l.Write([]byte("unterminated"))
	l.flush()
	for _, want := range []string{"INFO first line", "DEBUG dbg", "INFO partial end", "ERROR panic: oh no", "ERROR goroutine 1 [running]:", "ERROR unterminated"} {
		if rec.find(want) == "" {
			t.Errorf("no log record %q in %q", want, rec.records)
		}
	}
	if rec.find("…(line cut)") == "" {
		t.Errorf("long line was not cut")
	}
	tail := l.lastLines()
	if crashLine(tail) != "panic: oh no" {
		t.Errorf("crash line %q from %q", crashLine(tail), tail)
	}
	if got := crashLine([]string{"a", `{"@level":"info","@message":"x"}`}); got != "a" {
		t.Errorf("crash line %q", got)
	}
	if got := crashLine([]string{"Traceback (most recent call last):", "  File x", "ValueError: bad"}); got != "ValueError: bad" {
		t.Errorf("python crash line %q", got)
	}
	for range 3 * tailLines {
		l.Write([]byte("more\n"))
	}
	if len(l.lastLines()) != tailLines {
		t.Errorf("tail has %d lines", len(l.lastLines()))
	}
}

func TestHclogAdapter(t *testing.T) {
	rec := &logRecorder{}
	a := newHclog(slog.New(rec), "myplugin")
	a.With("x", 1).Named("stdio").Warn("hello", "plugin", "/path", 7)
	if r := rec.find("WARN hello", "logger=stdio", "x=1", "plugin_path=/path", "EXTRA_VALUE=7"); r == "" {
		t.Errorf("records %q", rec.records)
	}
	// go-plugin's stderr logger is switched off: the host parses stderr.
	off := a.Named("myplugin")
	off.Error("from stderr")
	if off.GetLevel().String() != "off" || rec.find("from stderr") != "" {
		t.Errorf("stderr sub-logger is not off")
	}
	a.Trace("trace")
	a.StandardLogger(nil).Print("std")
	if rec.find("INFO std") == "" {
		t.Errorf("standard logger: %q", rec.records)
	}
}

func TestBackoff(t *testing.T) {
	h := New(Options{MinBackoff: time.Second, MaxBackoff: 10 * time.Second, StableAfter: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	p := newProc(h, procSpec{path: "/x"})
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if d := p.backoff(i + 1); d != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, d, w)
		}
	}
	p.recordFailureLocked(time.Now(), "a")
	p.recordFailureLocked(time.Now(), "b")
	p.recordFailureLocked(time.Now(), "c")
	if p.failures != 3 || time.Until(p.retryAt) < 3*time.Second || p.lastErr != "c" {
		t.Errorf("after 3 failures: %d, retry in %v", p.failures, time.Until(p.retryAt))
	}
	// A process that ran long enough starts the backoff over.
	p.recordFailureLocked(time.Now().Add(-2*time.Minute), "d")
	if p.failures != 1 || time.Until(p.retryAt) > time.Second {
		t.Errorf("after a stable run: %d failures, retry in %v", p.failures, time.Until(p.retryAt))
	}
	if p.failuresTotal != 4 {
		t.Errorf("total %d", p.failuresTotal)
	}
}

func TestPluginTimeout(t *testing.T) {
	for _, c := range []struct{ budget, want time.Duration }{
		{time.Second, 900 * time.Millisecond},
		{10 * time.Second, 9500 * time.Millisecond},
		{100 * time.Millisecond, 90 * time.Millisecond},
	} {
		if got := pluginTimeout(c.budget); got != c.want {
			t.Errorf("pluginTimeout(%v) = %v, want %v", c.budget, got, c.want)
		}
	}
}

// TestSettingsFromTOML decodes plugin checks and sinks the way the agent
// does, through the strict config loader.
func TestSettingsFromTOML(t *testing.T) {
	h := New(Options{Logger: slog.New(slog.DiscardHandler)})
	checks := checktype.NewRegistry()
	checks.Register("plugin", NewCheckType(h))
	sinks := sink.NewRegistry()
	sinks.Register("plugin", NewSinkType(h))
	reg := config.Registries{Checks: checks, Sinks: sinks}
	sum := strings.Repeat("0a", 32)
	doc := `
[[check]]
name = "api"
type = "plugin"
path = "plugins/httpjson"
sha256 = "` + strings.ToUpper(sum) + `"
auto_mtls = false
env = { HTTPS_PROXY = "http://proxy:3128" }
config = { url = "http://x/", field = "a.b", headers = { Accept = "x" } }

[[sink]]
name = "archive"
type = "plugin"
path = "/opt/jsonl"
insecure_skip_checksum = true
timeout = "5s"
config = { path = "/tmp/x.jsonl" }
`
	cfg, err := config.Parse("/etc/recon/recon.toml", []byte(doc), reg, &config.Options{Hostname: func() (string, error) { return "h", nil }})
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Checks[0]
	r, err := NewCheckType(h).Prepare(c)
	if err != nil {
		t.Fatal(err)
	}
	run := r.(*Runner)
	if run.spec.path != "/etc/recon/plugins/httpjson" || run.spec.autoMTLS || string(run.data) != `{"field":"a.b","headers":{"Accept":"x"},"url":"http://x/"}` {
		t.Errorf("runner spec %+v data %s", run.spec, run.data)
	}
	if !strings.Contains(strings.Join(run.spec.env, " "), "HTTPS_PROXY=http://proxy:3128") {
		t.Errorf("env %v", run.spec.env)
	}
	s, err := NewSinkType(h).New(cfg.Sinks[0], sink.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if ps := s.(*Sink); ps.timeout != 5*time.Second || ps.spec.sum != nil || ps.spec.path != "/opt/jsonl" {
		t.Errorf("sink %+v", ps)
	}

	bad := []struct{ doc, want string }{
		{`[[check]]
name = "x"
type = "plugin"
path = "/p"`, "sha256 is required"},
		{`[[check]]
name = "x"
type = "plugin"
path = "/p"
sha256 = "abc"`, "want 64 hex digits"},
		{`[[check]]
name = "x"
type = "plugin"
sha256 = "` + sum + `"`, "path is required"},
		{`[[check]]
name = "x"
type = "plugin"
path = "/p"
sha256 = "` + sum + `"
config = { v = nan }`, "config.v: NaN"},
		{`[[check]]
name = "x"
type = "plugin"
path = "/p"
sha256 = "` + sum + `"
env = { "A=B" = "c" }`, "env: invalid variable"},
	}
	for _, b := range bad {
		cfg, err := config.Parse("bad.toml", []byte(b.doc), reg, nil)
		if err == nil {
			_, err = NewCheckType(h).Prepare(cfg.Checks[0])
		}
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s\n→ %v, want %q", b.doc, err, b.want)
		}
	}
	// Strict decoding: an unknown key is reported with file:line.
	_, err = config.Parse("bad.toml", []byte("[[check]]\nname = \"x\"\ntype = \"plugin\"\npath = \"/p\"\nsha265 = \"x\"\n"), reg, nil)
	if err == nil || !strings.Contains(err.Error(), "bad.toml:5") {
		t.Errorf("unknown key: %v", err)
	}
}
