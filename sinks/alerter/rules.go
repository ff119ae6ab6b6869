package alerter

import (
	"fmt"
	"math"
	"os"
	"path"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/reconmon/recon/agent/model"
)

// Rule is one alert rule. A metric rule (Metric set) evaluates a window of
// one metric of each matching check; a status rule (Metric empty)
// evaluates a window of status codes (0-3) of each matching check.
type Rule struct {
	Name     string
	Check    string            // glob on the check name; "" = any
	Tags     map[string]string // all must match the result's tags
	Metric   string            // glob on the metric name; "" = status rule
	Statuses []model.Status    // only results with these statuses count (empty = all)
	Samples  int               // window: the last N samples …
	Window   time.Duration     // … and/or those within this duration
	Absent   time.Duration     // fire when a series has no data for this long
	Severity string
	Labels   map[string]string
	Summary  string // template: {{check}} {{target}} {{metric}} {{value}} {{status}} {{output}} {{rule}}
	For      time.Duration
	ClearFor time.Duration
	Repeat   time.Duration
	Notify   []string
	Flap     bool
	FlapLow  float64
	FlapHigh float64
	Source   string // file:line of the definition

	cond    *lua.LFunction
	builtin builtinRule
}

// builtinRule is a rule implemented in Go (the Nagios-style default).
type builtinRule interface {
	// eval says whether the instance is in a problem state for result r,
	// and whether the state should be recorded for flap detection.
	eval(r *model.Result) (problem, record bool)
}

// isStatus reports whether the rule watches statuses rather than a metric.
func (r *Rule) isStatus() bool { return r.Metric == "" }

// matchesCheck: the check name glob and the tags (stable per check, so
// the engine caches it).
func (r *Rule) matchesCheck(res *model.Result) bool {
	if r.Check != "" {
		if ok, _ := path.Match(r.Check, res.Check); !ok {
			return false
		}
	}
	for k, v := range r.Tags {
		if ok, _ := path.Match(v, res.Tags[k]); !ok {
			return false
		}
	}
	return true
}

