// Package sdk is what a recon plugin author imports. A check plugin is a
// type with three methods and a main that calls ServeCheck:
//
//	type config struct {
//		Greeting string `json:"greeting"`
//	}
//
//	type hello struct{}
//
//	func (hello) Info() sdk.Info { return sdk.Info{Name: "hello", Version: "1.0.0"} }
//
//	func (hello) ConfigSchema() string {
//		return `{"type": "object", "properties": {"greeting": {"type": "string"}}}`
//	}
//
//	func (hello) Check(ctx context.Context, cfg *config, req sdk.Request) (sdk.Result, error) {
//		return sdk.OK("%s, %s", cfg.Greeting, req.Target).With(sdk.IntMetric("answer", 42)), nil
//	}
//
//	func main() { sdk.ServeCheck[config](hello{}) }
//
// recon validates each check's `config` table against the schema before
// the plugin sees it; the SDK decodes it into the config type (JSON field
// names, unknown fields rejected), calls Check for each run with the
// check's deadline on ctx, runs batches of checks concurrently, turns
// errors and panics into UNKNOWN results, and speaks the go-plugin
// protocol. Sink plugins are the same with ServeSink. See README.md.
package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Info describes a plugin; recon shows it in `recon plugin inspect` and
// in its logs.
type Info struct {
	Name        string
	Version     string
	Description string
}

// Status is a Nagios state; the numbers are the Nagios exit codes.
type Status int

const (
	StatusOK Status = iota
	StatusWarning
	StatusCritical
	StatusUnknown
)

var statusNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Request is one run of a check.
type Request struct {
	// Check is the check's name, CheckID its UUID.
	Check   string
	CheckID string
	// Target is the check's target (host, address, URL…), possibly empty.
	Target string
	Tags   map[string]string
	// Timeout is how long the check may take; ctx carries the same
	// deadline. Return by then: a plugin that does not answer in time is
	// killed and restarted by recon.
	Timeout time.Duration
	// Previous is the check's last result, or nil.
	Previous *Result
}

// Result is the outcome of one check run.
type Result struct {
	Status Status `json:"status"`
	// Output is the first line; LongOutput any further lines.
	Output     string   `json:"output"`
	LongOutput string   `json:"long_output,omitempty"`
	Metrics    []Metric `json:"metrics,omitempty"`
	// Duration is optional: zero means recon's own measurement is used.
	Duration time.Duration `json:"-"`
}

func result(s Status, format string, args []any) Result {
	if len(args) == 0 {
		return Result{Status: s, Output: format}
	}
	return Result{Status: s, Output: fmt.Sprintf(format, args...)}
}

// OK returns an OK result with a formatted output line.
func OK(format string, args ...any) Result { return result(StatusOK, format, args) }

// Warning returns a WARNING result.
func Warning(format string, args ...any) Result { return result(StatusWarning, format, args) }

// Critical returns a CRITICAL result.
func Critical(format string, args ...any) Result { return result(StatusCritical, format, args) }

// Unknown returns an UNKNOWN result: the check could not find out.
func Unknown(format string, args ...any) Result { return result(StatusUnknown, format, args) }

// With returns r with metrics appended.
func (r Result) With(metrics ...Metric) Result {
	r.Metrics = append(r.Metrics, metrics...)
	return r
}

// Kind is the type of a metric value.
type Kind int

const (
	KindFloat Kind = iota
	KindInt
	KindUint
	KindString
)

// Value is a metric value of one kind; the zero Value is float 0.
type Value struct {
	kind Kind
	f    float64
	i    int64
	u    uint64
	s    string
}

// Float, Int, Uint and String make values.
func Float(v float64) Value { return Value{kind: KindFloat, f: v} }
func Int(v int64) Value     { return Value{kind: KindInt, i: v} }
func Uint(v uint64) Value   { return Value{kind: KindUint, u: v} }
func String(v string) Value { return Value{kind: KindString, s: v} }

func (v Value) Kind() Kind { return v.kind }

// AsFloat returns a numeric value as float64 (ok is false for strings).
func (v Value) AsFloat() (f float64, ok bool) {
	switch v.kind {
	case KindInt:
		return float64(v.i), true
	case KindUint:
		return float64(v.u), true
	case KindString:
		return 0, false
	}
	return v.f, true
}

func (v Value) Int() int64     { return v.i }
func (v Value) Uint() uint64   { return v.u }
func (v Value) String() string { return v.s }

// MarshalJSON writes numbers as JSON numbers (NaN and ±Inf, which JSON
// cannot hold, as strings) and strings as strings.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.kind {
	case KindInt:
		return strconv.AppendInt(nil, v.i, 10), nil
	case KindUint:
		return strconv.AppendUint(nil, v.u, 10), nil
	case KindString:
		return json.Marshal(v.s)
	}
	if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
		return json.Marshal(strconv.FormatFloat(v.f, 'g', -1, 64))
	}
	return strconv.AppendFloat(nil, v.f, 'g', -1, 64), nil
}

// Metric is one named measurement.
type Metric struct {
	Name  string `json:"name"`
	Value Value  `json:"value"`
	Unit  string `json:"unit,omitempty"`
	// Warn and Crit are Nagios threshold ranges as text ("10", "~:5").
	Warn string   `json:"warn,omitempty"`
	Crit string   `json:"crit,omitempty"`
	Min  *float64 `json:"min,omitempty"`
	Max  *float64 `json:"max,omitempty"`
}

// FloatMetric, IntMetric, UintMetric and StringMetric make metrics.
func FloatMetric(name string, v float64) Metric { return Metric{Name: name, Value: Float(v)} }
func IntMetric(name string, v int64) Metric     { return Metric{Name: name, Value: Int(v)} }
func UintMetric(name string, v uint64) Metric   { return Metric{Name: name, Value: Uint(v)} }
func StringMetric(name string, v string) Metric { return Metric{Name: name, Value: String(v)} }
func (m Metric) WithUnit(unit string) Metric    { m.Unit = unit; return m }
func (m Metric) WithThresholds(warn, crit string) Metric {
	m.Warn, m.Crit = warn, crit
	return m
}

// WithRange sets the metric's minimum and maximum.
func (m Metric) WithRange(min, max float64) Metric {
	m.Min, m.Max = &min, &max
	return m
}

// Record is a result as a sink plugin receives it: the check's result
// with its identity and scheduling state.
type Record struct {
	Result
	CheckID   string            `json:"id"`
	Check     string            `json:"check"`
	Type      string            `json:"type"`
	Agent     string            `json:"agent,omitempty"`
	Target    string            `json:"target,omitempty"`
	Time      time.Time         `json:"time"`
	StateType string            `json:"state_type"` // "HARD" or "SOFT"
	Attempt   int               `json:"attempt"`
	Tags      map[string]string `json:"tags,omitempty"`
}

// Key identifies the record for idempotent writes: recon delivers at
// least once, so a sink that keys on it stores exactly one copy.
func (r *Record) Key() string {
	return r.CheckID + "/" + strconv.FormatInt(r.Time.UnixNano(), 10)
}

// Permanent marks a sink error that retrying cannot fix (the data itself
// is unacceptable). recon moves such a batch to the sink's dead-letter
// file instead of retrying it forever.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
