package lua

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	glua "github.com/yuin/gopher-lua"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios/threshold"
)

var resultKeys = map[string]bool{"status": true, "output": true, "long_output": true, "metrics": true}

var metricKeys = map[string]bool{"value": true, "unit": true, "warn": true, "crit": true, "min": true, "max": true, "type": true}

// toResult converts the table a script returned:
//
//	{status = "OK"|"WARNING"|"CRITICAL"|"UNKNOWN"|0..3, output = "...", long_output = "...",
//	 metrics = {name = value, name = {value=, unit=, warn=, crit=, min=, max=, type=}}}
//
// Without a status, the worst threshold state of the metrics decides (OK
// when none has thresholds), exactly as the Nagios runner's ranges. Every
// mistake is an error naming the key: a result is never half-read.
func toResult(t *glua.LTable, maxMetrics, maxOutput int) (model.Result, error) {
	var res model.Result
	if err := checkKeys(t, resultKeys, "result", "status, output, long_output, metrics"); err != nil {
		return res, err
	}
	statusSet := false
	if v := t.RawGetString("status"); v != glua.LNil {
		s, err := parseStatus(v)
		if err != nil {
			return res, err
		}
		res.Status, statusSet = s, true
	}
	var err error
	if res.Output, err = optText(t, "output"); err != nil {
		return res, err
	}
	if res.LongOutput, err = optText(t, "long_output"); err != nil {
		return res, err
	}
	var alerts []string
	if mv := t.RawGetString("metrics"); mv != glua.LNil {
		mt, ok := mv.(*glua.LTable)
		if !ok {
			return res, fmt.Errorf("metrics is %s, want a table {name = value, ...}", describe(mv))
		}
		var worst model.Status
		res.Metrics, worst, alerts, err = toMetrics(mt, maxMetrics)
		if err != nil {
			return res, err
		}
		if !statusSet {
			res.Status = worst
		}
	}
	if !statusSet && res.Output == "" {
		res.Output = res.Status.String()
		if len(alerts) > 0 {
			res.Output += ": " + strings.Join(alerts, ", ")
		}
	}
	// Nagios convention: the output is one line, the rest is long output.
	if i := strings.IndexByte(res.Output, '\n'); i >= 0 {
		rest := strings.TrimLeft(res.Output[i+1:], "\n")
		res.Output = strings.TrimRight(res.Output[:i], "\r")
		if res.LongOutput == "" {
			res.LongOutput = rest
		} else if rest != "" {
			res.LongOutput = rest + "\n" + res.LongOutput
		}
	}
	res.Output = capOutput(res.Output, maxOutput)
	res.LongOutput = capOutput(res.LongOutput, maxOutput-len(res.Output))
	return res, nil
}

