package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	natssink "github.com/reconmon/recon/sinks/nats"
)

// cmdIngest runs the scale-out consumer: results from NATS JetStream (the
// [ingest] section) into the configuration's one [[sink]] (the Postgres
// trend store), acknowledged only after the store committed them.
func cmdIngest(ctx context.Context, a *app, args []string) int {
	fs := newFlags(a, "ingest", `ingest -c FILE [--log-format text|json]

Consumes the results that agents publish with the nats sink and writes them
into the configuration's single [[sink]] (usually postgres). Run several
ingesters with the same [ingest] durable name to share the load.`)
	cfgPath := fs.String("c", "", "configuration `file` (required)")
	logFormat := fs.String("log-format", "", "log format: text or json")
	if _, code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(a.stderr, "recon ingest: -c FILE is required")
		return exitUsage
	}
	pre, err := config.Load(*cfgPath, wire(a, nil).registries, &config.Options{Env: a.env})
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return exitFailed
	}
	format := pre.Agent.LogFormat
	if *logFormat != "" {
		format = *logFormat
	}
	log, err := newLogger(a.stderr, format, pre.Agent.LogLevel)
	if err != nil {
		fmt.Fprintln(a.stderr, "recon ingest:", err)
		return exitUsage
	}
	w := wire(a, pre)
	w.log = log
	defer w.close()
	ic, ok := pre.Sections["ingest"].(*natssink.IngestConfig)
	if !ok {
		fmt.Fprintln(a.stderr, "recon ingest: the configuration has no [ingest] section")
		return exitFailed
	}
	if pre.DefaultSink || len(pre.Sinks) != 1 {
		fmt.Fprintln(a.stderr, "recon ingest: configure exactly one [[sink]] to ingest into (usually type = \"postgres\")")
		return exitFailed
	}
	spec := pre.Sinks[0]
	typ, _ := w.registries.Sinks.Lookup(spec.Type)
	dst, err := typ.New(spec, sink.Env{Agent: pre.Agent.Name, DataDir: pre.Agent.DataDir, Logger: log})
	if err != nil {
		fmt.Fprintf(a.stderr, "%s: sink %q: %v\n", spec.Source, spec.Name, err)
		return exitFailed
	}
	defer dst.Close()
	// The store may be down at start: wait for it rather than exit.
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		if err := dst.Connect(ctx); err == nil {
			break
		} else {
			log.Error("store unavailable; retrying", "sink", spec.Name, "err", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(backoff):
		}
	}
	in, err := natssink.NewIngester(*ic, &reconnecting{s: dst}, log)
	if err != nil {
		fmt.Fprintln(a.stderr, "recon ingest:", err)
		return exitFailed
	}
	sctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := in.Run(sctx); err != nil {
		log.Error("ingest failed", "err", err)
		return exitFailed
	}
	st := in.Stats()
	log.Info("ingest stopped", "ingested", st.Ingested, "batches", st.Batches, "poison", st.Poison, "write_errors", st.WriteErrors)
	return exitOK
}

// reconnecting re-connects the sink after a failed write, as the pipeline
// does for agents.
type reconnecting struct {
	s      sink.Sink
	broken bool
}

func (r *reconnecting) WriteBatch(ctx context.Context, b []model.Result) error {
	if r.broken {
		r.s.Close()
		if err := r.s.Connect(ctx); err != nil {
			return err
		}
		r.broken = false
	}
	if err := r.s.WriteBatch(ctx, b); err != nil {
		r.broken = true
		return err
	}
	return nil
}
