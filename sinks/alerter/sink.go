// Package alerter is recon's fault detection: a sink fed by the durable
// pipeline that evaluates Lua rules over per-series windows, keeps alert
// instances through pending → firing → resolved with for/clear_for
// hysteresis and Nagios flap detection, applies silences and inhibition,
// and sends notifications (webhook, exec with NAGIOS_* variables, SMTP,
// log) from a durable outbox. Alert state survives restarts; every
// transition is recorded in the trend store.
package alerter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store"
)

// Settings are the keys of a sink with type = "alerter".
type Settings struct {
	// Rules are Lua rule files or globs, relative to the config file.
	Rules []string `toml:"rules"`
	// DefaultRule enables the built-in Nagios behaviour (default true).
	DefaultRule *bool `toml:"default_rule"`
	// DefaultNotify are the notifiers of rules without notify.
	DefaultNotify []string `toml:"default_notify"`
	// GroupWait gathers notifications produced together into one
	// delivery per notifier (default 2s).
	GroupWait config.Duration `toml:"group_wait"`
	// HostInhibitsServices: a firing host check (tag kind = "host")
	// inhibits the alerts of checks with the same "host" tag (default true).
	HostInhibitsServices *bool `toml:"host_inhibits_services"`
	// Inhibit lists more inhibitions: {source = labels, target = labels, equal = [label names]}.
	Inhibit []Inhibit `toml:"inhibit"`
	// Notifier defines the notifiers ([[sink.notifier]] tables, below).
	Notifier []NotifierConfig `toml:"notifier"`
}

// Type is the alerter sink type.
type Type struct{}

func (Type) NewSettings() any { return &Settings{} }

// New validates settings and rules; it starts nothing.
func (Type) New(spec *sink.Spec, env sink.Env) (sink.Sink, error) {
	st, _ := spec.Settings.(*Settings)
	if st == nil {
		st = &Settings{}
	}
	s := &Sink{settings: *st, spec: spec, env: env, log: env.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.dir = filepath.Join(env.DataDir, "alerter", spec.Name)
	notifiers := map[string]notifier{}
	for _, nc := range st.Notifier {
		if nc.Name == "" {
			return nil, errors.New("notifier: name is required")
		}
		if _, dup := notifiers[nc.Name]; dup {
			return nil, fmt.Errorf("notifier %q defined twice", nc.Name)
		}
		n, err := buildNotifier(nc, env.Agent, s.log)
		if err != nil {
			return nil, err
		}
		notifiers[nc.Name] = n
	}
	s.notifiers = notifiers
	L, rules, err := s.loadRules()
	if err != nil {
		return nil, err
	}
	L.Close() // validated; Connect loads them for real
	_ = rules
	return s, nil
}

// Sink is the alerter.
type Sink struct {
	settings  Settings
	spec      *sink.Spec
	env       sink.Env
	log       *slog.Logger
	dir       string
	notifiers map[string]notifier

	mu       sync.Mutex
	engine   *Engine
	silences *Silences
	outbox   *outbox
	pending  []store.AlertTransition // not yet in the trend store
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	started  bool
}

func (s *Sink) ruleFiles() ([]string, error) {
	var files []string
	for _, pat := range s.settings.Rules {
		if !filepath.IsAbs(pat) && s.spec.Dir != "" {
			pat = filepath.Join(s.spec.Dir, pat)
		}
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("rules %q: %w", pat, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("rules %q: no such file", pat)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	return files, nil
}

// loadRules reads the rule files and adds the built-in rule; notifier
// names are checked against the configured notifiers.
func (s *Sink) loadRules() (*lua.LState, []*Rule, error) {
	files, err := s.ruleFiles()
	if err != nil {
		return nil, nil, err
	}
	L, rules, err := LoadRules(files)
	if err != nil {
		return nil, nil, err
	}
	if s.settings.DefaultRule == nil || *s.settings.DefaultRule {
		rules = append([]*Rule{DefaultRule()}, rules...)
	}
	for _, r := range rules {
		for _, n := range r.Notify {
			if _, ok := s.notifiers[n]; !ok {
				L.Close()
				return nil, nil, fmt.Errorf("%s: rule %q: notify %q: no such notifier", r.Source, r.Name, n)
			}
		}
	}
	for _, n := range s.settings.DefaultNotify {
		if _, ok := s.notifiers[n]; !ok {
			L.Close()
			return nil, nil, fmt.Errorf("default_notify %q: no such notifier", n)
		}
	}
	return L, rules, nil
}

func (s *Sink) inhibits() []Inhibit {
	ih := append([]Inhibit(nil), s.settings.Inhibit...)
	if s.settings.HostInhibitsServices == nil || *s.settings.HostInhibitsServices {
		ih = append(ih, Inhibit{Source: map[string]string{"kind": "host"}, Equal: []string{"host"}})
	}
	return ih
}

func (s *Sink) defaultNotify() []string {
	if len(s.settings.DefaultNotify) > 0 {
		return s.settings.DefaultNotify
	}
	names := make([]string, 0, len(s.notifiers))
	for n := range s.notifiers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Connect loads rules, state and silences and starts the notifier outbox
// and the timer loop. It is idempotent.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return nil
	}
	L, rules, err := s.loadRules()
	if err != nil {
		return sink.Permanent(err)
	}
	sil, err := LoadSilences(filepath.Join(s.dir, "silences.json"))
	if err != nil {
		L.Close()
		return err
	}
	ob, err := openOutbox(s.dir, s.notifiers, s.groupWait(), s.log)
	if err != nil {
		L.Close()
		return err
	}
	s.silences, s.outbox = sil, ob
	s.engine = NewEngine(L, rules, s.inhibits(), sil, s.defaultNotify())
	if s.env.Store != nil {
		s.engine.history = storeHistory(s.env.Store)
	}
	if err := s.loadState(); err != nil {
		s.log.Error("alert state unreadable; starting without it", "err", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go func() { defer s.wg.Done(); ob.run(rctx) }()
	go func() { defer s.wg.Done(); s.ticker(rctx) }()
	s.started = true
	s.log.Info("alerter running", "rules", len(rules), "notifiers", len(s.notifiers))
	return nil
}

func (s *Sink) groupWait() time.Duration {
	if g := s.settings.GroupWait.D(); g > 0 {
		return g
	}
	return 2 * time.Second
}

func (s *Sink) ticker(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			s.engine.Tick(now)
			if err := s.commit(ctx); err != nil {
				s.log.Error("alerter tick", "err", err)
			}
			s.mu.Unlock()
		}
	}
}

// WriteBatch evaluates the results. It returns only once the resulting
// notifications are in the outbox and the state is on disk, so the batch
// is acknowledged exactly when its consequences are durable.
func (s *Sink) WriteBatch(ctx context.Context, batch []model.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return errors.New("alerter not connected")
	}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i := range batch {
		s.engine.Process(ectx, &batch[i])
	}
	return s.commit(ctx)
}

// commit makes the engine's outputs durable: notifications to the outbox,
// state to disk, transitions to the trend store (kept pending in the state
// while the store is unavailable).
func (s *Sink) commit(ctx context.Context) error {
	ts, ns := s.engine.Drain()
	if len(ns) > 0 {
		if err := s.outbox.enqueue(ns); err != nil {
			return err
		}
	}
	for _, t := range ts {
		s.pending = append(s.pending, t.AlertTransition)
	}
	if len(ts) > 0 || len(ns) > 0 {
		if err := s.saveState(); err != nil {
			return err
		}
	}
	if len(s.pending) > 0 && s.env.Store != nil {
		if st := s.env.Store(); st != nil {
			if err := st.WriteAlerts(ctx, s.pending); err != nil {
				s.log.Warn("alert transitions not yet stored; kept for the next attempt", "count", len(s.pending), "err", err)
			} else {
				s.pending = nil
				return s.saveState()
			}
		}
	}
	return nil
}

type stateFile struct {
	Version   int                     `json:"version"`
	Instances []*Instance             `json:"instances"`
	Pending   []store.AlertTransition `json:"pending_transitions"`
}

func (s *Sink) saveState() error {
	insts := make([]*Instance, 0, len(s.engine.instances))
	for _, in := range s.engine.instances {
		insts = append(insts, in)
	}
	b, err := json.Marshal(stateFile{Version: 1, Instances: insts, Pending: s.pending})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, "state.json"), b)
}

