// Package runtime assembles a running agent from a configuration: it
// prepares every check, builds every sink behind its queue, and hands them
// to the scheduler and the pipeline. Reload builds the new set completely
// first and swaps only when everything built; on any failure the running
// set stays untouched and the error is returned (and logged).
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/pipeline"
	"github.com/reconmon/recon/agent/scheduler"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store"
)

// QueueOpener opens the durable queue of one sink in dir.
type QueueOpener func(dir string, spec *sink.Spec, log *slog.Logger) (pipeline.Queue, error)

// Options configure a Runtime.
type Options struct {
	ConfigPath  string
	Registries  config.Registries
	LoadOptions *config.Options
	Logger      *slog.Logger
	// OpenQueue opens sink queues; nil uses volatile in-memory queues
	// (tests only: an agent always passes the spool).
	OpenQueue QueueOpener
	// OnResult observes every scheduled result (metrics).
	OnResult func(*model.Result)
	// Sources derives the configuration's sources (NRPE, SNMP traps, …).
	Sources SourceBuilder
}

// Runtime is a running agent's checks and sinks.
type Runtime struct {
	opts  Options
	log   *slog.Logger
	sched *scheduler.Scheduler
	pipe  *pipeline.Pipeline

	mu  sync.Mutex
	cfg *config.Config

	srcMu   sync.Mutex
	sources map[string]runningSource
	srcCtx  context.Context
	// sources built by the last apply, started by Run or the reload
	pendingSpecs []SourceSpec
	pendingBuilt map[string]Source
}

// New loads and validates the configuration and builds the scheduler and
// pipeline; nothing runs until Run.
func New(opts Options) (*Runtime, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg, err := config.Load(opts.ConfigPath, opts.Registries, opts.LoadOptions)
	if err != nil {
		return nil, err
	}
	rt := &Runtime{opts: opts, log: opts.Logger, pipe: pipeline.New(opts.Logger),
		sources: map[string]runningSource{}, srcCtx: context.Background()}
	rt.sched = scheduler.New(scheduler.Options{
		Agent:           cfg.Agent.Name,
		MaxConcurrency:  cfg.Agent.MaxConcurrency,
		TypeConcurrency: cfg.Agent.Concurrency,
		Emit:            func(ctx context.Context, r model.Result) error { return rt.pipe.Publish(ctx, r) },
		OnResult:        opts.OnResult,
		Logger:          opts.Logger,
	})
	if err := rt.apply(cfg, nil); err != nil {
		return nil, err
	}
	return rt, nil
}

// Config returns the configuration in effect.
func (rt *Runtime) Config() *config.Config {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.cfg
}

// Scheduler returns the scheduler (for the API's run-now and check views).
func (rt *Runtime) Scheduler() *scheduler.Scheduler { return rt.sched }

// Store returns the first configured sink that can answer queries (the
// sqlite or postgres trend store), or nil.
func (rt *Runtime) Store() store.Store {
	for _, s := range rt.pipe.Sinks() {
		if st, ok := s.(store.Store); ok {
			return st
		}
	}
	return nil
}

// Pipeline returns the pipeline (for sources and live subscribers).
func (rt *Runtime) Pipeline() *pipeline.Pipeline { return rt.pipe }

// Run schedules checks until ctx is done, then stops gracefully: in-flight
// checks get the configured grace period, then the pipeline stops (queued
// results stay in the spools for the next start).
func (rt *Runtime) Run(ctx context.Context) error {
	cfg := rt.Config()
	rt.log.Info("agent running", "agent", cfg.Agent.Name, "checks", len(cfg.Checks), "sinks", len(cfg.Sinks),
		"config", rt.opts.ConfigPath)
	if err := rt.startSources(); err != nil {
		rt.pipe.Close()
		return err
	}
	err := rt.sched.Run(ctx, cfg.Agent.Shutdown.D())
	rt.closeSources()
	rt.sched.Update(nil) // closes every runner
	rt.pipe.Close()
	rt.log.Info("agent stopped")
	return err
}

// Reload re-reads the configuration and applies it, or keeps the running
// one and returns why not.
func (rt *Runtime) Reload() error {
	cfg, err := config.Load(rt.opts.ConfigPath, rt.opts.Registries, rt.opts.LoadOptions)
	if err != nil {
		rt.log.Error("reload failed: configuration invalid; keeping the running configuration", "err", err)
		return err
	}
	old := rt.Config()
	if err := rt.apply(cfg, old); err != nil {
		var partial *partialReload
		if errors.As(err, &partial) {
			rt.log.Error("configuration reloaded with problems", "err", partial.err)
		} else {
			rt.log.Error("reload failed; keeping the running configuration", "err", err)
		}
		return err
	}
	rt.log.Info("configuration reloaded", "checks", len(cfg.Checks), "sinks", len(cfg.Sinks))
	return nil
}

