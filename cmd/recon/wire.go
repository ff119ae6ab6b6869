package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/reconmon/recon/agent/api/ui"
	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/metrics"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/pipeline"
	"github.com/reconmon/recon/agent/pipeline/spool"
	"github.com/reconmon/recon/agent/runtime"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/compat/nagios"
	"github.com/reconmon/recon/compat/nrpe"
	"github.com/reconmon/recon/compat/passive"
	"github.com/reconmon/recon/compat/snmp"
	"github.com/reconmon/recon/lua"
	pluginhost "github.com/reconmon/recon/plugins/host"
	"github.com/reconmon/recon/sinks/alerter"
	"github.com/reconmon/recon/sinks/lineproto"
	natssink "github.com/reconmon/recon/sinks/nats"
	"github.com/reconmon/recon/sinks/postgres"
	"github.com/reconmon/recon/sinks/sqlite"
)

// wiring is the one place where concrete check and sink types are put into
// registries.
type wiring struct {
	registries config.Registries
	openQueue  runtime.QueueOpener
	nagios     *nagios.Type
	lua        *lua.Type
	plugins    *pluginhost.Host
	log        *slog.Logger
	ui         http.Handler
	closers    []func()
}

func (w *wiring) close() {
	for _, c := range w.closers {
		c()
	}
}

// wire builds the registries. cfg supplies type options ([nagios], …);
// nil means defaults, which is enough to decode a configuration.
func wire(a *app, cfg *config.Config) *wiring {
	w := &wiring{}
	checks := checktype.NewRegistry()
	sinks := sink.NewRegistry()

	nopts := nagios.Options{Logger: slog.Default()}
	if cfg != nil {
		nopts.ResourceFile = cfg.Nagios.ResourceFile
		nopts.MaxConcurrent = cfg.Nagios.MaxConcurrent
		nopts.OutputLimit = cfg.Nagios.OutputLimit
	}
	nt, err := nagios.New(nopts)
	if err != nil {
		// The resource file is unreadable: every nagios check says so
		// rather than the agent refusing to start other checks.
		fmt.Fprintln(a.stderr, "recon:", err)
		nt, _ = nagios.New(nagios.Options{MaxConcurrent: nopts.MaxConcurrent, OutputLimit: nopts.OutputLimit})
	}
	checks.Register("nagios", nt)
	checks.Register("passive", passive.Type{})
	w.nagios = nt
	w.log = slog.Default()
	w.ui = ui.Handler()

	// Lua commands (exec module) share the Nagios runner's concurrency
	// limit and process-group handling.
	w.lua = lua.New(lua.Options{Logger: w.log, Exec: nt.Run})
	checks.Register("lua", w.lua)
	w.plugins = pluginhost.New(pluginhost.Options{Logger: w.log})
	checks.Register("plugin", pluginhost.NewCheckType(w.plugins))
	sinks.Register("plugin", pluginhost.NewSinkType(w.plugins))
	checks.Register("snmp", snmp.NewType(snmp.TypeOptions{Logger: w.log}))
	w.closers = append(w.closers, func() { _ = w.plugins.Close() }, func() { _ = w.lua.Close() })

	sinks.Register("lineproto", &lineproto.Type{Stdout: a.stdout})
	sinks.Register("alerter", alerter.Type{})
	sinks.Register("sqlite", sqlite.Type{})
	sinks.Register("postgres", postgres.Type{})
	sinks.Register("nats", natssink.Type{})

	w.openQueue = func(dir string, spec *sink.Spec, log *slog.Logger) (pipeline.Queue, error) {
		return spool.Open(dir, spool.Options{Fsync: spool.FsyncPolicy(spec.Fsync), FsyncInterval: spec.FsyncInterval,
			MaxBytes: spec.MaxSpoolBytes, Logger: log})
	}
	w.registries = config.Registries{Checks: checks, Sinks: sinks, DefaultSink: "sqlite",
		Sections: map[string]config.Section{
			"nrpe":    {New: func() any { return &nrpe.Config{} }},
			"passive": {New: func() any { return &passive.Config{} }},
			"ingest":  {New: func() any { return &natssink.IngestConfig{} }},
			// [[snmp_trap]]: one trap receiver per entry.
			"snmp_trap": {New: func() any { return &snmp.ReceiverConfig{} }, Multi: true},
		}}
	return w
}