func (s *Sink) loadState() error {
	b, err := os.ReadFile(filepath.Join(s.dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	byName := map[string]*Rule{}
	for _, r := range s.engine.rules {
		byName[r.Name] = r
	}
	for _, in := range st.Instances {
		r, ok := byName[in.Rule]
		if !ok {
			continue // the rule is gone
		}
		in.rule = r // its window is refilled from the trend store on its next sample
		s.engine.instances[in.Key] = in
	}
	s.pending = st.Pending
	return nil
}

// Reload re-reads the rule files; on error the current rules stay.
func (s *Sink) Reload() error {
	L, rules, err := s.loadRules()
	if err != nil {
		s.log.Error("alert rules not reloaded; the previous rules stay in effect", "err", err)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.engine == nil {
		L.Close()
		return nil
	}
	s.engine.Replace(L, rules, s.inhibits(), s.defaultNotify())
	s.log.Info("alert rules reloaded", "rules", len(rules))
	return nil
}

// Close stops the loops and persists the state.
func (s *Sink) Close() error {
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return nil
	}
	s.cancel()
	s.started = false
	err := s.saveState()
	s.mu.Unlock()
	s.wg.Wait()
	s.outbox.close()
	if s.engine.L != nil {
		s.engine.L.Close()
	}
	return err
}

// Stats are the alerter's figures for /metrics.
type Stats struct {
	Instances, Firing, Pending, Flapping int
	Evaluations, Errors, Suppressed      uint64
	Delivered, DeliveryFailures          uint64
	Outbox                               int
	LastError                            string
}

// Stats returns the current figures.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st Stats
	if s.engine == nil {
		return st
	}
	for _, in := range s.engine.instances {
		st.Instances++
		switch in.State {
		case StateFiring:
			st.Firing++
		case StatePending:
			st.Pending++
		}
		if in.Flap.Flapping {
			st.Flapping++
		}
	}
	st.Evaluations, st.Errors, st.Suppressed, st.LastError = s.engine.evals, s.engine.errors, s.engine.suppressed, s.engine.lastErr
	st.Delivered, st.DeliveryFailures = s.outbox.delivered.Load(), s.outbox.failures.Load()
	st.Outbox = s.outbox.Pending()
	if e := s.outbox.lastErr.Load(); e != nil && st.LastError == "" {
		st.LastError = *e
	}
	return st
}

// Counters reports the figures for /metrics.
func (s *Sink) Counters() map[string]uint64 {
	st := s.Stats()
	return map[string]uint64{"alerts_firing": uint64(st.Firing), "alerts_pending": uint64(st.Pending),
		"alerts_flapping": uint64(st.Flapping), "rule_evaluations": st.Evaluations, "rule_errors": st.Errors,
		"notifications_suppressed": st.Suppressed, "notifications_delivered": st.Delivered,
		"notification_failures": st.DeliveryFailures, "notifications_pending": uint64(st.Outbox)}
}