func checkKeys(t *glua.LTable, known map[string]bool, what, want string) error {
	var unknown []string
	for k, _ := t.Next(glua.LNil); k != glua.LNil; k, _ = t.Next(k) {
		ks, ok := k.(glua.LString)
		if !ok {
			return fmt.Errorf("%s has a key that is %s; keys must be strings (%s)", what, describe(k), want)
		}
		if !known[string(ks)] {
			unknown = append(unknown, fmt.Sprintf("%q", string(ks)))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%s has unknown key %s (want %s)", what, strings.Join(unknown, ", "), want)
	}
	return nil
}

func parseStatus(v glua.LValue) (model.Status, error) {
	switch v := v.(type) {
	case glua.LString:
		s, err := model.ParseStatus(string(v))
		if err != nil {
			return model.Unknown, fmt.Errorf("status: %w", err)
		}
		return s, nil
	case glua.LNumber:
		f := float64(v)
		if f == math.Trunc(f) && f >= 0 && f <= 3 {
			return model.Status(f), nil
		}
		return model.Unknown, fmt.Errorf("status: invalid status %v (want OK, WARNING, CRITICAL, UNKNOWN or 0-3)", v)
	}
	return model.Unknown, fmt.Errorf("status is %s, want a string like \"OK\" or a number 0-3", describe(v))
}

func optText(t *glua.LTable, key string) (string, error) {
	switch v := t.RawGetString(key).(type) {
	case *glua.LNilType:
		return "", nil
	case glua.LString:
		return string(v), nil
	case glua.LNumber:
		return v.String(), nil
	default:
		return "", fmt.Errorf("%s is %s, want a string", key, describe(v))
	}
}

// toMetrics converts the metrics table, sorted by name, and evaluates
// thresholds: worst is the worst state, alerts describes each metric out
// of its range.
func toMetrics(mt *glua.LTable, maxMetrics int) (ms []model.Metric, worst model.Status, alerts []string, err error) {
	// On mistakes, report the one of the first metric by name, whatever
	// the table's order.
	errName := ""
	for k, v := mt.Next(glua.LNil); k != glua.LNil; k, v = mt.Next(k) {
		if len(ms) >= maxMetrics {
			return nil, model.Unknown, nil, fmt.Errorf("more than %d metrics", maxMetrics)
		}
		name, ok := k.(glua.LString)
		if !ok || name == "" {
			return nil, model.Unknown, nil, fmt.Errorf("metrics has a key that is %s; metric names must be non-empty strings", describe(k))
		}
		m, st, alert, merr := toMetric(string(name), v)
		if merr != nil {
			if err == nil || string(name) < errName {
				err, errName = fmt.Errorf("metric %q: %w", string(name), merr), string(name)
			}
			continue
		}
		if ms == nil {
			ms = make([]model.Metric, 0, 1)
		}
		ms = append(ms, m)
		worst = model.Worst(worst, st)
		if alert != "" {
			alerts = append(alerts, alert)
		}
	}
	if err != nil {
		return nil, model.Unknown, nil, err
	}
	slices.SortFunc(ms, func(a, b model.Metric) int { return strings.Compare(a.Name, b.Name) })
	sort.Strings(alerts)
	return ms, worst, alerts, nil
}

func toMetric(name string, v glua.LValue) (m model.Metric, st model.Status, alert string, err error) {
	m.Name = name
	kind := ""
	var value glua.LValue = v
	if t, ok := v.(*glua.LTable); ok {
		if err := checkKeys(t, metricKeys, "metric", "value, unit, warn, crit, min, max, type"); err != nil {
			return m, 0, "", err
		}
		value = t.RawGetString("value")
		if value == glua.LNil {
			return m, 0, "", errors.New("value is missing")
		}
		if k := t.RawGetString("type"); k != glua.LNil {
			ks, ok := k.(glua.LString)
			if !ok {
				return m, 0, "", fmt.Errorf("type is %s, want \"int\", \"uint\", \"float\" or \"string\"", describe(k))
			}
			kind = string(ks)
		}
		if m.Unit, err = optText(t, "unit"); err != nil {
			return m, 0, "", err
		}
		if m.Warn, err = rangeText(t, "warn"); err != nil {
			return m, 0, "", err
		}
		if m.Crit, err = rangeText(t, "crit"); err != nil {
			return m, 0, "", err
		}
		if m.Min, err = optNumber(t, "min"); err != nil {
			return m, 0, "", err
		}
		if m.Max, err = optNumber(t, "max"); err != nil {
			return m, 0, "", err
		}
	}
	if m.Value, err = toValue(value, kind); err != nil {
		return m, 0, "", err
	}
	if m.Warn == "" && m.Crit == "" {
		return m, model.OK, "", nil
	}
	f, ok := m.Value.Float()
	if !ok {
		return m, 0, "", errors.New("warn/crit need a numeric value")
	}
	w, err := threshold.Parse(m.Warn)
	if err != nil {
		return m, 0, "", fmt.Errorf("warn: %w", err)
	}
	c, err := threshold.Parse(m.Crit)
	if err != nil {
		return m, 0, "", fmt.Errorf("crit: %w", err)
	}
	st = threshold.Evaluate(f, w, c)
	switch st {
	case model.Critical:
		alert = fmt.Sprintf("%s=%s%s (crit %s)", name, m.Value, m.Unit, m.Crit)
	case model.Warning:
		alert = fmt.Sprintf("%s=%s%s (warn %s)", name, m.Value, m.Unit, m.Warn)
	}
	return m, st, alert, nil
}

// Bounds of float64 values that convert to int64/uint64 exactly.
const (
	minInt64f  = -9223372036854775808.0
	maxInt64f  = 9223372036854775808.0 // exclusive
	maxUint64f = 18446744073709551616.0
)

// toValue converts a metric value. Lua numbers are doubles: a whole number
// becomes an int, anything else a float, unless type says otherwise.
func toValue(v glua.LValue, kind string) (model.Value, error) {
	switch v := v.(type) {
	case glua.LNumber:
		f := float64(v)
		whole := f == math.Trunc(f) && !math.IsInf(f, 0)
		switch kind {
		case "":
			if whole && f >= minInt64f && f < maxInt64f {
				return model.Int(int64(f)), nil
			}
			return model.Float(f), nil
		case "float":
			return model.Float(f), nil
		case "int":
			if !whole || f < minInt64f || f >= maxInt64f {
				return model.Value{}, fmt.Errorf("value %v is not a 64-bit integer", v)
			}
			return model.Int(int64(f)), nil
		case "uint":
			if !whole || f < 0 || f >= maxUint64f {
				return model.Value{}, fmt.Errorf("value %v is not an unsigned 64-bit integer", v)
			}
			return model.Uint(uint64(f)), nil
		case "string":
			return model.String(v.String()), nil
		}
	case glua.LString:
		switch kind {
		case "", "string":
			return model.String(string(v)), nil
		case "int", "uint", "float":
			return model.Value{}, fmt.Errorf("value is a string (%q) but type is %s", truncate(string(v), 40), kind)
		}
	case glua.LBool:
		if kind != "" && kind != "int" {
			return model.Value{}, fmt.Errorf("value is a boolean but type is %s", kind)
		}
		if v {
			return model.Int(1), nil
		}
		return model.Int(0), nil
	default:
		return model.Value{}, fmt.Errorf("value is %s, want a number, a string or a table {value=...}", describe(v))
	}
	return model.Value{}, fmt.Errorf("type %q: want int, uint, float or string", kind)
}

func rangeText(t *glua.LTable, key string) (string, error) {
	switch v := t.RawGetString(key).(type) {
	case *glua.LNilType:
		return "", nil
	case glua.LString:
		return strings.TrimSpace(string(v)), nil
	case glua.LNumber:
		return v.String(), nil
	default:
		return "", fmt.Errorf("%s is %s, want a range like \"10\", \"10:\", \"~:10\", \"10:20\" or \"@10:20\"", key, describe(v))
	}
}

func optNumber(t *glua.LTable, key string) (*float64, error) {
	switch v := t.RawGetString(key).(type) {
	case *glua.LNilType:
		return nil, nil
	case glua.LNumber:
		f := float64(v)
		return &f, nil
	default:
		return nil, fmt.Errorf("%s is %s, want a number", key, describe(v))
	}
}

// capOutput truncates s to at most max bytes on a character boundary,
// saying how much was cut.
func capOutput(s string, max int) string {
	if len(s) <= max {
		return s
	}
	if max < 64 {
		max = 64
		if len(s) <= max {
			return s
		}
	}
	cut := max - 40 // room for the note
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf(" … (%d bytes truncated)", len(s)-cut)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// resultToLua builds ctx.previous: the last result of the check.
func resultToLua(L *glua.LState, r *model.Result) *glua.LTable {
	t := L.CreateTable(0, 10)
	t.RawSetString("status", glua.LString(r.Status.String()))
	t.RawSetString("status_code", glua.LNumber(r.Status))
	t.RawSetString("output", glua.LString(r.Output))
	t.RawSetString("long_output", glua.LString(r.LongOutput))
	if !r.Time.IsZero() {
		t.RawSetString("time", glua.LNumber(float64(r.Time.UnixNano())/1e9))
	}
	t.RawSetString("duration", glua.LNumber(r.Duration.Seconds()))
	t.RawSetString("state_type", glua.LString(r.StateType.String()))
	t.RawSetString("attempt", glua.LNumber(r.Attempt))
	ms := L.CreateTable(0, len(r.Metrics))
	for _, m := range r.Metrics {
		if m.Value.Kind() == model.KindString {
			ms.RawSetString(m.Name, glua.LString(m.Value.Str()))
		} else {
			f, _ := m.Value.Float()
			ms.RawSetString(m.Name, glua.LNumber(f))
		}
	}
	t.RawSetString("metrics", ms)
	return t
}
