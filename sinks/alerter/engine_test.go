package alerter

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func TestWindowFunctions(t *testing.T) {
	w := newWindow(10, 0)
	for i, v := range []float64{1, 2, 3, 4, 10} {
		w.add(t0.Add(time.Duration(i)*10*time.Second), v)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("avg", w.avg(), 4)
	near("min", w.min(), 1)
	near("max", w.max(), 10)
	near("sum", w.sum(), 20)
	near("last", w.last(), 10)
	near("delta", w.delta(), 9)
	near("rate", w.rate(), 9.0/40)
	near("stddev", w.stddev(), math.Sqrt((9+4+1+0+36)/5.0))
	near("p50", w.percentile(50), 3)
	near("p90", w.percentile(90), 4+0.6*6)
	near("p0", w.percentile(0), 1)
	near("p100", w.percentile(100), 10)
	near("count", float64(w.count()), 5)
	// Counter reset: 10 → 2 counts 2, not -8.
	c := newWindow(10, 0)
	for i, v := range []float64{5, 10, 2, 4} {
		c.add(t0.Add(time.Duration(i)*time.Second), v)
	}
	near("rate across reset", c.rate(), (5+2+2)/3.0)
	// Sample and duration limits.
	n := newWindow(3, 0)
	for i := 0; i < 10; i++ {
		n.add(t0.Add(time.Duration(i)*time.Second), float64(i))
	}
	near("last-3 avg", n.avg(), 8)
	d := newWindow(0, 30*time.Second)
	for i := 0; i < 10; i++ {
		d.add(t0.Add(time.Duration(i)*10*time.Second), float64(i))
	}
	near("30s window count", float64(d.count()), 4) // 60s..90s
	if d.add(t0, 100) {
		t.Error("an older sample was added")
	}
	e := newWindow(5, 0)
	near("empty avg", e.avg(), math.NaN())
	near("one-sample rate", func() float64 { e.add(t0, 1); return e.rate() }(), math.NaN())
}

// Flap detection against hand-computed values of Nagios's algorithm:
// weights 0.75 + (x-1)·0.5/19 for the change between states x-1 and x.
func TestFlapPercent(t *testing.T) {
	cases := []struct {
		name   string
		states []int8 // applied in order after an initial fill with the first
		want   float64
	}{
		{"stable", []int8{0, 0, 0}, 0},
		{"one change, newest", []int8{0, 2}, 1.25 * 100 / 20},
		{"alternating 21", alternate(21), 100},
		// Two changes at the two newest positions (x=19 and x=20).
		{"two newest", []int8{0, 2, 0}, (0.75 + 18*0.5/19 + 1.25) * 100 / 20},
	}
	for _, c := range cases {
		var f flapState
		for _, s := range c.states {
			f.record(s, 100, 100)
		}
		if math.Abs(f.Percent-c.want) > 1e-9 {
			t.Errorf("%s: %.4f%%, want %.4f%%", c.name, f.Percent, c.want)
		}
	}
	// A change ages: after 20 more stable states it drops out entirely.
	var f flapState
	f.record(0, 100, 100)
	f.record(2, 100, 100)
	for i := 0; i < 19; i++ {
		f.record(2, 100, 100)
	}
	if want := 0.75 * 100 / 20; math.Abs(f.Percent-want) > 1e-9 {
		t.Errorf("oldest change weighs 0.75: %.4f, want %.4f", f.Percent, want)
	}
	f.record(2, 100, 100)
	if f.Percent != 0 {
		t.Errorf("change beyond 21 states still counted: %v", f.Percent)
	}
	// Hysteresis: start at >= high, stop at <= low, keep in between.
	var g flapState
	var started, stopped bool
	for _, s := range alternate(6) {
		st, sp := g.record(s, 5, 20)
		started, stopped = started || st, stopped || sp
	}
	if !started || !g.Flapping {
		t.Fatalf("not flapping at %.1f%%", g.Percent)
	}
	for i := 0; i < 25 && g.Percent > 5; i++ {
		if _, sp := g.record(g.History[(g.Index+flapHistory-1)%flapHistory], 5, 20); sp {
			stopped = true
		}
		if g.Percent > 5 && !g.Flapping {
			t.Fatalf("stopped flapping at %.1f%% (> low threshold)", g.Percent)
		}
	}
	if g.Flapping || !stopped {
		t.Errorf("still flapping at %.1f%%", g.Percent)
	}
}

func alternate(n int) []int8 {
	out := make([]int8, n)
	for i := range out {
		out[i] = int8(2 * (i % 2))
	}
	return out
}

// engine builds an engine from Lua source (plus the default rule when asked).
func engine(t *testing.T, src string, withDefault bool, sil *Silences, inhibits ...Inhibit) *Engine {
	t.Helper()
	var files []string
	if src != "" {
		p := filepath.Join(t.TempDir(), "rules.lua")
		os.WriteFile(p, []byte(src), 0o644)
		files = append(files, p)
	}
	L, rules, err := LoadRules(files)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(L.Close)
	if withDefault {
		rules = append([]*Rule{DefaultRule()}, rules...)
	}
	if sil == nil {
		sil, _ = LoadSilences("")
	}
	return NewEngine(L, rules, inhibits, sil, []string{"ops"})
}

func result(check string, at time.Time, st model.Status, stType model.StateType, metrics ...model.Metric) *model.Result {
	return &model.Result{CheckID: model.CheckID("a", check), Check: check, Target: "10.0.0.1", Time: at, Status: st,
		StateType: stType, Output: check + " is " + st.String(), Metrics: metrics, Tags: map[string]string{"host": "h1"}}
}

func metric(name string, v float64) model.Metric {
	return model.Metric{Name: name, Value: model.Float(v)}
}

type step struct {
	at    time.Duration
	value float64
	tick  bool // only advance the clock
}

func run(e *Engine, check, m string, steps []step) ([]Transition, []Notification) {
	var ts []Transition
	var ns []Notification
	for _, s := range steps {
		now := t0.Add(s.at)
		e.Tick(now)
		if !s.tick {
			e.Process(context.Background(), result(check, now, model.OK, model.Hard, metric(m, s.value)))
		}
		a, b := e.Drain()
		ts, ns = append(ts, a...), append(ns, b...)
	}
	return ts, ns
}

func states(ts []Transition) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.From+">"+t.To)
	}
	return strings.Join(out, " ")
}

