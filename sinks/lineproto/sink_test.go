package lineproto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

// batch returns n results of a few checks with every metric kind.
func batch(n int) []model.Result {
	rs := make([]model.Result, n)
	for i := range rs {
		check := fmt.Sprintf("check%d", i%3)
		rs[i] = model.Result{CheckID: model.CheckID("a", check), Check: check, Target: fmt.Sprintf("host%d", i%2),
			Time: time.Unix(1700000000, int64(i)), Status: model.Status(i % 4), Tags: map[string]string{"role": "web", "i": fmt.Sprint(i)},
			Metrics: []model.Metric{{Name: "load 1", Value: model.Float(float64(i) / 4)}, {Name: "procs", Value: model.Int(int64(-i))},
				{Name: "bytes", Value: model.Uint(uint64(i) << 40)}, {Name: "state", Value: model.String(fmt.Sprintf("line %d, \"quoted\"", i))}}}
	}
	return rs
}

// assertDecodesTo decodes b and compares it with want, result by result.
func assertDecodesTo(t *testing.T, b []byte, want []model.Result) {
	t.Helper()
	rs, err := Decode(b, lineprotocol.Nanosecond, time.Time{}, "a")
	if err != nil {
		t.Fatalf("decode what was written: %v", err)
	}
	if len(rs) != len(want) {
		t.Fatalf("%d results written, want %d", len(rs), len(want))
	}
	for i := range rs {
		if msg := diffResult(rs[i], want[i]); msg != "" {
			t.Fatalf("result %d: %s", i, msg)
		}
	}
}

