package alerter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	lua "github.com/yuin/gopher-lua"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/store"
)

// Alert instance states.
const (
	StateInactive = "inactive"
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Notification types, as Nagios names them.
const (
	NotifyProblem       = "PROBLEM"
	NotifyRecovery      = "RECOVERY"
	NotifyFlappingStart = "FLAPPINGSTART"
	NotifyFlappingStop  = "FLAPPINGSTOP"
)

// Instance is one alert instance: a rule applied to one series (check ×
// metric, or check for status rules).
type Instance struct {
	Key      string            `json:"key"`
	Rule     string            `json:"rule"`
	CheckID  uuid.UUID         `json:"check_id"`
	Check    string            `json:"check"`
	Target   string            `json:"target"`
	Metric   string            `json:"metric,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
	State    string            `json:"state"`
	Since    time.Time         `json:"since"`          // when State was entered
	Clearing time.Time         `json:"clearing"`       // condition false since (firing only)
	Active   time.Time         `json:"active"`         // condition true since (pending)
	LastSeen time.Time         `json:"last_seen"`      // newest sample processed
	Value    float64           `json:"value"`          // condition's last value (window last)
	Status   model.Status      `json:"status"`         // last result status
	Output   string            `json:"output"`         // last result output
	Long     string            `json:"long_output"`    // last result long output
	Attempt  int               `json:"attempt"`        // last result attempt
	StType   model.StateType   `json:"state_type"`     // last result state type
	Notified bool              `json:"notified"`       // a PROBLEM was sent for this episode
	LastNote time.Time         `json:"last_notified"`  // for repeat_interval
	NoteNum  int               `json:"notification_n"` // Nagios $NOTIFICATIONNUMBER$
	Flap     flapState         `json:"flap"`
	Severity string            `json:"severity"`
	// PrevStatus is the status of the previous result (to notice a
	// change between problem states).
	PrevStatus model.Status `json:"prev_status"`

	win  *window
	rule *Rule
}

func (in *Instance) labels() map[string]string {
	l := map[string]string{}
	for k, v := range in.Tags {
		l[k] = v
	}
	for k, v := range in.rule.Labels {
		l[k] = v
	}
	l["rule"], l["check"], l["check_id"] = in.Rule, in.Check, in.CheckID.String()
	if in.Target != "" {
		l["target"] = in.Target
	}
	if in.Metric != "" {
		l["metric"] = in.Metric
	}
	if in.Severity != "" {
		l["severity"] = in.Severity
	}
	return l
}

// Transition is a state change to store and maybe notify.
type Transition struct {
	store.AlertTransition
	inst *Instance
}

// Notification is one message for the notifiers. ID is derived from the
// instance, type and time, so a replay after a crash produces the same ID
// and the outbox sends it once.
type Notification struct {
	ID       string            `json:"id"`
	Type     string            `json:"type"` // PROBLEM, RECOVERY, FLAPPINGSTART, FLAPPINGSTOP
	Time     time.Time         `json:"time"`
	Rule     string            `json:"rule"`
	Key      string            `json:"key"`
	State    string            `json:"state"`
	Severity string            `json:"severity"`
	Labels   map[string]string `json:"labels"`
	CheckID  uuid.UUID         `json:"check_id"`
	Check    string            `json:"check"`
	Target   string            `json:"target"`
	Metric   string            `json:"metric,omitempty"`
	Value    float64           `json:"value"`
	Status   string            `json:"status"`
	StateTyp string            `json:"state_type"`
	Attempt  int               `json:"attempt"`
	Output   string            `json:"output"`
	Long     string            `json:"long_output,omitempty"`
	Summary  string            `json:"summary"`
	Since    time.Time         `json:"since"`
	Number   int               `json:"notification_number"`
	Notify   []string          `json:"notify"`
}

// Inhibit suppresses notifications of target alerts while a source alert
// fires and they agree on the Equal labels (e.g. a host down inhibits its
// services' alerts).
type Inhibit struct {
	Source map[string]string `toml:"source" json:"source"`
	Target map[string]string `toml:"target" json:"target"`
	Equal  []string          `toml:"equal" json:"equal"`
}

// Engine evaluates rules over results. It is not safe for concurrent use;
// the sink serialises calls.
type Engine struct {
	rules     []*Rule
	L         *lua.LState
	instances map[string]*Instance
	match     map[string][]int // cache: checkID/metric → rule indexes
	inhibits  []Inhibit
	silences  *Silences
	notifiers map[string]bool
	defaults  []string // notifiers for rules without notify
	winUD     *lua.LUserData
	resTable  *lua.LTable
	// history refills the window of a series the engine holds no samples
	// for (after a restart or a reload) from the trend store; nil without
	// one.
	history historyFunc

	// outputs of the last call
	transitions   []Transition
	notifications []Notification
	suppressed    uint64
	evals, errors uint64
	lastErr       string
}

// NewEngine builds an engine for rules (L owns their condition functions).
func NewEngine(L *lua.LState, rules []*Rule, inhibits []Inhibit, silences *Silences, defaultNotify []string) *Engine {
	e := &Engine{rules: rules, L: L, instances: map[string]*Instance{}, match: map[string][]int{},
		inhibits: inhibits, silences: silences, defaults: defaultNotify}
	if L != nil {
		e.winUD = L.NewUserData()
		mt := L.NewTypeMetatable("recon.window")
		L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), windowMethods))
		e.winUD.Metatable = mt
		e.resTable = L.NewTable()
	}
	return e
}

var windowMethods = map[string]lua.LGFunction{
	"avg": winFn((*window).avg), "min": winFn((*window).min), "max": winFn((*window).max),
	"sum": winFn((*window).sum), "last": winFn((*window).last), "delta": winFn((*window).delta),
	"rate": winFn((*window).rate), "stddev": winFn((*window).stddev),
	"count": func(L *lua.LState) int {
		L.Push(lua.LNumber(checkWin(L).count()))
		return 1
	},
	"percentile": func(L *lua.LState) int {
		w := checkWin(L)
		L.Push(lua.LNumber(w.percentile(float64(L.CheckNumber(2)))))
		return 1
	},
}

func checkWin(L *lua.LState) *window {
	ud := L.CheckUserData(1)
	w, ok := ud.Value.(*window)
	if !ok {
		L.ArgError(1, "window expected (call it as w:avg())")
	}
	return w
}

func winFn(f func(*window) float64) lua.LGFunction {
	return func(L *lua.LState) int {
		L.Push(lua.LNumber(f(checkWin(L))))
		return 1
	}
}

// Rules returns the rules in effect.
func (e *Engine) Rules() []*Rule { return e.rules }

// Replace swaps the rules (reload), keeping the state of instances whose
// rule still exists.
func (e *Engine) Replace(L *lua.LState, rules []*Rule, inhibits []Inhibit, defaultNotify []string) {
	old := e.L
	ne := NewEngine(L, rules, inhibits, e.silences, defaultNotify)
	ne.history = e.history
	byName := map[string]*Rule{}
	for _, r := range rules {
		byName[r.Name] = r
	}
	for k, in := range e.instances {
		if r, ok := byName[in.Rule]; ok {
			in.rule = r
			in.win = nil // the window shape may have changed: refilled on the next sample
			ne.instances[k] = in
		}
	}
	*e = *ne
	if old != nil && old != L {
		old.Close()
	}
}

func instanceKey(rule string, id uuid.UUID, metric string) string {
	return rule + "|" + id.String() + "|" + metric
}

func (e *Engine) instance(ctx context.Context, r *Rule, res *model.Result, metric string) *Instance {
	k := instanceKey(r.Name, res.CheckID, metric)
	in, ok := e.instances[k]
	if !ok {
		in = &Instance{Key: k, Rule: r.Name, CheckID: res.CheckID, Metric: metric, State: StateInactive,
			Severity: r.Severity}
		e.instances[k] = in
	}
	if in.rule == nil {
		in.rule = r
	}
	if in.win == nil {
		in.win = newWindow(r.Samples, r.Window)
		e.refill(ctx, in, r, res.Time)
	}
	in.Check, in.Target, in.Tags = res.Check, res.Target, res.Tags
	return in
}

// rulesFor returns the rules matching a result's check and metric.
func (e *Engine) rulesFor(res *model.Result, metric string) []int {
	k := res.CheckID.String() + "/" + res.Check + "/" + metric
	if ids, ok := e.match[k]; ok {
		return ids
	}
	var ids []int
	for i, r := range e.rules {
		if r.isStatus() != (metric == "") {
			continue
		}
		if metric != "" && !r.matchesMetric(metric) {
			continue
		}
		if !r.matchesCheck(res) {
			continue
		}
		ids = append(ids, i)
	}
	if len(e.match) > 100000 {
		e.match = map[string][]int{}
	}
	e.match[k] = ids
	return ids
}

// Process evaluates every rule matching the result and returns the
// transitions and notifications it caused. Results older than the newest
// already processed for an instance are ignored (at-least-once replays).
func (e *Engine) Process(ctx context.Context, res *model.Result) {
	if e.L != nil {
		e.L.SetContext(ctx)
	}
	for _, i := range e.rulesFor(res, "") {
		r := e.rules[i]
		if !r.matchesStatus(res) {
			continue
		}
		e.observe(ctx, r, res, "", float64(res.Status))
	}
	for mi := range res.Metrics {
		m := &res.Metrics[mi]
		v, ok := m.Value.Float()
		if !ok {
			continue // text metrics have no windows
		}
		for _, i := range e.rulesFor(res, m.Name) {
			r := e.rules[i]
			if !r.matchesStatus(res) {
				continue
			}
			e.observe(ctx, r, res, m.Name, v)
		}
	}
}

func (e *Engine) observe(ctx context.Context, r *Rule, res *model.Result, metric string, v float64) {
	in := e.instance(ctx, r, res, metric)
	if !res.Time.After(in.LastSeen) {
		return
	}
	in.LastSeen = res.Time
	in.Status, in.Output, in.Long, in.Attempt, in.StType = res.Status, res.Output, res.LongOutput, res.Attempt, res.StateType
	in.win.add(res.Time, v)
	in.Value = v
	var cond, record bool
	switch {
	case r.builtin != nil:
		cond, record = r.builtin.eval(res)
	case r.Absent > 0 && r.cond == nil:
		cond, record = false, true // data arrived: not absent
	default:
		var err error
		cond, err = e.eval(r, in, res)
		e.evals++
		if err != nil {
			e.errors++
			e.lastErr = fmt.Sprintf("%s: %v", r.Source, err)
			return // keep the previous state; the error is counted and shown
		}
		record = true
	}
	if r.Flap && record {
		st := int8(0)
		if cond {
			st = 1
		}
		if r.builtin != nil {
			st = int8(res.Status) // Nagios records the state itself
		}
		started, stopped := in.Flap.record(st, r.FlapLow, r.FlapHigh)
		if started {
			e.notify(in, NotifyFlappingStart, res.Time, true)
			e.transition(in, in.State, in.State, res.Time, fmt.Sprintf("flapping started (%.1f%% state change)", in.Flap.Percent))
		}
		if stopped {
			e.notify(in, NotifyFlappingStop, res.Time, true)
			e.transition(in, in.State, in.State, res.Time, fmt.Sprintf("flapping stopped (%.1f%% state change)", in.Flap.Percent))
		}
	}
	prevStatus := in.PrevStatus
	in.PrevStatus = res.Status
	e.step(in, cond, res.Time)
	// Nagios notifies again when a problem changes state (WARNING →
	// CRITICAL) without recovering in between.
	if r.builtin != nil && in.State == StateFiring && cond && prevStatus != res.Status && prevStatus != model.OK && in.Notified {
		e.transition(in, StateFiring, StateFiring, res.Time, "state changed to "+res.Status.String())
		e.notify(in, NotifyProblem, res.Time, false)
	}
}

// eval calls the rule's condition with the window and the result.
func (e *Engine) eval(r *Rule, in *Instance, res *model.Result) (bool, error) {
	e.winUD.Value = in.win
	t := e.resTable
	t.RawSetString("check", lua.LString(res.Check))
	t.RawSetString("target", lua.LString(res.Target))
	t.RawSetString("status", lua.LString(res.Status.String()))
	t.RawSetString("state_type", lua.LString(res.StateType.String()))
	t.RawSetString("output", lua.LString(res.Output))
	t.RawSetString("metric", lua.LString(in.Metric))
	t.RawSetString("value", lua.LNumber(in.Value))
	if err := e.L.CallByParam(lua.P{Fn: r.cond, NRet: 1, Protect: true}, e.winUD, t); err != nil {
		return false, fmt.Errorf("condition: %s", cleanLuaError(err))
	}
	ret := e.L.Get(-1)
	e.L.Pop(1)
	return lua.LVAsBool(ret), nil
}

// step advances the instance's state machine at time now.
func (e *Engine) step(in *Instance, cond bool, now time.Time) {
	r := in.rule
	switch in.State {
	case StateInactive, StateResolved:
		if !cond {
			in.State = StateInactive
			return
		}
		in.Active = now
		if r.For > 0 {
			e.transition(in, in.State, StatePending, now, "condition true; pending for "+r.For.String())
			in.State, in.Since = StatePending, now
			return
		}
		e.fire(in, now)
	case StatePending:
		if !cond {
			e.transition(in, StatePending, StateInactive, now, "condition false before "+r.For.String())
			in.State, in.Since = StateInactive, now
			return
		}
		if now.Sub(in.Active) >= r.For {
			e.fire(in, now)
		}
	case StateFiring:
		if cond {
			in.Clearing = time.Time{}
			return
		}
		if in.Clearing.IsZero() {
			in.Clearing = now
		}
		if now.Sub(in.Clearing) >= r.ClearFor {
			e.resolve(in, now)
		}
	}
}

func (e *Engine) fire(in *Instance, now time.Time) {
	e.transition(in, in.State, StateFiring, now, e.summary(in))
	in.State, in.Since, in.Clearing, in.Notified, in.NoteNum = StateFiring, now, time.Time{}, false, 0
	e.notify(in, NotifyProblem, now, false)
}

func (e *Engine) resolve(in *Instance, now time.Time) {
	e.transition(in, StateFiring, StateResolved, now, e.summary(in))
	in.State, in.Since = StateResolved, now
	// A recovery is only sent for a problem that was notified (Nagios).
	if in.Notified {
		e.notify(in, NotifyRecovery, now, false)
	}
	in.Notified, in.Clearing = false, time.Time{}
}

// Tick advances timers: pending → firing after "for", firing → resolved
// after "clear_for" without new data, absent rules, repeat notifications.
func (e *Engine) Tick(now time.Time) {
	keys := make([]string, 0, len(e.instances))
	for k := range e.instances {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic order for backtests
	for _, k := range keys {
		in := e.instances[k]
		r := in.rule
		if r == nil {
			continue
		}
		if r.Absent > 0 && !in.LastSeen.IsZero() {
			absent := now.Sub(in.LastSeen) >= r.Absent
			if absent && (in.State == StateInactive || in.State == StateResolved) {
				in.Active = now
				e.fire(in, now)
				continue
			}
			if !absent && in.State == StateFiring && r.cond == nil {
				e.resolve(in, now)
				continue
			}
		}
		switch in.State {
		case StatePending:
			if now.Sub(in.Active) >= r.For {
				e.fire(in, now)
			}
		case StateFiring:
			if !in.Clearing.IsZero() && now.Sub(in.Clearing) >= r.ClearFor {
				e.resolve(in, now)
				continue
			}
			if r.Repeat > 0 && in.Notified && now.Sub(in.LastNote) >= r.Repeat {
				e.notify(in, NotifyProblem, now, false)
			}
		}
	}
}

func (e *Engine) transition(in *Instance, from, to string, at time.Time, msg string) {
	t := Transition{inst: in}
	t.Time, t.Rule, t.Key, t.Labels, t.CheckID = at, in.Rule, in.Key, in.labels(), in.CheckID
	t.From, t.To, t.Severity, t.Value, t.Message = from, to, in.Severity, finite(in.Value), msg
	e.transitions = append(e.transitions, t)
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// notify emits a notification unless flapping, silence or inhibition
// suppresses it (flapping start/stop notices are never suppressed by
// flapping itself).
func (e *Engine) notify(in *Instance, typ string, at time.Time, flapNotice bool) {
	labels := in.labels()
	switch {
	case in.Flap.Flapping && !flapNotice:
		e.suppressed++
		return
	case e.silences != nil && e.silences.Silenced(labels, at):
		e.suppressed++
		if typ == NotifyProblem {
			// The episode counts as notified so that its recovery, if
			// the silence has ended by then, is sent.
			in.Notified = true
		}
		return
	case e.inhibited(labels):
		e.suppressed++
		return
	}
	if typ == NotifyProblem {
		in.Notified = true
		in.NoteNum++
		in.LastNote = at
	}
	notify := in.rule.Notify
	if len(notify) == 0 {
		notify = e.defaults
	}
	n := Notification{Type: typ, Time: at, Rule: in.Rule, Key: in.Key, State: in.State, Severity: in.Severity,
		Labels: labels, CheckID: in.CheckID, Check: in.Check, Target: in.Target, Metric: in.Metric, Value: finite(in.Value),
		Status: in.Status.String(), StateTyp: in.StType.String(), Attempt: in.Attempt, Output: in.Output, Long: in.Long,
		Summary: e.summary(in), Since: in.Since, Number: in.NoteNum, Notify: notify}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%d|%d", in.Key, typ, at.UnixNano(), in.NoteNum)))
	n.ID = hex.EncodeToString(sum[:12])
	e.notifications = append(e.notifications, n)
}

// inhibited reports whether a firing source alert inhibits these labels.
func (e *Engine) inhibited(target map[string]string) bool {
	for _, ih := range e.inhibits {
		if !labelsMatch(ih.Target, target) {
			continue
		}
		for _, src := range e.instances {
			if src.State != StateFiring || src.rule == nil {
				continue
			}
			sl := src.labels()
			if !labelsMatch(ih.Source, sl) || labelsMatch(ih.Source, target) {
				continue // an alert never inhibits itself or its peers
			}
			equal := true
			for _, k := range ih.Equal {
				if sl[k] == "" || sl[k] != target[k] {
					equal = false
					break
				}
			}
			if equal {
				return true
			}
		}
	}
	return false
}

func labelsMatch(want, have map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func (e *Engine) summary(in *Instance) string {
	tmpl := in.rule.Summary
	if tmpl == "" {
		if in.Metric != "" {
			tmpl = "{{rule}}: {{check}} {{metric}} = {{value}}"
		} else {
			tmpl = "{{rule}}: {{check}} is {{status}}: {{output}}"
		}
	}
	return strings.NewReplacer("{{check}}", in.Check, "{{target}}", in.Target, "{{metric}}", in.Metric,
		"{{value}}", fmt.Sprintf("%g", finite(in.Value)), "{{status}}", in.Status.String(), "{{output}}", in.Output,
		"{{rule}}", in.Rule, "{{severity}}", in.Severity).Replace(tmpl)
}

// Drain returns and clears the transitions and notifications produced
// since the last call.
func (e *Engine) Drain() ([]Transition, []Notification) {
	t, n := e.transitions, e.notifications
	e.transitions, e.notifications = nil, nil
	return t, n
}

// Instances returns the active (non-inactive) instances, sorted by key.
func (e *Engine) Instances() []*Instance {
	var out []*Instance
	for _, in := range e.instances {
		if in.State != StateInactive || in.Flap.Flapping {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
