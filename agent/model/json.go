package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// AppendJSON appends r in the documented one-object-per-line JSON format
// (SPEC §4) without a trailing newline.
func (r *Result) AppendJSON(b []byte) []byte {
	b = append(b, `{"check":`...)
	b = appendJSONString(b, r.Check)
	b = append(b, `,"id":"`...)
	b = append(b, r.CheckID.String()...)
	b = append(b, `","target":`...)
	b = appendJSONString(b, r.Target)
	b = append(b, `,"time":"`...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","duration_ms":`...)
	b = strconv.AppendFloat(b, float64(r.Duration.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"status":"`...)
	b = append(b, r.Status.String()...)
	b = append(b, `","state_type":"`...)
	b = append(b, r.StateType.String()...)
	b = append(b, `","output":`...)
	b = appendJSONString(b, r.Output)
	b = append(b, `,"long_output":`...)
	b = appendJSONString(b, r.LongOutput)
	b = append(b, `,"metrics":[`...)
	for i := range r.Metrics {
		if i > 0 {
			b = append(b, ',')
		}
		b = r.Metrics[i].appendJSON(b)
	}
	b = append(b, ']')
	if r.Type != "" {
		b = append(b, `,"check_type":`...)
		b = appendJSONString(b, r.Type)
	}
	if r.Agent != "" {
		b = append(b, `,"agent":`...)
		b = appendJSONString(b, r.Agent)
	}
	if r.Attempt > 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(r.Attempt), 10)
	}
	if len(r.Tags) > 0 {
		tb, _ := json.Marshal(r.Tags) // map[string]string cannot fail
		b = append(b, `,"tags":`...)
		b = append(b, tb...)
	}
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler with AppendJSON.
func (r Result) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

func (m *Metric) appendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, m.Name)
	b = append(b, `,"value":`...)
	switch m.Value.kind {
	case KindInt:
		b = strconv.AppendInt(b, m.Value.Int(), 10)
	case KindUint:
		b = strconv.AppendUint(b, m.Value.Uint(), 10)
	case KindString:
		b = appendJSONString(b, m.Value.str)
	default:
		b = appendJSONFloat(b, mathFloat64frombits(m.Value.num))
	}
	b = append(b, `,"type":"`...)
	b = append(b, m.Value.kind.String()...)
	b = append(b, `","unit":`...)
	b = appendJSONString(b, m.Unit)
	b = append(b, `,"warn":`...)
	b = appendJSONString(b, m.Warn)
	b = append(b, `,"crit":`...)
	b = appendJSONString(b, m.Crit)
	b = append(b, `,"min":`...)
	b = appendOptFloat(b, m.Min)
	b = append(b, `,"max":`...)
	b = appendOptFloat(b, m.Max)
	return append(b, '}')
}

func appendOptFloat(b []byte, f *float64) []byte {
	if f == nil {
		return append(b, "null"...)
	}
	return appendJSONFloat(b, *f)
}

// appendJSONFloat writes non-finite values as strings, which JSON numbers
// cannot express; DecodeJSON reads them back.
func appendJSONFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

