// Package model defines the data every part of recon exchanges: checks,
// results and metrics. It is defined once here and used everywhere.
package model

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Status is a Nagios service state. The numeric values are the Nagios plugin
// exit codes and the line-protocol status_code field.
type Status uint8

const (
	OK Status = iota
	Warning
	Critical
	Unknown
)

var statusNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Valid reports whether s is one of the four Nagios states.
func (s Status) Valid() bool { return s <= Unknown }

// ParseStatus accepts a state name (case-insensitive, "WARN"/"CRIT" allowed)
// or its exit code 0-3.
func ParseStatus(s string) (Status, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "OK", "0", "UP":
		return OK, nil
	case "WARNING", "WARN", "1":
		return Warning, nil
	case "CRITICAL", "CRIT", "2", "DOWN":
		return Critical, nil
	case "UNKNOWN", "3", "UNREACHABLE":
		return Unknown, nil
	}
	return Unknown, fmt.Errorf("invalid status %q (want OK, WARNING, CRITICAL, UNKNOWN or 0-3)", s)
}

func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Status) UnmarshalText(b []byte) error {
	v, err := ParseStatus(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Worst returns the more severe of two states using Nagios ordering
// (OK < WARNING < UNKNOWN < CRITICAL).
func Worst(a, b Status) Status {
	rank := func(s Status) int {
		switch s {
		case OK:
			return 0
		case Warning:
			return 1
		case Unknown:
			return 2
		default:
			return 3
		}
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// StateType is Nagios's soft/hard distinction: a non-OK result is SOFT until
// it has been seen max_attempts times in a row.
type StateType uint8

const (
	Hard StateType = iota
	Soft
)

func (t StateType) String() string {
	if t == Soft {
		return "SOFT"
	}
	return "HARD"
}

func (t StateType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

func (t *StateType) UnmarshalText(b []byte) error {
	switch strings.ToUpper(string(b)) {
	case "HARD", "":
		*t = Hard
	case "SOFT":
		*t = Soft
	default:
		return fmt.Errorf("invalid state type %q (want SOFT or HARD)", b)
	}
	return nil
}

// Namespace is the UUIDv5 namespace for check IDs derived from names.
var Namespace = uuid.MustParse("6b1f4c0e-6f5e-5d2a-9a43-72ec0a8f4391")

// CheckID derives the stable ID of a check that has no configured id:
// UUIDv5 of the check name in a namespace that is itself UUIDv5 of the agent
// name, so the same check name on many agents (scale-out) gives distinct
// series, while one agent's IDs stay stable across restarts. An empty agent
// uses Namespace directly.
func CheckID(agent, name string) uuid.UUID {
	ns := Namespace
	if agent != "" {
		ns = uuid.NewSHA1(Namespace, []byte(agent))
	}
	return uuid.NewSHA1(ns, []byte(name))
}

// Check is one configured check: what to run, against what, how often.
type Check struct {
	ID          uuid.UUID
	Name        string
	Type        string
	Target      string
	Period      time.Duration
	Timeout     time.Duration
	MaxAttempts int
	RetryPeriod time.Duration
	Tags        map[string]string
	// Settings is the decoded type-specific configuration; its concrete type
	// belongs to the check type named by Type.
	Settings any
	// Source is "file:line" of the definition, for error messages.
	Source string
	// Dir is the directory of the file that defined the check; relative
	// paths in Settings (scripts, plugins) resolve against it.
	Dir string
}

// Result is one observation of a check.
type Result struct {
	CheckID    uuid.UUID
	Check      string
	Type       string
	Agent      string
	Target     string
	Time       time.Time // start of the run, nanosecond precision
	Duration   time.Duration
	Status     Status
	StateType  StateType
	Attempt    int
	Output     string
	LongOutput string
	Metrics    []Metric
	Tags       map[string]string
}

// Key is the result's stable identity: sinks use it to write idempotently,
// so a replay after a crash leaves exactly one copy.
func (r *Result) Key() string {
	return r.CheckID.String() + "/" + fmt.Sprint(r.Time.UnixNano())
}

// Metric is one named measurement. Warn and Crit keep the threshold range
// text as configured or as the plugin printed it.
type Metric struct {
	Name  string
	Value Value
	Unit  string
	Warn  string
	Crit  string
	Min   *float64
	Max   *float64
}

// Kind is the type of a metric value (Reconnoiter's i/I/l/L/n/s collapsed to
// the four Go kinds that matter).
type Kind uint8

const (
	KindFloat Kind = iota
	KindInt
	KindUint
	KindString
)

var kindNames = [...]string{"float", "int", "uint", "string"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("invalid metric type %q (want float, int, uint or string)", s)
}

// Value is a metric value of one kind. The zero Value is float 0.
type Value struct {
	kind Kind
	num  uint64 // int64, uint64 or float64 bits
	str  string
}

func Float(f float64) Value  { return Value{kind: KindFloat, num: mathFloat64bits(f)} }
func Int(i int64) Value      { return Value{kind: KindInt, num: uint64(i)} }
func Uint(u uint64) Value    { return Value{kind: KindUint, num: u} }
func String(s string) Value  { return Value{kind: KindString, str: s} }
func (v Value) Kind() Kind   { return v.kind }
func (v Value) Int() int64   { return int64(v.num) }
func (v Value) Uint() uint64 { return v.num }
func (v Value) Str() string  { return v.str }

// Float returns the value as float64 (strings give 0 and ok=false).
func (v Value) Float() (f float64, ok bool) {
	switch v.kind {
	case KindFloat:
		return mathFloat64frombits(v.num), true
	case KindInt:
		return float64(int64(v.num)), true
	case KindUint:
		return float64(v.num), true
	}
	return 0, false
}

// IsNumeric reports whether the value is not a string.
func (v Value) IsNumeric() bool { return v.kind != KindString }

func (v Value) String() string {
	switch v.kind {
	case KindInt:
		return fmt.Sprint(int64(v.num))
	case KindUint:
		return fmt.Sprint(v.num)
	case KindString:
		return v.str
	}
	return formatFloat(mathFloat64frombits(v.num))
}

// Equal compares kind and value.
func (v Value) Equal(o Value) bool { return v == o }
