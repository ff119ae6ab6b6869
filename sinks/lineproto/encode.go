// Package lineproto encodes results as InfluxDB line protocol and decodes
// line protocol into results, and provides the lineproto sink (stdout, a
// file, or HTTP to any InfluxDB-compatible write endpoint).
//
// A result becomes one line: measurement = check name; tags check_id,
// target and the check's tags; fields = each metric plus status_code (0-3);
// timestamp = the result's time in nanoseconds.
package lineproto

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/model"
)

// StatusField is the field that carries the Nagios status code.
const StatusField = "status_code"

// renamedStatusMetric is what a metric literally named status_code becomes,
// so it cannot overwrite the status.
const renamedStatusMetric = "metric_status_code"

// Encoder appends results as line protocol. The zero value is ready to use;
// it is not safe for concurrent use.
type Encoder struct {
	enc  lineprotocol.Encoder
	keys []string
}

// Append appends r as one line to b. It returns the number of metrics that
// line protocol cannot carry (NaN and ±Inf floats): they are left out of
// the line and the caller must count or report them.
func (e *Encoder) Append(b []byte, r *model.Result) ([]byte, int, error) {
	e.enc.SetBuffer(b)
	e.enc.SetPrecision(lineprotocol.Nanosecond)
	e.enc.StartLine(sanitize(r.Check, "check"))
	e.keys = e.keys[:0]
	tags := map[string]string{}
	for k, v := range r.Tags {
		tags[sanitize(k, "tag")] = v
	}
	tags["check_id"] = r.CheckID.String()
	if r.Target != "" {
		tags["target"] = r.Target
	}
	for k := range tags {
		e.keys = append(e.keys, k)
	}
	sort.Strings(e.keys)
	for _, k := range e.keys {
		if v := tags[k]; v != "" {
			e.enc.AddTag(k, sanitize(v, "_"))
		}
	}
	skipped := 0
	for i := range r.Metrics {
		m := &r.Metrics[i]
		name := sanitize(m.Name, "metric")
		if name == StatusField {
			name = renamedStatusMetric
		}
		var v lineprotocol.Value
		switch m.Value.Kind() {
		case model.KindInt:
			v = lineprotocol.IntValue(m.Value.Int())
		case model.KindUint:
			v = lineprotocol.UintValue(m.Value.Uint())
		case model.KindString:
			sv, ok := lineprotocol.StringValue(strings.ToValidUTF8(m.Value.Str(), "\uFFFD"))
			if !ok {
				skipped++
				continue
			}
			v = sv
		default:
			f, _ := m.Value.Float()
			fv, ok := lineprotocol.FloatValue(f)
			if !ok || math.IsNaN(f) {
				skipped++
				continue
			}
			v = fv
		}
		e.enc.AddField(name, v)
	}
	e.enc.AddField(StatusField, lineprotocol.IntValue(int64(r.Status)))
	e.enc.EndLine(r.Time)
	if err := e.enc.Err(); err != nil {
		e.enc.ClearErr()
		return b, skipped, fmt.Errorf("lineproto: encode %s: %w", r.Check, err)
	}
	return e.enc.Bytes(), skipped, nil
}

// AppendResult is Append with a one-off Encoder.
func AppendResult(b []byte, r *model.Result) ([]byte, int, error) {
	var e Encoder
	return e.Append(b, r)
}

// sanitize makes s a valid line-protocol key or tag value: control
// characters become '_', invalid UTF-8 becomes U+FFFD, a trailing backslash
// (which would escape the separator) becomes '_', and an empty string
// becomes empty (the caller's fallback name is used for keys).
func sanitize(s, empty string) string {
	if s == "" {
		if empty == "_" {
			return ""
		}
		return empty
	}
	ok := utf8.ValidString(s) && s[len(s)-1] != '\\'
	for i := 0; ok && i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			ok = false
		}
	}
	if ok {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, s)
	if strings.HasSuffix(s, "\\") {
		s = s[:len(s)-1] + "_"
	}
	return s
}