func appendJSONString(b []byte, s string) []byte {
	// Fast path: nothing to escape.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			enc, _ := json.Marshal(s) // strings always marshal
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// JSONResult is the wire form of a result in the JSON format, used when
// decoding results from outside (passive results, plugins written in other
// languages). Fields a sender may omit are pointers or have safe zero values.
type JSONResult struct {
	Check      string            `json:"check"`
	ID         string            `json:"id,omitempty"`
	Target     string            `json:"target,omitempty"`
	Time       string            `json:"time,omitempty"`
	DurationMS float64           `json:"duration_ms,omitempty"`
	Status     json.RawMessage   `json:"status"`
	StateType  string            `json:"state_type,omitempty"`
	Output     string            `json:"output,omitempty"`
	LongOutput string            `json:"long_output,omitempty"`
	Metrics    []JSONMetric      `json:"metrics,omitempty"`
	CheckType  string            `json:"check_type,omitempty"`
	Agent      string            `json:"agent,omitempty"`
	Attempt    int               `json:"attempt,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
}

// JSONMetric is the wire form of a metric.
type JSONMetric struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
	Type  string          `json:"type,omitempty"`
	Unit  string          `json:"unit,omitempty"`
	Warn  string          `json:"warn,omitempty"`
	Crit  string          `json:"crit,omitempty"`
	Min   *float64        `json:"min,omitempty"`
	Max   *float64        `json:"max,omitempty"`
}

// DecodeJSON parses one result in the JSON format. Missing time means now;
// missing id is derived from the agent and check name. Every field is validated: a bad
// value is an error naming the field, never a silent zero.
func DecodeJSON(data []byte, now time.Time) (Result, error) {
	var w JSONResult
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return Result{}, fmt.Errorf("decode result: %w", err)
	}
	if dec.More() {
		return Result{}, fmt.Errorf("decode result: trailing data after the object")
	}
	return w.Result(now)
}

// Result converts the wire form into a Result.
func (w *JSONResult) Result(now time.Time) (Result, error) {
	r := Result{Check: w.Check, Target: w.Target, Output: w.Output, LongOutput: w.LongOutput,
		Type: w.CheckType, Agent: w.Agent, Attempt: w.Attempt, Tags: w.Tags}
	if w.Check == "" {
		return r, fmt.Errorf("result: \"check\" is required")
	}
	if w.ID != "" {
		id, err := uuid.Parse(w.ID)
		if err != nil {
			return r, fmt.Errorf("result: id: %w", err)
		}
		r.CheckID = id
	} else {
		r.CheckID = CheckID(w.Agent, w.Check)
	}
	r.Time = now
	if w.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, w.Time)
		if err != nil {
			return r, fmt.Errorf("result: time: %w", err)
		}
		r.Time = t
	}
	if w.DurationMS < 0 || math.IsNaN(w.DurationMS) {
		return r, fmt.Errorf("result: duration_ms must be >= 0")
	}
	r.Duration = time.Duration(w.DurationMS * float64(time.Millisecond))
	if len(w.Status) == 0 {
		return r, fmt.Errorf("result: \"status\" is required")
	}
	st, err := decodeStatus(w.Status)
	if err != nil {
		return r, fmt.Errorf("result: status: %w", err)
	}
	r.Status = st
	if err := r.StateType.UnmarshalText([]byte(w.StateType)); err != nil {
		return r, fmt.Errorf("result: %w", err)
	}
	for i := range w.Metrics {
		m, err := w.Metrics[i].Metric()
		if err != nil {
			return r, fmt.Errorf("result: metrics[%d]: %w", i, err)
		}
		r.Metrics = append(r.Metrics, m)
	}
	return r, nil
}

func decodeStatus(raw json.RawMessage) (Status, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return ParseStatus(s)
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 || n > 3 {
		return Unknown, fmt.Errorf("want a state name or 0-3, got %s", raw)
	}
	return Status(n), nil
}

// Metric converts the wire form into a Metric, inferring the kind from the
// JSON value when "type" is absent.
func (w *JSONMetric) Metric() (Metric, error) {
	m := Metric{Name: w.Name, Unit: w.Unit, Warn: w.Warn, Crit: w.Crit, Min: w.Min, Max: w.Max}
	if w.Name == "" {
		return m, fmt.Errorf("\"name\" is required")
	}
	if len(w.Value) == 0 || string(w.Value) == "null" {
		return m, fmt.Errorf("%s: \"value\" is required", w.Name)
	}
	var text string
	isString := json.Unmarshal(w.Value, &text) == nil
	if !isString {
		text = string(w.Value)
	}
	kind := w.Type
	if kind == "" {
		switch {
		case isString:
			kind = "string"
		case bytes.ContainsAny(w.Value, ".eE"):
			kind = "float"
		case bytes.HasPrefix(w.Value, []byte("-")):
			kind = "int"
		default:
			if _, err := strconv.ParseInt(text, 10, 64); err == nil {
				kind = "int"
			} else {
				kind = "uint"
			}
		}
	}
	k, err := ParseKind(kind)
	if err != nil {
		return m, fmt.Errorf("%s: %w", w.Name, err)
	}
	v, err := ParseValue(k, text)
	if err != nil {
		return m, fmt.Errorf("%s: %w", w.Name, err)
	}
	m.Value = v
	return m, nil
}

// ParseValue parses text as a value of kind k.
func ParseValue(k Kind, text string) (Value, error) {
	switch k {
	case KindString:
		return String(text), nil
	case KindInt:
		i, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("invalid int value %q", text)
		}
		return Int(i), nil
	case KindUint:
		u, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("invalid uint value %q", text)
		}
		return Uint(u), nil
	default:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return Value{}, fmt.Errorf("invalid float value %q", text)
		}
		return Float(f), nil
	}
}