// apply builds everything cfg needs and swaps it in; old is the running
// configuration (nil at start).
func (rt *Runtime) apply(cfg, old *config.Config) error {
	if old != nil {
		warnRestartOnly(rt.log, old, cfg)
	}
	var specs []SourceSpec
	var built map[string]Source
	if rt.opts.Sources != nil {
		var err error
		if specs, err = rt.opts.Sources(cfg); err != nil {
			return err
		}
		if built, err = rt.buildSources(specs); err != nil {
			return err
		}
	}
	closeBuilt := func() {
		for _, s := range built {
			s.Close()
		}
	}
	jobs, err := rt.prepareChecks(cfg)
	if err != nil {
		closeBuilt()
		return err
	}
	outs, err := rt.buildOutputs(cfg, old)
	if err != nil {
		closeRunners(jobs)
		closeBuilt()
		return err
	}
	if err := os.MkdirAll(cfg.Agent.DataDir, 0o750); err != nil {
		closeRunners(jobs)
		closeSinks(outs)
		closeBuilt()
		return fmt.Errorf("data_dir: %w", err)
	}
	if err := rt.pipe.SetOutputs(outs); err != nil {
		closeRunners(jobs)
		closeBuilt()
		return err
	}
	rt.sched.Update(jobs)
	rt.mu.Lock()
	rt.cfg = cfg
	rt.mu.Unlock()
	var reloadErrs []error
	if old != nil {
		// Unchanged sinks re-read their own files (alert rules).
		for _, s := range rt.pipe.Sinks() {
			if r, ok := s.(sink.Reloader); ok {
				if err := r.Reload(); err != nil {
					reloadErrs = append(reloadErrs, err)
				}
			}
		}
	}
	rt.pendingSpecs, rt.pendingBuilt = specs, built
	if old != nil {
		// At start, sources start with Run; on reload they are swapped
		// here. A source that fails to start does not undo the rest of the
		// reload: its predecessor is restarted and the error reported.
		if err := rt.startSources(); err != nil {
			reloadErrs = append(reloadErrs, fmt.Errorf("a source failed: %w", err))
		}
	}
	if len(reloadErrs) > 0 {
		return &partialReload{errors.Join(reloadErrs...)}
	}
	return nil
}

// partialReload is returned when the new configuration is in effect but a
// sink's own files or a source could not be reloaded (those keep running
// as they were).
type partialReload struct{ err error }

func (p *partialReload) Error() string { return "reload applied, but: " + p.err.Error() }
func (p *partialReload) Unwrap() error { return p.err }

func (rt *Runtime) startSources() error {
	specs, built := rt.pendingSpecs, rt.pendingBuilt
	rt.pendingSpecs, rt.pendingBuilt = nil, nil
	if rt.opts.Sources == nil {
		return nil
	}
	return rt.applySources(rt.srcCtx, specs, built)
}
func (rt *Runtime) prepareChecks(cfg *config.Config) ([]scheduler.Job, error) {
	jobs := make([]scheduler.Job, 0, len(cfg.Checks))
	var errs []error
	for _, c := range cfg.Checks {
		typ, ok := rt.opts.Registries.Checks.Lookup(c.Type)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: check %q: unknown type %q", c.Source, c.Name, c.Type))
			continue
		}
		r, err := typ.Prepare(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: check %q: %w", c.Source, c.Name, err))
			continue
		}
		jobs = append(jobs, scheduler.Job{Check: c, Runner: r})
	}
	if len(errs) > 0 {
		closeRunners(jobs)
		return nil, errors.Join(errs...)
	}
	return jobs, nil
}

func (rt *Runtime) buildOutputs(cfg, old *config.Config) ([]pipeline.Output, error) {
	var outs []pipeline.Output
	for _, spec := range cfg.Sinks {
		fp := cfg.Fingerprints["sink:"+spec.Name]
		if old != nil && old.Fingerprints["sink:"+spec.Name] == fp && old.Agent.DataDir == cfg.Agent.DataDir {
			// Unchanged: the pipeline keeps the running output; this
			// placeholder only carries name and fingerprint.
			outs = append(outs, pipeline.Output{Spec: spec, Sink: nopSink{}, Fingerprint: fp})
			continue
		}
		typ, ok := rt.opts.Registries.Sinks.Lookup(spec.Type)
		if !ok {
			closeSinks(outs)
			return nil, fmt.Errorf("%s: unknown sink type %q", spec.Source, spec.Type)
		}
		log := rt.log.With("sink", spec.Name)
		s, err := typ.New(spec, sink.Env{Agent: cfg.Agent.Name, DataDir: cfg.Agent.DataDir, Logger: log, Store: rt.Store})
		if err != nil {
			closeSinks(outs)
			return nil, fmt.Errorf("%s: sink %q: %w", spec.Source, spec.Name, err)
		}
		dir := filepath.Join(cfg.Agent.DataDir, "sinks", spec.Name)
		open := func() (pipeline.Queue, error) {
			if rt.opts.OpenQueue == nil {
				return pipeline.NewMemQueue(0), nil
			}
			return rt.opts.OpenQueue(filepath.Join(dir, "spool"), spec, log)
		}
		outs = append(outs, pipeline.Output{Spec: spec, Sink: s, Open: open, Fingerprint: fp, DeadLetterDir: dir})
	}
	return outs, nil
}

// warnRestartOnly names settings that a reload cannot change.
func warnRestartOnly(log *slog.Logger, old, cfg *config.Config) {
	a, b := old.Agent, cfg.Agent
	changed := func(name string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			log.Warn("setting changed but takes effect only after a restart", "setting", name, "running", x, "configured", y)
		}
	}
	changed("agent.name", a.Name, b.Name)
	changed("agent.listen", a.Listen, b.Listen)
	changed("agent.data_dir", a.DataDir, b.DataDir)
	changed("agent.max_concurrency", a.MaxConcurrency, b.MaxConcurrency)
	if !maps.Equal(a.Concurrency, b.Concurrency) {
		changed("agent.concurrency", a.Concurrency, b.Concurrency)
	}
	changed("nagios", old.Nagios, cfg.Nagios)
}

func closeRunners(jobs []scheduler.Job) {
	for _, j := range jobs {
		if c, ok := j.Runner.(checktype.Closer); ok {
			c.Close()
		}
	}
}

func closeSinks(outs []pipeline.Output) {
	for _, o := range outs {
		o.Sink.Close()
	}
}

type nopSink struct{}

func (nopSink) Connect(context.Context) error { return nil }
func (nopSink) WriteBatch(context.Context, []model.Result) error {
	return errors.New("placeholder sink")
}
func (nopSink) Close() error { return nil }
