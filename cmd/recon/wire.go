package main

import (
	"fmt"
	"log/slog"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/runtime"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/compat/nagios"
	"github.com/reconmon/recon/sinks/lineproto"
)

// wiring is the one place where concrete check and sink types are put into
// registries.
type wiring struct {
	registries config.Registries
	openQueue  runtime.QueueOpener
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

	sinks.Register("lineproto", &lineproto.Type{Stdout: a.stdout})

	w.registries = config.Registries{Checks: checks, Sinks: sinks, DefaultSink: "lineproto"}
	return w
}