// matchesStatus: the status filter, per result.
func (r *Rule) matchesStatus(res *model.Result) bool {
	if len(r.Statuses) > 0 {
		found := false
		for _, s := range r.Statuses {
			if s == res.Status {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (r *Rule) matchesMetric(name string) bool {
	ok, _ := path.Match(r.Metric, name)
	return ok
}

// DefaultRule is the built-in Nagios behaviour: a check in a HARD non-OK
// state is a problem (notified, and again on a change between problem
// states), its recovery is notified; soft states are ignored; flapping is
// detected on hard states and soft recoveries, as Nagios records them.
func DefaultRule() *Rule {
	return &Rule{Name: "nagios-default", Severity: "", Flap: true, FlapLow: DefaultFlapLow, FlapHigh: DefaultFlapHigh,
		Samples: 1, Source: "built-in", builtin: nagiosDefault{}, Summary: "{{check}} is {{status}}: {{output}}"}
}

type nagiosDefault struct{}

func (nagiosDefault) eval(r *model.Result) (problem, record bool) {
	hard := r.StateType == model.Hard
	problem = r.Status != model.OK && hard
	// Nagios records hard states and soft recoveries for flap detection.
	record = hard || r.Status == model.OK
	return problem, record
}

// ruleLoader collects rule{} calls from Lua files.
type ruleLoader struct {
	L     *lua.LState
	rules []*Rule
	errs  []string
	names map[string]string
}

// newRuleState returns a sandboxed Lua state for rule files: no io, os,
// debug, load, dofile, require — only base functions, string, table, math.
func newRuleState() *lua.LState {
	L := lua.NewState(lua.Options{SkipOpenLibs: true, CallStackSize: 256, RegistrySize: 1024 * 64})
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, g := range []string{"dofile", "loadfile", "load", "loadstring", "require", "module", "collectgarbage", "getfenv", "setfenv", "newproxy", "_printregs"} {
		L.SetGlobal(g, lua.LNil)
	}
	return L
}

// LoadRules reads rule files. Any error in any file fails the whole load
// (the caller keeps its previous rules), naming file:line.
func LoadRules(files []string) (*lua.LState, []*Rule, error) {
	ld := &ruleLoader{L: newRuleState(), names: map[string]string{}}
	ld.L.SetGlobal("rule", ld.L.NewFunction(ld.rule))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			ld.L.Close()
			return nil, nil, fmt.Errorf("rules: %w", err)
		}
		fn, err := ld.L.Load(strings.NewReader(string(src)), f)
		if err != nil {
			ld.L.Close()
			msg := cleanLuaError(err)
			// The parser reports a missing end as "at EOF": name the line.
			msg = strings.Replace(msg, f+" at EOF:", fmt.Sprintf("%s:%d: at end of file:", f, strings.Count(string(src), "\n")+1), 1)
			return nil, nil, fmt.Errorf("rules: %s", msg)
		}
		ld.L.Push(fn)
		if err := ld.L.PCall(0, 0, nil); err != nil {
			ld.L.Close()
			return nil, nil, fmt.Errorf("rules: %s", cleanLuaError(err))
		}
	}
	if len(ld.errs) > 0 {
		ld.L.Close()
		return nil, nil, fmt.Errorf("rules:\n%s", strings.Join(ld.errs, "\n"))
	}
	return ld.L, ld.rules, nil
}

func cleanLuaError(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\nstack traceback:"); i >= 0 {
		s = s[:i]
	}
	return s
}

// rule is the Lua function rule{…}: it validates the table and records it.
func (ld *ruleLoader) rule(L *lua.LState) int {
	where := strings.TrimSuffix(L.Where(1), ":")
	t := L.CheckTable(1)
	r := &Rule{Source: where, FlapLow: DefaultFlapLow, FlapHigh: DefaultFlapHigh, Flap: true}
	fail := func(format string, args ...any) int {
		ld.errs = append(ld.errs, fmt.Sprintf("%s: rule %q: %s", where, r.Name, fmt.Sprintf(format, args...)))
		return 0
	}
	var errs []string
	str := func(k string) string {
		v := t.RawGetString(k)
		if v == lua.LNil {
			return ""
		}
		s, ok := v.(lua.LString)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s must be a string, not %s", k, v.Type()))
		}
		return string(s)
	}
	dur := func(k string) time.Duration {
		v := t.RawGetString(k)
		if v == lua.LNil {
			return 0
		}
		switch x := v.(type) {
		case lua.LString:
			d, err := time.ParseDuration(string(x))
			if err != nil || d < 0 {
				errs = append(errs, fmt.Sprintf("%s: invalid duration %q", k, string(x)))
			}
			return d
		case lua.LNumber:
			if x < 0 {
				errs = append(errs, fmt.Sprintf("%s must be >= 0", k))
			}
			return time.Duration(float64(x) * float64(time.Second))
		}
		errs = append(errs, fmt.Sprintf("%s must be a duration string or seconds", k))
		return 0
	}
	strMap := func(k string) map[string]string {
		v := t.RawGetString(k)
		if v == lua.LNil {
			return nil
		}
		tt, ok := v.(*lua.LTable)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s must be a table", k))
			return nil
		}
		m := map[string]string{}
		tt.ForEach(func(kk, vv lua.LValue) { m[kk.String()] = vv.String() })
		return m
	}
	known := map[string]bool{"name": true, "check": true, "tags": true, "metric": true, "status": true, "samples": true,
		"window": true, "absent": true, "condition": true, "severity": true, "labels": true, "summary": true, "for": true,
		"clear_for": true, "repeat_interval": true, "notify": true, "flap_detection": true, "flap_low": true, "flap_high": true}
	t.ForEach(func(k, _ lua.LValue) {
		if ks, ok := k.(lua.LString); !ok || !known[string(ks)] {
			errs = append(errs, fmt.Sprintf("unknown field %s", k))
		}
	})
	r.Name = str("name")
	r.Check = str("check")
	r.Metric = str("metric")
	r.Tags = strMap("tags")
	r.Labels = strMap("labels")
	r.Severity = str("severity")
	r.Summary = str("summary")
	r.Window = dur("window")
	r.Absent = dur("absent")
	r.For = dur("for")
	r.ClearFor = dur("clear_for")
	r.Repeat = dur("repeat_interval")
	if v := t.RawGetString("samples"); v != lua.LNil {
		n, ok := v.(lua.LNumber)
		if !ok || n < 1 || n > maxSamples || float64(n) != math.Trunc(float64(n)) {
			errs = append(errs, fmt.Sprintf("samples must be an integer 1..%d", maxSamples))
		}
		r.Samples = int(n)
	}
	if v := t.RawGetString("status"); v != lua.LNil {
		var list []lua.LValue
		if tt, ok := v.(*lua.LTable); ok {
			tt.ForEach(func(_, x lua.LValue) { list = append(list, x) })
		} else {
			list = []lua.LValue{v}
		}
		for _, x := range list {
			st, err := model.ParseStatus(x.String())
			if err != nil {
				errs = append(errs, "status: "+err.Error())
			}
			r.Statuses = append(r.Statuses, st)
		}
	}
	if v := t.RawGetString("notify"); v != lua.LNil {
		switch x := v.(type) {
		case lua.LString:
			r.Notify = []string{string(x)}
		case *lua.LTable:
			x.ForEach(func(_, n lua.LValue) { r.Notify = append(r.Notify, n.String()) })
		default:
			errs = append(errs, "notify must be a notifier name or a list of names")
		}
	}
	if v := t.RawGetString("flap_detection"); v != lua.LNil {
		b, ok := v.(lua.LBool)
		if !ok {
			errs = append(errs, "flap_detection must be true or false")
		}
		r.Flap = bool(b)
	}
	for _, f := range []struct {
		k   string
		dst *float64
	}{{"flap_low", &r.FlapLow}, {"flap_high", &r.FlapHigh}} {
		if v := t.RawGetString(f.k); v != lua.LNil {
			n, ok := v.(lua.LNumber)
			if !ok || n < 0 || n > 100 {
				errs = append(errs, f.k+" must be a percentage 0..100")
			}
			*f.dst = float64(n)
		}
	}
	if c := t.RawGetString("condition"); c != lua.LNil {
		fn, ok := c.(*lua.LFunction)
		if !ok {
			errs = append(errs, "condition must be a function(w, r)")
		}
		r.cond = fn
	}
	switch {
	case r.Name == "":
		errs = append(errs, "name is required")
	case ld.names[r.Name] != "":
		errs = append(errs, "duplicate rule name (first defined at "+ld.names[r.Name]+")")
	}
	if r.cond == nil && r.Absent == 0 {
		errs = append(errs, "a condition function or absent = DURATION is required")
	}
	if r.FlapLow > r.FlapHigh {
		errs = append(errs, "flap_low must not exceed flap_high")
	}
	if r.Samples == 0 && r.Window == 0 {
		r.Samples = 1
	}
	if len(errs) > 0 {
		return fail("%s", strings.Join(errs, "; "))
	}
	ld.names[r.Name] = where
	ld.rules = append(ld.rules, r)
	return 0
}
