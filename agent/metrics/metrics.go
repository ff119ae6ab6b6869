// Package metrics exposes the agent's internals in the Prometheus format:
// checks run, late and failed, run durations, scheduler lag, spool depth
// and bytes per sink, sink errors, source counters (traps, NRPE, passive),
// temporal streams. Counters are read from the components at scrape time;
// only run durations are observed as they happen.
package metrics

import (
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/pipeline"
	"github.com/reconmon/recon/agent/scheduler"
	"github.com/reconmon/recon/agent/stream"
)

// Sources reports per-source counters (source name → counter → value).
type Sources interface {
	SourceCounters() map[string]map[string]uint64
}

// Metrics is the agent's registry and collectors.
type Metrics struct {
	reg       *prometheus.Registry
	durations *prometheus.HistogramVec
	sched     *scheduler.Scheduler
	pipe      *pipeline.Pipeline
	streams   *stream.Hub
	sources   Sources
	comps     []component
	plugins   func() []PluginStat
}

type component struct {
	name     string
	counters func() map[string]uint64
}

// PluginStat is one out-of-process plugin as /metrics shows it.
type PluginStat struct {
	Name, Kind         string
	Running            bool
	Restarts, Failures uint64
}

// AddComponent exposes a component's counters (the lua check type's
// timeouts, …) as recon_component_events_total{component=name}. Call it
// before serving.
func (m *Metrics) AddComponent(name string, counters func() map[string]uint64) {
	m.comps = append(m.comps, component{name, counters})
}

// AttachPlugins sets where plugin process figures come from.
func (m *Metrics) AttachPlugins(f func() []PluginStat) { m.plugins = f }

// New builds a registry (a value, not the global one).
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "recon_check_duration_seconds",
		Help:    "Duration of check runs by check type.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"type"})
	// go_gc_heap_live_bytes (heap marked live by the last GC) shows
	// growth that go_memstats_heap_inuse_bytes's GC sawtooth hides.
	goc := collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)}))
	m.reg.MustRegister(m.durations, goc, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), m)
	return m
}

// Attach sets the components read at scrape time (any may be nil).
func (m *Metrics) Attach(s *scheduler.Scheduler, p *pipeline.Pipeline, h *stream.Hub, src Sources) {
	m.sched, m.pipe, m.streams, m.sources = s, p, h, src
}

// ObserveResult records a run's duration; wire it to the scheduler's OnResult.
func (m *Metrics) ObserveResult(r *model.Result) {
	m.durations.WithLabelValues(r.Type).Observe(r.Duration.Seconds())
}

// Handler serves the exposition.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

var (
	dChecks      = prometheus.NewDesc("recon_checks_scheduled", "Checks currently scheduled.", nil, nil)
	dWaiting     = prometheus.NewDesc("recon_checks_waiting", "Due runs waiting for a concurrency slot (max_concurrency, per-type limits).", nil, nil)
	dRuns        = prometheus.NewDesc("recon_check_runs_total", "Check results produced, by status.", []string{"status"}, nil)
	dLate        = prometheus.NewDesc("recon_check_late_total", "Runs skipped because the previous run of the check was still going (or waiting on a full spool).", nil, nil)
	dEmitErr     = prometheus.NewDesc("recon_check_results_undelivered_total", "Results the pipeline did not accept (only at shutdown).", nil, nil)
	dLag         = prometheus.NewDesc("recon_scheduler_lag_seconds", "Delay between a check's due time and its dispatch.", nil, nil)
	dDepth       = prometheus.NewDesc("recon_spool_depth", "Results queued in a sink's spool.", []string{"sink"}, nil)
	dBytes       = prometheus.NewDesc("recon_spool_bytes", "Bytes of a sink's spool on disk.", []string{"sink"}, nil)
	dBlocked     = prometheus.NewDesc("recon_spool_blocked_appends_total", "Appends that waited because a spool was full (backpressure).", []string{"sink"}, nil)
	dCorrupt     = prometheus.NewDesc("recon_spool_corrupt_records_total", "Corrupt spool records moved aside on open.", []string{"sink"}, nil)
	dWritten     = prometheus.NewDesc("recon_sink_written_total", "Results written by a sink.", []string{"sink", "type"}, nil)
	dWriteErr    = prometheus.NewDesc("recon_sink_errors_total", "Failed sink writes (retried).", []string{"sink", "type"}, nil)
	dAppendErr   = prometheus.NewDesc("recon_spool_append_errors_total", "Failed spool appends (retried by the producer).", []string{"sink"}, nil)
	dDead        = prometheus.NewDesc("recon_sink_dead_lettered_total", "Results a sink rejected permanently, kept in its dead-letter file.", []string{"sink", "type"}, nil)
	dConnected   = prometheus.NewDesc("recon_sink_connected", "1 when the sink's last write succeeded.", []string{"sink", "type"}, nil)
	dSource      = prometheus.NewDesc("recon_source_events_total", "Source counters (traps received/dropped, NRPE commands, passive results…).", []string{"source", "event"}, nil)
	dSinkEvents  = prometheus.NewDesc("recon_sink_stat", "Sink-specific figures (alerter: alerts firing, notifications delivered, failures, outbox…).", []string{"sink", "stat"}, nil)
	dClones      = prometheus.NewDesc("recon_stream_clones", "Check clones running for temporal streams.", nil, nil)
	dWatchers    = prometheus.NewDesc("recon_stream_watchers", "Temporal stream watchers.", nil, nil)
	dCloneRuns   = prometheus.NewDesc("recon_stream_clone_runs_total", "Runs of check clones.", nil, nil)
	dDropWatcher = prometheus.NewDesc("recon_stream_watchers_dropped_total", "Watchers dropped for not keeping up.", nil, nil)
	dComponent   = prometheus.NewDesc("recon_component_events_total", "Component counters (lua: timeouts, instruction_limit, script_errors).", []string{"component", "event"}, nil)
	dPlugRestart = prometheus.NewDesc("recon_plugin_restarts_total", "Plugin processes started after the first (crash, hang or exit recovery).", []string{"plugin", "kind"}, nil)
	dPlugFail    = prometheus.NewDesc("recon_plugin_failures_total", "Plugin crashes, hangs, exits and failed starts.", []string{"plugin", "kind"}, nil)
	dPlugUp      = prometheus.NewDesc("recon_plugin_running", "1 when the plugin's process is running.", []string{"plugin", "kind"}, nil)
)

