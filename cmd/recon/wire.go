package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/pipeline"
	"github.com/reconmon/recon/agent/pipeline/spool"
	"github.com/reconmon/recon/agent/runtime"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/compat/nagios"
	"github.com/reconmon/recon/compat/nrpe"
	"github.com/reconmon/recon/compat/passive"
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
	return specs, nil
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