// sources derives the configuration's sources.
func (w *wiring) sources(cfg *config.Config) ([]runtime.SourceSpec, error) {
	var specs []runtime.SourceSpec
	if c, ok := cfg.Sections["nrpe"].(*nrpe.Config); ok {
		agent := cfg.Agent.Name
		specs = append(specs, runtime.SourceSpec{
			Name:        "nrpe",
			Fingerprint: cfg.Fingerprints["section:nrpe"] + "|" + agent,
			Build: func(env runtime.SourceEnv) (runtime.Source, error) {
				return nrpe.New(*c, w.nagios, nrpe.Publisher(env.Publish), agent, w.log)
			},
		})
	}
	if c, ok := cfg.Sections["passive"].(*passive.Config); ok {
		specs = append(specs, runtime.SourceSpec{
			Name:        "passive",
			Fingerprint: cfg.Fingerprints["section:passive"],
			Build: func(env runtime.SourceEnv) (runtime.Source, error) {
				return passive.NewReceiver(*c, env.Scheduler, w.log)
			},
		})
	}
	traps, err := w.trapSources(cfg)
	return append(specs, traps...), err
}

// trapSources gives one source per [[snmp_trap]] entry.
func (w *wiring) trapSources(cfg *config.Config) ([]runtime.SourceSpec, error) {
	var specs []runtime.SourceSpec
	seen := map[string]bool{}
	list, _ := cfg.Sections["snmp_trap"].([]any)
	for i, v := range list {
		c, ok := v.(*snmp.ReceiverConfig)
		if !ok {
			continue
		}
		rc := *c
		rc.Agent = cfg.Agent.Name
		if rc.Name == "" {
			rc.Name = snmp.TrapType
		}
		if seen[rc.Name] {
			return nil, fmt.Errorf("snmp_trap: two receivers are named %q: give each [[snmp_trap]] its own name", rc.Name)
		}
		seen[rc.Name] = true
		specs = append(specs, runtime.SourceSpec{
			Name:        "snmp_trap:" + rc.Name,
			Fingerprint: fmt.Sprintf("%s|%s", cfg.Fingerprints[fmt.Sprintf("section:snmp_trap.%d", i)], rc.Agent),
			Build: func(env runtime.SourceEnv) (runtime.Source, error) {
				return snmp.NewReceiver(rc, env.Publish, w.log)
			},
		})
	}
	return specs, nil
}

// checkSources validates what sources can check without binding a port:
// names and every [[snmp_trap]] (credentials, rules, MIB directories).
func (w *wiring) checkSources(cfg *config.Config) []error {
	specs, err := w.sources(cfg)
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, s := range specs {
		if !strings.HasPrefix(s.Name, "snmp_trap:") {
			continue
		}
		src, err := s.Build(runtime.SourceEnv{Publish: func(context.Context, ...model.Result) error {
			return errors.New("recon: validation only")
		}})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_ = src.Close()
	}
	return errs
}

// attachMetrics exposes the check types' and plugin host's figures.
func (w *wiring) attachMetrics(m *metrics.Metrics) {
	m.AddComponent("lua", w.lua.Counters)
	m.AttachPlugins(func() []metrics.PluginStat {
		var out []metrics.PluginStat
		for _, s := range w.plugins.Stats() {
			out = append(out, metrics.PluginStat{Name: s.Name, Kind: s.Kind, Running: s.Running,
				Restarts: s.Restarts, Failures: s.Failures})
		}
		return out
	})
}

// alertsHandler serves the alerts and silences endpoints from the running
// alerter sink, if one is configured.
func alertsHandler(rt *runtime.Runtime) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, s := range rt.Pipeline().Sinks() {
			if a, ok := s.(*alerter.Sink); ok {
				a.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"error":"no alerter is configured (add a [[sink]] with type = \"alerter\")"}`)
	})
}