func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dChecks, dWaiting, dRuns, dLate, dEmitErr, dLag, dDepth, dBytes, dBlocked, dCorrupt,
		dWritten, dWriteErr, dAppendErr, dDead, dConnected, dSource, dSinkEvents, dClones, dWatchers, dCloneRuns, dDropWatcher, dComponent, dPlugRestart, dPlugFail, dPlugUp} {
		ch <- d
	}
}

func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	if m.sched != nil {
		st := m.sched.Stats()
		gauge(dChecks, float64(st.Checks))
		gauge(dWaiting, float64(st.Waiting))
		for i, n := range st.ByStatus {
			counter(dRuns, n, model.Status(i).String())
		}
		counter(dLate, st.Late)
		counter(dEmitErr, st.EmitErrors)
		buckets := map[float64]uint64{}
		var total uint64
		for i, n := range st.LagBuckets {
			total += n
			buckets[(time.Duration(1<<i) * time.Microsecond).Seconds()] = total
		}
		ch <- prometheus.MustNewConstHistogram(dLag, total, 0, buckets)
	}
	if m.pipe != nil {
		for _, o := range m.pipe.Stats() {
			gauge(dDepth, float64(o.Queue.Depth), o.Name)
			gauge(dBytes, float64(o.Queue.Bytes), o.Name)
			counter(dBlocked, o.Queue.BlockedWaits, o.Name)
			counter(dCorrupt, o.Queue.Corrupt, o.Name)
			counter(dWritten, o.Written, o.Name, o.Type)
			counter(dWriteErr, o.WriteErrors, o.Name, o.Type)
			counter(dAppendErr, o.AppendErrors, o.Name)
			counter(dDead, o.DeadLettered, o.Name, o.Type)
			c := 0.0
			if o.Connected {
				c = 1
			}
			gauge(dConnected, c, o.Name, o.Type)
		}
	}
	if m.pipe != nil {
		for i, sk := range m.pipe.Sinks() {
			if c, ok := sk.(interface{ Counters() map[string]uint64 }); ok {
				name := m.pipe.Stats()[i].Name
				for ev, v := range c.Counters() {
					gauge(dSinkEvents, float64(v), name, ev)
				}
			}
		}
	}
	if m.sources != nil {
		for src, cs := range m.sources.SourceCounters() {
			for ev, v := range cs {
				counter(dSource, v, src, ev)
			}
		}
	}
	if m.streams != nil {
		st := m.streams.Stats()
		gauge(dClones, float64(st.Clones))
		gauge(dWatchers, float64(st.Watchers))
		counter(dCloneRuns, st.Runs)
		counter(dDropWatcher, st.Dropped)
	}
	for _, c := range m.comps {
		for ev, v := range c.counters() {
			counter(dComponent, v, c.name, ev)
		}
	}
	if m.plugins != nil {
		// Several slots may share a plugin name (same binary, other
		// environment): sum them so label sets stay unique.
		type agg struct {
			restarts, failures uint64
			running            bool
		}
		sums := map[[2]string]*agg{}
		for _, p := range m.plugins() {
			k := [2]string{p.Name, p.Kind}
			a := sums[k]
			if a == nil {
				a = &agg{}
				sums[k] = a
			}
			a.restarts += p.Restarts
			a.failures += p.Failures
			a.running = a.running || p.Running
		}
		for k, a := range sums {
			counter(dPlugRestart, a.restarts, k[0], k[1])
			counter(dPlugFail, a.failures, k[0], k[1])
			up := 0.0
			if a.running {
				up = 1
			}
			gauge(dPlugUp, up, k[0], k[1])
		}
	}
}