func TestForAndClearFor(t *testing.T) {
	e := engine(t, `rule { name = "hot", metric = "temp", condition = function(w) return w:last() > 50 end,
		["for"] = "30s", clear_for = "20s", severity = "critical", flap_detection = false }`, false, nil)
	ts, ns := run(e, "sensor", "temp", []step{
		{at: 0, value: 60},                 // inactive → pending
		{at: 10 * time.Second, value: 40},  // pending → inactive (false before "for")
		{at: 20 * time.Second, value: 70},  // → pending again
		{at: 40 * time.Second, value: 70},  // 20s in: still pending
		{at: 50 * time.Second, tick: true}, // 30s: firing by the timer
		{at: 60 * time.Second, value: 30},  // clearing starts
		{at: 70 * time.Second, value: 80},  // true again: clearing reset
		{at: 75 * time.Second, value: 20},  // clearing starts again
		{at: 90 * time.Second, value: 20},  // 15s: still firing
		{at: 96 * time.Second, tick: true}, // 21s: resolved
	})
	want := "inactive>pending pending>inactive inactive>pending pending>firing firing>resolved"
	if got := states(ts); got != want {
		t.Errorf("transitions:\n got %s\nwant %s", got, want)
	}
	if ts[3].Time != t0.Add(50*time.Second) || ts[4].Time != t0.Add(96*time.Second) {
		t.Errorf("fired at %v, resolved at %v", ts[3].Time.Sub(t0), ts[4].Time.Sub(t0))
	}
	if len(ns) != 2 || ns[0].Type != NotifyProblem || ns[1].Type != NotifyRecovery || ns[0].Severity != "critical" || ns[0].Notify[0] != "ops" {
		t.Errorf("notifications: %+v", ns)
	}
}

func TestWindowRules(t *testing.T) {
	e := engine(t, `
rule { name = "avg", metric = "lat", samples = 3, condition = function(w) return w:avg() > 100 end }
rule { name = "p95", metric = "lat", window = "1m", condition = function(w) return w:percentile(95) > 500 end }
rule { name = "rate", metric = "errors", samples = 2, condition = function(w) return w:rate() > 1 end }
rule { name = "dead", metric = "lat", absent = "2m" }
`, false, nil)
	ts, _ := run(e, "web", "lat", []step{{at: 0, value: 50}, {at: 10 * time.Second, value: 100}, {at: 20 * time.Second, value: 200}})
	if got := states(ts); got != "inactive>firing" || ts[0].Rule != "avg" {
		t.Errorf("avg of 3: %s", got)
	}
	ts, _ = run(e, "web", "lat", []step{{at: 30 * time.Second, value: 900}})
	if len(ts) != 1 || ts[0].Rule != "p95" {
		t.Errorf("p95: %+v", ts)
	}
	ts, _ = run(e, "web", "errors", []step{{at: 0, value: 10}, {at: 10 * time.Second, value: 15}, {at: 20 * time.Second, value: 50}})
	if got := states(ts); got != "inactive>firing" || ts[0].Rule != "rate" {
		t.Errorf("rate: %s", got)
	}
	// No lat data for 2 minutes: the absent rule fires; data resolves it.
	ts, _ = run(e, "web", "lat", []step{{at: 2*time.Minute + 31*time.Second, tick: true}})
	var absent []Transition
	for _, x := range ts {
		if x.Rule == "dead" {
			absent = append(absent, x)
		}
	}
	if len(absent) != 1 || absent[0].To != StateFiring {
		t.Fatalf("absent: %+v", ts)
	}
	ts, _ = run(e, "web", "lat", []step{{at: 3 * time.Minute, value: 1}, {at: 3*time.Minute + time.Second, tick: true}})
	found := false
	for _, x := range ts {
		if x.Rule == "dead" && x.To == StateResolved {
			found = true
		}
	}
	if !found {
		t.Errorf("absent not resolved by new data: %+v", ts)
	}
}

