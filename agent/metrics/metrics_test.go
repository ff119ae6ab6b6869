package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/pipeline"
	"github.com/reconmon/recon/agent/scheduler"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/stream"
)

type nopSink struct{}

func (nopSink) Connect(context.Context) error                    { return nil }
func (nopSink) WriteBatch(context.Context, []model.Result) error { return nil }
func (nopSink) Close() error                                     { return nil }

type srcs struct{}

func (srcs) SourceCounters() map[string]map[string]uint64 {
	return map[string]map[string]uint64{"nrpe": {"commands": 7}}
}

func TestExposition(t *testing.T) {
	m := New()
	p := pipeline.New(nil)
	defer p.Close()
	p.SetOutputs([]pipeline.Output{{Spec: &sink.Spec{Name: "store", Type: "sqlite"}, Sink: nopSink{},
		Open: func() (pipeline.Queue, error) { return pipeline.NewMemQueue(0), nil }, Fingerprint: "x"}})
	s := scheduler.New(scheduler.Options{Emit: func(ctx context.Context, r model.Result) error { return p.Publish(ctx, r) },
		OnResult: m.ObserveResult})
	c := &model.Check{ID: uuid.New(), Name: "c", Type: "nagios", Period: time.Hour, Timeout: time.Second, MaxAttempts: 1}
	s.Update([]scheduler.Job{{Check: c, Runner: checktype.Func(func(context.Context, *model.Result) model.Result {
		return model.Result{Status: model.Critical}
	})}})
	if _, err := s.RunNow(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	h := stream.NewHub(nil, "a", nil)
	m.Attach(s, p, h, srcs{})
	m.AddComponent("lua", func() map[string]uint64 { return map[string]uint64{"timeouts": 3} })
	m.AttachPlugins(func() []PluginStat {
		return []PluginStat{{Name: "hello", Kind: "check", Running: true, Restarts: 2, Failures: 2},
			{Name: "hello", Kind: "check", Restarts: 1, Failures: 1}}
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`recon_check_runs_total{status="CRITICAL"} 1`,
		`recon_checks_scheduled 1`,
		`recon_check_duration_seconds_count{type="nagios"} 1`,
		`recon_spool_depth{sink="store"}`,
		`recon_sink_written_total{sink="store",type="sqlite"}`,
		`recon_source_events_total{event="commands",source="nrpe"} 7`,
		`recon_stream_clones 0`,
		`recon_component_events_total{component="lua",event="timeouts"} 3`,
		`recon_plugin_restarts_total{kind="check",plugin="hello"} 3`,
		`recon_plugin_failures_total{kind="check",plugin="hello"} 3`,
		`recon_plugin_running{kind="check",plugin="hello"} 1`,
		`recon_scheduler_lag_seconds_bucket`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}