func newSink(t *testing.T, typ *Type, st Settings, env sink.Env) *Sink {
	t.Helper()
	if env.DataDir == "" {
		env.DataDir = t.TempDir()
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := typ.New(&sink.Spec{Name: "lp", Type: "lineproto", Settings: &st}, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*Sink)
}

func TestSettingsValidation(t *testing.T) {
	bad := map[string]Settings{
		"unknown output":              {Output: "kafka"},
		"file without path":           {Output: "file"},
		"path with stdout":            {Path: "x.lp"},
		"url with file":               {Output: "file", Path: "x", URL: "http://h/write"},
		"token with stdout":           {Token: "t"},
		"gzip with stdout":            {Gzip: true},
		"headers with file":           {Output: "file", Path: "x", Headers: map[string]string{"a": "b"}},
		"http without url":            {Output: "http"},
		"url not http":                {Output: "http", URL: "ftp://h/write"},
		"url without host":            {Output: "http", URL: "http:///write"},
		"url unparsable":              {Output: "http", URL: "http://h/%zz"},
		"precision h":                 {Output: "http", URL: "http://h/write?db=x&precision=h"},
		"auth_scheme without token":   {Output: "http", URL: "http://h/write", AuthScheme: "Bearer"},
		"auth_scheme with a space":    {Output: "http", URL: "http://h/write", Token: "t", AuthScheme: "To ken"},
		"token with newline":          {Output: "http", URL: "http://h/write", Token: "t\nX-Evil: 1"},
		"header name invalid":         {Output: "http", URL: "http://h/write", Headers: map[string]string{"a b": "c"}},
		"header value invalid":        {Output: "http", URL: "http://h/write", Headers: map[string]string{"a": "c\r\nd: e"}},
		"header the sink sets":        {Output: "http", URL: "http://h/write", Headers: map[string]string{"content-encoding": "br"}},
		"authorization and token":     {Output: "http", URL: "http://h/write", Token: "t", Headers: map[string]string{"Authorization": "Basic x"}},
		"url with secret, unparsable": {Output: "http", URL: "http://u:secret@h/%zz?p=secret"},
	}
	for name, st := range bad {
		_, err := (&Type{}).New(&sink.Spec{Name: "lp", Settings: &st}, sink.Env{})
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error shows a credential: %v", name, err)
		}
	}
	good := map[string]Settings{
		"zero is stdout":   {},
		"file":             {Output: "file", Path: "out.lp"},
		"v1":               {Output: "http", URL: "http://127.0.0.1:8086/write?db=recon&u=me&p=pw", Gzip: true},
		"v2 with token":    {Output: "http", URL: "https://influx:8086/api/v2/write?org=ops&bucket=recon", Token: "abc==", Timeout: config.Duration(time.Second)},
		"bearer":           {Output: "http", URL: "http://h/write", Token: "t", AuthScheme: "Bearer", Headers: map[string]string{"X-Scope": "a"}},
		"own auth header":  {Output: "http", URL: "http://h/write", Headers: map[string]string{"Authorization": "Basic dTpw"}},
		"precision in url": {Output: "http", URL: "http://h/write?precision=s"},
	}
	for name, st := range good {
		if _, err := (&Type{}).New(&sink.Spec{Name: "lp", Settings: &st}, sink.Env{}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// New has no side effects: nothing is created before Connect.
	dir := t.TempDir()
	st := Settings{Output: "file", Path: "sub/out.lp"}
	if _, err := (&Type{}).New(&sink.Spec{Name: "lp", Settings: &st}, sink.Env{DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("New created files: %v", err)
	}
}

// countingWriter records every Write call.
type countingWriter struct {
	mu     sync.Mutex
	writes [][]byte
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func TestStdoutOneWritePerBatch(t *testing.T) {
	w := &countingWriter{}
	s := newSink(t, &Type{Stdout: w}, Settings{}, sink.Env{})
	b1, b2 := batch(7), batch(3)
	for _, b := range [][]model.Result{b1, b2, nil} {
		if err := s.WriteBatch(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if len(w.writes) != 2 {
		t.Fatalf("%d writes for 2 batches (and an empty one)", len(w.writes))
	}
	assertDecodesTo(t, w.writes[0], b1)
	assertDecodesTo(t, w.writes[1], b2)
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestStdoutWriteErrorIsRetryable(t *testing.T) {
	s := newSink(t, &Type{Stdout: failingWriter{}}, Settings{}, sink.Env{})
	err := s.WriteBatch(context.Background(), batch(1))
	if err == nil || sink.IsPermanent(err) || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("%v", err)
	}
}

// observedFile wraps the real file and records the order of calls.
type observedFile struct {
	*os.File
	mu        sync.Mutex
	calls     []string
	failWrite int // bytes to write before failing, when > 0
}

func (f *observedFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.calls = append(f.calls, "write")
	fail := f.failWrite
	f.failWrite = 0
	f.mu.Unlock()
	if fail > 0 {
		n, _ := f.File.Write(p[:fail])
		return n, errors.New("no space left on device")
	}
	return f.File.Write(p)
}

func (f *observedFile) Sync() error {
	f.mu.Lock()
	f.calls = append(f.calls, "sync")
	f.mu.Unlock()
	return f.File.Sync()
}

func TestFileOutput(t *testing.T) {
	dataDir := t.TempDir()
	s := newSink(t, &Type{}, Settings{Output: "file", Path: "lp/out.lp"}, sink.Env{DataDir: dataDir})
	path := filepath.Join(dataDir, "lp", "out.lp")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("relative path not under data_dir: %v", err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	obs := &observedFile{File: s.file.(*os.File)}
	s.file = obs
	b1, b2, b3 := batch(5), batch(4), batch(2)
	for _, b := range [][]model.Result{b1, b2} {
		if err := s.WriteBatch(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(obs.calls, ","); got != "write,sync,write,sync" {
		t.Errorf("calls %s: want one write and one fsync per batch", got)
	}
	// Closed and connected again: appended, not truncated.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(context.Background(), b3); err == nil {
		t.Error("write on a closed sink succeeded")
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(context.Background(), b3); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	assertDecodesTo(t, got, append(append(append([]model.Result{}, b1...), b2...), b3...))
}

func TestFileTornWriteIsRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.lp")
	s := newSink(t, &Type{}, Settings{Output: "file", Path: path}, sink.Env{})
	b1, b2 := batch(3), batch(6)
	if err := s.WriteBatch(context.Background(), b1); err != nil {
		t.Fatal(err)
	}
	obs := &observedFile{File: s.file.(*os.File), failWrite: 100}
	s.file = obs
	err := s.WriteBatch(context.Background(), b2)
	if err == nil || sink.IsPermanent(err) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("%v", err)
	}
	got, _ := os.ReadFile(path)
	assertDecodesTo(t, got, b1) // the partial line is gone
	if err := s.WriteBatch(context.Background(), b2); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	assertDecodesTo(t, got, append(append([]model.Result{}, b1...), b2...))
}

func TestFileReloadReopens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.lp")
	s := newSink(t, &Type{}, Settings{Output: "file", Path: path}, sink.Env{})
	b1, b2 := batch(2), batch(3)
	if err := s.WriteBatch(context.Background(), b1); err != nil {
		t.Fatal(err)
	}
	// logrotate moves the file, then the agent gets SIGHUP.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(context.Background(), b2); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	assertDecodesTo(t, old, b1)
	cur, _ := os.ReadFile(path)
	assertDecodesTo(t, cur, b2)
	var _ sink.Reloader = s
}

func TestFileUnwritableDirectory(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600)
	s, err := (&Type{}).New(&sink.Spec{Name: "lp", Settings: &Settings{Output: "file", Path: filepath.Join(blocker, "out.lp")}}, sink.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err == nil || !strings.Contains(err.Error(), blocker) {
		t.Errorf("connect: %v", err)
	}
}

// A result that cannot be a line fails the whole batch permanently before
// anything is written, so the pipeline can isolate it and the file holds
// no half batch.
func TestUnencodableResultIsPermanentAndWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.lp")
	s := newSink(t, &Type{}, Settings{Output: "file", Path: path}, sink.Env{})
	b := batch(3)
	b[1].Time = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	err := s.WriteBatch(context.Background(), b)
	if !sink.IsPermanent(err) || !strings.Contains(err.Error(), "check1") {
		t.Fatalf("%v", err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Errorf("%d bytes written", fi.Size())
	}
}

// syncBuffer is a goroutine-safe log destination.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestSkippedValuesAreCountedAndLogged(t *testing.T) {
	var logs syncBuffer
	w := &countingWriter{}
	s := newSink(t, &Type{Stdout: w}, Settings{}, sink.Env{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	b := batch(4)
	b[0].Metrics = append(b[0].Metrics, model.Metric{Name: "nan", Value: model.Float(math.NaN())})
	b[2].Metrics = append(b[2].Metrics, model.Metric{Name: "inf", Value: model.Float(math.Inf(-1))}, model.Metric{Name: "procs", Value: model.Int(9)})
	if err := s.WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if s.Skipped() != 3 {
		t.Errorf("skipped %d, want 3", s.Skipped())
	}
	out := logs.String()
	if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "count=3") || !strings.Contains(out, "results=2") || !strings.Contains(out, "first_check=check0") {
		t.Errorf("log: %s", out)
	}
	// Everything else was written.
	b[0].Metrics = b[0].Metrics[:4]
	b[2].Metrics = b[2].Metrics[:4]
	assertDecodesTo(t, w.writes[0], b)
}

func TestCancelledContextWritesNothing(t *testing.T) {
	w := &countingWriter{}
	s := newSink(t, &Type{Stdout: w}, Settings{}, sink.Env{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WriteBatch(ctx, batch(1)); !errors.Is(err, context.Canceled) || len(w.writes) != 0 {
		t.Errorf("%v, %d writes", err, len(w.writes))
	}
}

var _ io.Writer = (*countingWriter)(nil)

// TestReadmeConfigs loads every TOML example of the README through the
// real config loader and builds the sinks it defines.
func TestReadmeConfigs(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	typ := &Type{}
	sinks := sink.NewRegistry()
	sinks.Register("lineproto", typ)
	reg := config.Registries{Checks: checktype.NewRegistry(), Sinks: sinks, DefaultSink: "lineproto"}
	env := map[string]string{"INFLUX_TOKEN": "secret-token", "TOKEN": "t"}
	opts := &config.Options{Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Hostname: func() (string, error) { return "test", nil }}
	blocks := strings.Split(string(readme), "```toml\n")[1:]
	if len(blocks) < 2 {
		t.Fatalf("%d TOML blocks in the README", len(blocks))
	}
	total := 0
	for i, blk := range blocks {
		doc := blk[:strings.Index(blk, "```")]
		cfg, err := config.Parse(fmt.Sprintf("README block %d", i+1), []byte(doc), reg, opts)
		if err != nil {
			t.Fatalf("block %d: %v\n%s", i+1, err, doc)
		}
		for _, spec := range cfg.Sinks {
			if _, err := typ.New(spec, sink.Env{DataDir: t.TempDir()}); err != nil {
				t.Errorf("block %d sink %s: %v", i+1, spec.Name, err)
			}
			total++
		}
	}
	if total != 4 {
		t.Errorf("%d sinks in the README examples, want 4", total)
	}
}
