package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/scheduler"
)

// Source pushes results that no schedule produced (SNMP traps, NRPE-served
// commands, passive results) into the pipeline.
type Source interface {
	// Start binds whatever the source listens on and returns; the source
	// then runs until Close.
	Start(ctx context.Context) error
	Close() error
}

// Publisher is how sources deliver results: it returns once they are in
// every sink's queue.
type Publisher func(ctx context.Context, rs ...model.Result) error

// SourceSpec describes one source of a configuration.
type SourceSpec struct {
	Name string
	// Fingerprint identifies the configuration; an unchanged source keeps
	// running across reloads.
	Fingerprint string
	// Build creates the source without side effects.
	Build func(env SourceEnv) (Source, error)
}

// SourceEnv is what a source may use.
type SourceEnv struct {
	Publish Publisher
	// Scheduler takes passive results for configured checks.
	Scheduler *scheduler.Scheduler
}

// SourceBuilder derives the sources of a configuration.
type SourceBuilder func(cfg *config.Config) ([]SourceSpec, error)

type runningSource struct {
	spec SourceSpec
	src  Source
}

// buildSources builds the sources of specs that are new or changed,
// without starting anything; on error nothing is left behind.
func (rt *Runtime) buildSources(specs []SourceSpec) (map[string]Source, error) {
	rt.srcMu.Lock()
	defer rt.srcMu.Unlock()
	built := map[string]Source{}
	for _, s := range specs {
		if cur, ok := rt.sources[s.Name]; ok && cur.spec.Fingerprint == s.Fingerprint {
			continue
		}
		src, err := s.Build(rt.sourceEnv())
		if err != nil {
			for _, b := range built {
				b.Close()
			}
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		built[s.Name] = src
	}
	return built, nil
}

// applySources starts the built (new or changed) sources and stops removed
// ones. A changed source's old instance is stopped before the new one
// starts (they usually share a port); if the new one fails, the old one is
// started again and the error returned.
func (rt *Runtime) applySources(ctx context.Context, specs []SourceSpec, built map[string]Source) error {
	rt.srcMu.Lock()
	defer rt.srcMu.Unlock()
	wanted := map[string]SourceSpec{}
	for _, s := range specs {
		wanted[s.Name] = s
	}
	var errs []error
	for name, cur := range rt.sources {
		if _, keep := wanted[name]; keep && built[name] == nil {
			continue
		}
		if err := cur.src.Close(); err != nil {
			rt.log.Warn("stop source", "source", name, "err", err)
		}
		delete(rt.sources, name)
		if _, replaced := built[name]; !replaced {
			rt.log.Info("source stopped", "source", name)
		}
		if nw, ok := built[name]; ok {
			if err := nw.Start(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				rt.log.Error("new source failed to start; restarting the previous one", "source", name, "err", err)
				if old, berr := cur.spec.Build(rt.sourceEnv()); berr == nil && old.Start(ctx) == nil {
					rt.sources[name] = runningSource{spec: cur.spec, src: old}
				}
				continue
			}
			rt.sources[name] = runningSource{spec: wanted[name], src: nw}
			delete(built, name)
		}
	}
	for name, src := range built {
		if err := src.Start(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		rt.sources[name] = runningSource{spec: wanted[name], src: src}
	}
	return errors.Join(errs...)
}

func (rt *Runtime) sourceEnv() SourceEnv {
	return SourceEnv{Publish: rt.pipe.Publish, Scheduler: rt.sched}
}

func (rt *Runtime) closeSources() {
	rt.srcMu.Lock()
	defer rt.srcMu.Unlock()
	for name, s := range rt.sources {
		if err := s.src.Close(); err != nil {
			rt.log.Warn("stop source", "source", name, "err", err)
		}
		delete(rt.sources, name)
	}
}

// SourceCounters returns the counters of running sources that report them.
func (rt *Runtime) SourceCounters() map[string]map[string]uint64 {
	rt.srcMu.Lock()
	defer rt.srcMu.Unlock()
	out := map[string]map[string]uint64{}
	for name, s := range rt.sources {
		if c, ok := s.src.(interface{ Counters() map[string]uint64 }); ok {
			out[name] = c.Counters()
		}
	}
	return out
}
