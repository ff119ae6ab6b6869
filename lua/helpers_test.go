package lua

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
)

// logBuffer collects slog output of a Type for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newTestType(t testing.TB, opts Options) (*Type, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	typ := New(opts)
	t.Cleanup(func() { typ.Close() })
	return typ, lb
}

// writeScript writes src to NAME in a new temp dir and returns its path.
func writeScript(t testing.TB, name, src string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type checkOpt func(*model.Check, *Settings)

func withTarget(s string) checkOpt { return func(c *model.Check, _ *Settings) { c.Target = s } }
func withAllow(a ...string) checkOpt {
	return func(_ *model.Check, s *Settings) { s.Allow = a }
}
func withConfig(m map[string]any) checkOpt {
	return func(_ *model.Check, s *Settings) { s.Config = m }
}
func withTimeout(d time.Duration) checkOpt {
	return func(c *model.Check, _ *Settings) { c.Timeout = d }
}
func withMaxInstructions(n int64) checkOpt {
	return func(_ *model.Check, s *Settings) { s.MaxInstructions = n }
}

// prepareFile prepares a check of the script at path.
func prepareFile(t testing.TB, typ *Type, path string, o ...checkOpt) checktype.Runner {
	t.Helper()
	s := &Settings{Script: path}
	c := &model.Check{Name: "test", Type: "lua", Target: "localhost", Timeout: 5 * time.Second, Settings: s}
	for _, f := range o {
		f(c, s)
	}
	r, err := typ.Prepare(c)
	if err != nil {
		t.Fatalf("prepare %s: %v", path, err)
	}
	t.Cleanup(func() { r.(checktype.Closer).Close() })
	return r
}

// prepareSrc writes src to a temp file and prepares it.
func prepareSrc(t testing.TB, typ *Type, src string, o ...checkOpt) checktype.Runner {
	t.Helper()
	return prepareFile(t, typ, writeScript(t, "check.lua", src), o...)
}

// runSrc runs src once under timeout (default 5s).
func runSrc(t testing.TB, typ *Type, src string, o ...checkOpt) model.Result {
	t.Helper()
	r := prepareSrc(t, typ, src, o...)
	return runWith(r, 5*time.Second, nil)
}

func runWith(r checktype.Runner, timeout time.Duration, prev *model.Result) model.Result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.Run(ctx, prev)
}

func metric(t testing.TB, res model.Result, name string) model.Metric {
	t.Helper()
	for _, m := range res.Metrics {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no metric %q in %+v", name, res.Metrics)
	return model.Metric{}
}

func wantStatus(t testing.TB, res model.Result, want model.Status, outputContains ...string) {
	t.Helper()
	if res.Status != want {
		t.Fatalf("status %v, want %v; output %q; long output %q", res.Status, want, res.Output, res.LongOutput)
	}
	for _, s := range outputContains {
		if !strings.Contains(res.Output, s) {
			t.Fatalf("output %q does not contain %q (long output %q)", res.Output, s, res.LongOutput)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedPG != nil {
		sharedPG.Remove()
	}
	os.Exit(code)
}