func TestDefaultRuleNagiosBehaviour(t *testing.T) {
	e := engine(t, "", true, nil)
	seq := []struct {
		st  model.Status
		typ model.StateType
	}{
		{model.OK, model.Hard}, {model.Critical, model.Soft}, {model.Critical, model.Soft}, // soft: ignored
		{model.Critical, model.Hard},                        // PROBLEM
		{model.Critical, model.Hard},                        // nothing new
		{model.Warning, model.Hard},                         // state change: PROBLEM again
		{model.OK, model.Hard},                              // RECOVERY
		{model.Warning, model.Soft}, {model.OK, model.Soft}, // soft blip: nothing
	}
	var types []string
	for i, s := range seq {
		e.Process(context.Background(), result("db", t0.Add(time.Duration(i)*time.Minute), s.st, s.typ))
		_, ns := e.Drain()
		for _, n := range ns {
			types = append(types, n.Type+":"+n.Status)
		}
	}
	if got := strings.Join(types, " "); got != "PROBLEM:CRITICAL PROBLEM:WARNING RECOVERY:OK" {
		t.Errorf("notifications: %s", got)
	}
}

func TestFlappingSuppressesNotifications(t *testing.T) {
	e := engine(t, "", true, nil)
	var types []string
	for i := 0; i < 12; i++ {
		st := model.OK
		if i%2 == 1 {
			st = model.Critical
		}
		e.Process(context.Background(), result("flappy", t0.Add(time.Duration(i)*time.Minute), st, model.Hard))
		_, ns := e.Drain()
		for _, n := range ns {
			types = append(types, n.Type)
		}
	}
	// Each change weighs at least 0.75·100/20 = 3.75%; after the 6th
	// change the total exceeds 20%: FLAPPINGSTART, then silence.
	got := strings.Join(types, " ")
	if !strings.HasPrefix(got, "PROBLEM RECOVERY") || !strings.Contains(got, NotifyFlappingStart) {
		t.Fatalf("notifications: %s", got)
	}
	after := got[strings.Index(got, NotifyFlappingStart)+len(NotifyFlappingStart):]
	if strings.Contains(after, "PROBLEM") || strings.Contains(after, "RECOVERY") {
		t.Errorf("notifications while flapping: %s", got)
	}
	if in := e.Instances(); len(in) == 0 || !in[0].Flap.Flapping {
		t.Error("instance not shown as flapping")
	}
}

