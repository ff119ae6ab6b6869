package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/reconmon/recon/agent/api"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/memtrim"
	"github.com/reconmon/recon/agent/metrics"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/runtime"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/stream"
)

func cmdAgent(ctx context.Context, a *app, args []string) int {
	fs := newFlags(a, "agent", "agent -c FILE [--log-format text|json] [--log-level LEVEL]")
	cfgPath := fs.String("c", "", "configuration `file` (required)")
	logFormat := fs.String("log-format", "", "log format: text or json (overrides agent.log_format)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (overrides agent.log_level)")
	if _, code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(a.stderr, "recon agent: -c FILE is required")
		return exitUsage
	}
	// A first load tells us the logging and runner options; the runtime
	// then loads the file again with the real check and sink types.
	pre, err := config.Load(*cfgPath, wire(a, nil).registries, &config.Options{Env: a.env})
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return exitFailed
	}
	format, level := pre.Agent.LogFormat, pre.Agent.LogLevel
	if *logFormat != "" {
		format = *logFormat
	}
	if *logLevel != "" {
		level = *logLevel
	}
	log, err := newLogger(a.stderr, format, level)
	if err != nil {
		fmt.Fprintln(a.stderr, "recon agent:", err)
		return exitUsage
	}
	// Types built by wire (lua, plugins, snmp) log through the default.
	slog.SetDefault(log)
	w := wire(a, pre)
	w.log = log
	defer w.close()
	m := metrics.New()
	w.attachMetrics(m)
	rt, err := runtime.New(runtime.Options{
		ConfigPath:  *cfgPath,
		Registries:  w.registries,
		LoadOptions: &config.Options{Env: a.env},
		Logger:      log,
		OpenQueue:   w.openQueue,
		Sources:     w.sources,
		OnResult:    m.ObserveResult,
	})
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFailed
	}
	cfg := rt.Config()
	hub := stream.NewHub(rt.PrepareClone, cfg.Agent.Name, log)
	defer hub.Close()
	m.Attach(rt.Scheduler(), rt.Pipeline(), hub, rt)
	srv, err := api.New(api.Options{
		Listen: cfg.Agent.Listen, Token: cfg.Agent.Token, TLSCert: cfg.Agent.TLSCert, TLSKey: cfg.Agent.TLSKey,
		Agent: cfg.Agent.Name, Runtime: rt, Scheduler: rt.Scheduler(), Streams: hub,
		Store: rt.Store, Metrics: m.Handler(), UI: w.ui, Logger: log, Alerts: alertsHandler(rt),
	})
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFailed
	}
	if err := srv.Start(ctx); err != nil {
		log.Error("cannot start", "err", err)
		return exitFailed
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Close(sctx)
	}()
	if pre.DefaultSink {
		log.Info("no [[sink]] configured: storing results in the embedded default store", "type", pre.Sinks[0].Type)
	}
	// Start-up (config, migrations, schemas, package initialisation) leaves
	// heap garbage and executable pages a quiet agent never touches again:
	// hand them back once, when the first round of checks is under way.
	startupTrim := time.AfterFunc(10*time.Second, func() {
		if n, err := memtrim.Startup(); err != nil {
			log.Debug("start-up memory not fully returned", "err", err)
		} else {
			log.Debug("start-up memory returned", "mappings_paged_out", n)
		}
	})
	defer startupTrim.Stop()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading configuration")
				_ = rt.Reload() // logs its own failure and keeps running
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := rt.Run(ctx); err != nil {
		log.Error("agent failed", "err", err)
		return exitFailed
	}
	return exitOK
}

func cmdConfig(ctx context.Context, a *app, args []string) int {
	return subcommand(ctx, a, "config", args, map[string]func(context.Context, *app, []string) int{
		"check": cmdConfigCheck,
	})
}

func cmdConfigCheck(_ context.Context, a *app, args []string) int {
	fs := newFlags(a, "config check", "config check -c FILE")
	cfgPath := fs.String("c", "", "configuration `file` (required)")
	if _, code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(a.stderr, "recon config check: -c FILE is required")
		return exitUsage
	}
	pre, err := config.Load(*cfgPath, wire(a, nil).registries, &config.Options{Env: a.env})
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return exitFailed
	}
	// Prepare every check with the real types too: a script that does not
	// compile or a command that needs a shell is a configuration error.
	w := wire(a, pre)
	defer w.close()
	cfg, err := config.Load(*cfgPath, w.registries, &config.Options{Env: a.env})
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return exitFailed
	}
	failed := false
	for _, c := range append(append([]*model.Check(nil), cfg.Checks...), cfg.Disabled...) {
		typ, _ := w.registries.Checks.Lookup(c.Type)
		r, err := typ.Prepare(c)
		if err != nil {
			fmt.Fprintf(a.stderr, "%s: check %q: %v\n", c.Source, c.Name, err)
			failed = true
			continue
		}
		closeRunner(r)
	}
	// Sinks too: New validates settings without opening anything (a
	// missing DSN, a bad URL, write_conns over max_conns).
	for _, spec := range cfg.Sinks {
		typ, ok := w.registries.Sinks.Lookup(spec.Type)
		if !ok {
			fmt.Fprintf(a.stderr, "%s: unknown sink type %q\n", spec.Source, spec.Type)
			failed = true
			continue
		}
		s, err := typ.New(spec, sink.Env{Agent: cfg.Agent.Name, DataDir: cfg.Agent.DataDir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			fmt.Fprintf(a.stderr, "%s: sink %q: %v\n", spec.Source, spec.Name, err)
			failed = true
			continue
		}
		s.Close()
	}
	for _, err := range w.checkSources(cfg) {
		fmt.Fprintf(a.stderr, "%s: %v\n", *cfgPath, err)
		failed = true
	}
	if failed {
		return exitFailed
	}
	fmt.Fprintf(a.stdout, "%s: ok (%d checks, %d disabled, %d sinks, %d files)\n", *cfgPath, len(cfg.Checks), len(cfg.Disabled), len(cfg.Sinks), len(cfg.Files))
	return exitOK
}
