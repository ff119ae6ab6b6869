package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

type cmdSettings struct {
	Command string `toml:"command"`
}

type fakeCheck struct{ prepared atomic.Int32 }

func (*fakeCheck) NewSettings() any { return &cmdSettings{} }
func (f *fakeCheck) Prepare(c *model.Check) (checktype.Runner, error) {
	if c.Settings.(*cmdSettings).Command == "fail" {
		return nil, errors.New("cannot prepare")
	}
	f.prepared.Add(1)
	return checktype.Func(func(context.Context, *model.Result) model.Result { return model.Result{Status: model.OK} }), nil
}

type memSink struct {
	mu       sync.Mutex
	got      []model.Result
	reloads  int
	reloadOK bool
	closed   bool
}

func (s *memSink) Connect(context.Context) error { return nil }
func (s *memSink) WriteBatch(_ context.Context, b []model.Result) error {
	s.mu.Lock()
	s.got = append(s.got, b...)
	s.mu.Unlock()
	return nil
}
func (s *memSink) Close() error { s.mu.Lock(); s.closed = true; s.mu.Unlock(); return nil }
func (s *memSink) Reload() error {
	s.reloads++
	if !s.reloadOK {
		return errors.New("rules broken")
	}
	return nil
}
func (s *memSink) count() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.got) }

type sinkSettings struct {
	Label string `toml:"label"`
}

type memSinkType struct {
	mu    sync.Mutex
	built []*memSink
}

func (*memSinkType) NewSettings() any { return &sinkSettings{} }
func (t *memSinkType) New(spec *sink.Spec, env sink.Env) (sink.Sink, error) {
	if spec.Settings.(*sinkSettings).Label == "bad" {
		return nil, errors.New("bad sink")
	}
	s := &memSink{reloadOK: true}
	t.mu.Lock()
	t.built = append(t.built, s)
	t.mu.Unlock()
	return s, nil
}

// fakeSource counts starts and the closes of started instances (a source
// built for a reload that then fails is closed without ever starting).
type fakeSource struct {
	started, closed *atomic.Int32
	running         bool
}

func (f *fakeSource) Start(context.Context) error { f.started.Add(1); f.running = true; return nil }
func (f *fakeSource) Close() error {
	if f.running {
		f.closed.Add(1)
		f.running = false
	}
	return nil
}

func setup(t *testing.T, cfg string) (string, Options, *memSinkType, *fakeCheck) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.toml")
	os.WriteFile(path, []byte(cfg), 0o644)
	ct := &fakeCheck{}
	st := &memSinkType{}
	cr := checktype.NewRegistry()
	cr.Register("fake", ct)
	sr := sink.NewRegistry()
	sr.Register("mem", st)
	return path, Options{ConfigPath: path, Registries: config.Registries{Checks: cr, Sinks: sr}}, st, ct
}

const baseCfg = `
[agent]
data_dir = "DATA"
[[check]]
name = "a"
type = "fake"
command = "x"
period = "50ms"
[[sink]]
name = "one"
type = "mem"
label = "v1"
`

func TestRunReloadRollback(t *testing.T) {
	path, opts, st, _ := setup(t, "")
	data := filepath.Join(filepath.Dir(path), "data")
	write := func(s string) { os.WriteFile(path, []byte(strings.ReplaceAll(s, "DATA", data)), 0o644) }
	write(baseCfg)
	var started, closed atomic.Int32
	buildFail := false
	opts.Sources = func(cfg *config.Config) ([]SourceSpec, error) {
		return []SourceSpec{{Name: "src", Fingerprint: cfg.Fingerprints["sink:one"], Build: func(SourceEnv) (Source, error) {
			if buildFail {
				return nil, errors.New("source config broken")
			}
			return &fakeSource{started: &started, closed: &closed}, nil
		}}}, nil
	}
	rt, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rt.Run(ctx) }()
	first := st.built[0]
	deadline := time.Now().Add(5 * time.Second)
	for first.count() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if first.count() < 3 || started.Load() != 1 {
		t.Fatalf("not running: %d results, %d sources", first.count(), started.Load())
	}
	// A check that cannot be prepared: nothing changes.
	write(strings.Replace(baseCfg, `command = "x"`, `command = "fail"`, 1))
	if err := rt.Reload(); err == nil || !strings.Contains(err.Error(), "cannot prepare") {
		t.Fatalf("reload: %v", err)
	}
	// A sink that cannot be built: nothing changes.
	write(strings.Replace(baseCfg, `label = "v1"`, `label = "bad"`, 1))
	if err := rt.Reload(); err == nil {
		t.Fatal("bad sink accepted")
	}
	// A source that cannot be built: nothing changes.
	buildFail = true
	write(strings.Replace(baseCfg, `label = "v1"`, `label = "v2"`, 1))
	if err := rt.Reload(); err == nil || !strings.Contains(err.Error(), "source config broken") {
		t.Fatalf("source failure: %v", err)
	}
	if len(st.built) != 1 || started.Load() != 1 {
		t.Errorf("failed reloads built %d sinks and started %d sources", len(st.built)-1, started.Load()-1)
	}
	if rt.Config().Sinks[0].Settings.(*sinkSettings).Label != "v1" {
		t.Error("config swapped on failure")
	}
	// Unchanged sink: kept running, Reload called on it.
	buildFail = false
	write(baseCfg + "\n[[check]]\nname = 'b'\ntype = 'fake'\ncommand = 'y'\nperiod = '50ms'\n")
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	if first.reloads != 1 || first.closed {
		t.Errorf("unchanged sink: reloads %d closed %v", first.reloads, first.closed)
	}
	if len(rt.Config().Checks) != 2 {
		t.Error("new check not applied")
	}
	// A failing sink Reload (broken rules) is reported; the rest applies.
	first.reloadOK = false
	if err := rt.Reload(); err == nil || !strings.Contains(err.Error(), "rules broken") {
		t.Errorf("sink reload error: %v", err)
	}
	// Changed sink: replaced, old one closed, source rebuilt (its fingerprint follows the sink).
	write(strings.Replace(baseCfg, `label = "v1"`, `label = "v3"`, 1))
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	if !first.closed || started.Load() != 2 || closed.Load() != 1 {
		t.Errorf("changed sink/source: closed %v started %d closed %d", first.closed, started.Load(), closed.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if closed.Load() != 2 {
		t.Errorf("sources not closed at stop: %d", closed.Load())
	}
}

func TestPrepareClone(t *testing.T) {
	path, opts, _, ct := setup(t, "")
	os.WriteFile(path, []byte(strings.ReplaceAll(baseCfg, "DATA", filepath.Join(filepath.Dir(path), "d"))), 0o644)
	rt, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	id := rt.Config().Checks[0].ID
	before := ct.prepared.Load()
	c, r, err := rt.PrepareClone(id, time.Second, 900*time.Millisecond)
	if err != nil || r == nil || c.Period != time.Second || c.Timeout != 900*time.Millisecond || ct.prepared.Load() != before+1 {
		t.Errorf("clone: %+v %v", c, err)
	}
	if rt.Config().Checks[0].Period != 50*time.Millisecond {
		t.Error("clone changed the configured check")
	}
	if _, _, err := rt.PrepareClone(model.CheckID("x", "y"), time.Second, time.Second); err == nil {
		t.Error("unknown check cloned")
	}
}