func TestSilencesAndInhibition(t *testing.T) {
	sil, _ := LoadSilences("")
	sil.now = func() time.Time { return t0 }
	if _, err := sil.Add(Silence{Matchers: []Matcher{{Name: "check", Value: "web.*", Regex: true}}, EndsAt: t0.Add(time.Hour), CreatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	e := engine(t, "", true, sil, Inhibit{Source: map[string]string{"kind": "host"}, Equal: []string{"host"}})
	notes := func(r *model.Result) []Notification {
		e.Process(context.Background(), r)
		_, ns := e.Drain()
		return ns
	}
	if ns := notes(result("web1", t0.Add(time.Minute), model.Critical, model.Hard)); len(ns) != 0 {
		t.Errorf("silenced alert notified: %+v", ns)
	}
	if ns := notes(result("db1", t0.Add(time.Minute), model.Critical, model.Hard)); len(ns) != 1 {
		t.Errorf("unsilenced alert: %+v", ns)
	}
	// After the silence, the recovery of the silenced problem is sent.
	if ns := notes(result("web1", t0.Add(2*time.Hour), model.OK, model.Hard)); len(ns) != 1 || ns[0].Type != NotifyRecovery {
		t.Errorf("recovery after silence: %+v", ns)
	}
	// Host down inhibits its services.
	host := result("h1", t0.Add(3*time.Hour), model.Critical, model.Hard)
	host.Tags = map[string]string{"host": "h1", "kind": "host"}
	if ns := notes(host); len(ns) != 1 {
		t.Fatalf("host alert: %+v", ns)
	}
	if ns := notes(result("svc", t0.Add(3*time.Hour+time.Minute), model.Critical, model.Hard)); len(ns) != 0 {
		t.Errorf("service alert not inhibited by its host: %+v", ns)
	}
	other := result("svc2", t0.Add(3*time.Hour+time.Minute), model.Critical, model.Hard)
	other.Tags = map[string]string{"host": "h2"}
	if ns := notes(other); len(ns) != 1 {
		t.Errorf("other host's service inhibited: %+v", ns)
	}
	if e.suppressed < 2 {
		t.Errorf("suppressed = %d", e.suppressed)
	}
}

func TestRepeatInterval(t *testing.T) {
	e := engine(t, `rule { name = "r", metric = "m", condition = function(w) return w:last() > 0 end, repeat_interval = "10m" }`, false, nil)
	_, ns := run(e, "c", "m", []step{
		{at: 0, value: 1}, {at: 5 * time.Minute, tick: true}, {at: 10 * time.Minute, tick: true},
		{at: 15 * time.Minute, value: 1}, {at: 20 * time.Minute, tick: true},
	})
	if len(ns) != 3 || ns[1].Number != 2 || ns[2].Number != 3 || ns[1].ID == ns[0].ID {
		t.Errorf("repeats: %d %+v", len(ns), ns)
	}
}

func TestReplayIsIdempotent(t *testing.T) {
	e := engine(t, `rule { name = "r", metric = "m", condition = function(w) return w:last() > 0 end }`, false, nil)
	r := result("c", t0, model.OK, model.Hard, metric("m", 1))
	e.Process(context.Background(), r)
	_, ns1 := e.Drain()
	e.Process(context.Background(), r) // the same result again (replay)
	ts, ns2 := e.Drain()
	if len(ns1) != 1 || len(ns2) != 0 || len(ts) != 0 {
		t.Errorf("replay re-notified: %d then %d", len(ns1), len(ns2))
	}
}

func TestRuleErrors(t *testing.T) {
	cases := map[string]string{
		`rule { name = "x", metric = "m" }`:                                                  "condition function or absent",
		`rule { metric = "m", condition = function() end }`:                                  "name is required",
		`rule { name = "x", bogus = 1, condition = function() end }`:                         "unknown field bogus",
		`rule { name = "x", window = "soon", condition = function() end }`:                   `window: invalid duration "soon"`,
		`rule { name = "x", samples = 0, condition = function() end }`:                       "samples must be an integer",
		`rule { name = "x", condition = 5 }`:                                                 "condition must be a function",
		`rule { name = "x", condition = function() end } rule { name = "x", absent = "1m" }`: "duplicate rule name",
		`rule { name = "x", status = "MAYBE", condition = function() end }`:                  "status",
		`rule { name = "x" `:    "rules.lua",
		`os.execute("true")`:    "attempt to index",
		`dofile("/etc/passwd")`: "attempt to call",
	}
	for src, want := range cases {
		p := filepath.Join(t.TempDir(), "rules.lua")
		os.WriteFile(p, []byte(src), 0o644)
		_, _, err := LoadRules([]string{p})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), p+":") {
			t.Errorf("%s: error does not name file:line: %v", src, err)
		}
	}
}

func TestConditionRuntimeErrorKeepsState(t *testing.T) {
	e := engine(t, `rule { name = "r", metric = "m", condition = function(w) if w:last() > 5 then error("boom") end return w:last() > 1 end }`, false, nil)
	ts, _ := run(e, "c", "m", []step{{at: 0, value: 2}, {at: time.Second, value: 9}})
	if got := states(ts); got != "inactive>firing" {
		t.Errorf("transitions: %s", got)
	}
	if e.errors != 1 || !strings.Contains(e.lastErr, "boom") {
		t.Errorf("error not counted: %d %q", e.errors, e.lastErr)
	}
}

func FuzzLoadRules(f *testing.F) {
	f.Add(`rule { name = "x", metric = "m", samples = 3, condition = function(w) return w:avg() > 1 end }`)
	f.Add(`rule { name = "y", absent = "5m", labels = { a = "b" }, notify = {"n"} }`)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src string) {
		p := filepath.Join(dir, "r.lua")
		os.WriteFile(p, []byte(src), 0o644)
		L, rules, err := LoadRules([]string{p})
		if err != nil {
			return
		}
		defer L.Close()
		for _, r := range rules {
			if r.Name == "" || (r.cond == nil && r.Absent == 0) {
				t.Fatalf("invalid rule accepted: %+v", r)
			}
		}
	})
}
