package lineproto

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/model"
)

// ParsePrecision maps the precision names of InfluxDB's write APIs (v2's
// ns, us, ms, s and v1's n, u) to a precision. v1's m and h are refused:
// they would fold every result within a minute or an hour onto one time.
func ParsePrecision(s string) (lineprotocol.Precision, error) {
	switch s {
	case "", "ns", "n":
		return lineprotocol.Nanosecond, nil
	case "us", "u", "µs":
		return lineprotocol.Microsecond, nil
	case "ms":
		return lineprotocol.Millisecond, nil
	case "s":
		return lineprotocol.Second, nil
	}
	return 0, fmt.Errorf("invalid precision %q (want ns, us, ms or s)", s)
}

// maxListed bounds how many bad lines an Error lists.
const maxListed = 10

// Error rejects a whole write: it lists its first bad lines.
type Error struct {
	Lines  []LineError // the first maxListed bad lines, in order
	Bad    int         // how many points were bad
	Points int         // how many points the input held
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line protocol: %d of %d points invalid, none accepted: ", e.Bad, e.Points)
	for i, l := range e.Lines {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(l.Error())
	}
	if more := e.Bad - len(e.Lines); more > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	return b.String()
}

// LineError is one bad point.
type LineError struct {
	Line   int // 1-based; 0 when it could not be located
	Column int // 1-based byte column; 0 when only the line is known
	Point  int // 1-based index of the point in the input
	Err    error
}

func (e *LineError) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("line %d:%d: %v", e.Line, e.Column, e.Err)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("point %d: %v", e.Point, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// Decode parses line protocol into results, one per point: check = the
// measurement; the check_id tag (a UUID) is the check ID, derived from the
// check name with model.CheckID(agent, name) like a configured check's
// when absent; the target tag is the target; other tags are the result's
// tags; status_code (an integer 0-3, or a float with such a value) is the
// status, OK when absent; every other field is a metric of its kind
// (booleans become int 1/0). Keys renamed by the encoder (metric_…,
// tag_…, see FieldKey) are named back. A point without a timestamp gets
// now, truncated to prec as InfluxDB does.
//
// Decoding is all or nothing: if any point is bad, Decode returns no
// results and an *Error listing the bad lines with line and column, so a
// client never has half a write silently accepted.
func Decode(data []byte, prec lineprotocol.Precision, now time.Time, agent string) ([]model.Result, error) {
	if prec > lineprotocol.Second {
		return nil, fmt.Errorf("line protocol: invalid precision %d", prec)
	}
	d := decoder{data: data, prec: prec, now: now.Truncate(prec.Duration()), agent: agent}
	dec := lineprotocol.NewDecoderWithBytes(data)
	var out []model.Result
	var bad Error
	for dec.Next() {
		bad.Points++
		r, p := d.point(dec)
		if p != nil {
			bad.Bad++
			// Only listed errors are located: locating is a scan of the
			// input, and a large write may have a bad line per line.
			if len(bad.Lines) < maxListed {
				bad.Lines = append(bad.Lines, d.locate(p, bad.Points))
			}
			out = nil
			continue
		}
		if bad.Bad == 0 {
			out = append(out, r)
		}
	}
	if err := dec.Err(); err != nil { // I/O only: cannot happen on bytes
		return nil, fmt.Errorf("line protocol: %w", err)
	}
	if bad.Bad > 0 {
		return nil, &bad
	}
	return out, nil
}

type decoder struct {
	data  []byte
	prec  lineprotocol.Precision
	now   time.Time
	agent string

	// Per point. anchor is the offset of a token known to be on the
	// point's first line, to place errors about tokens that were
	// unescaped into the library's buffer (their offset is unknown).
	anchor int
	first  *pending

	metrics []model.Metric    // scratch for the point's metrics
	names   map[string]string // interned names and tag values
}

// maxInterned bounds the strings a Decode call interns: a write repeats
// the same measurements, keys and targets line after line.
const maxInterned = 4096

func (d *decoder) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.names == nil {
		d.names = make(map[string]string)
	}
	if len(d.names) < maxInterned {
		d.names[s] = s
	}
	return s
}

// pending is an error found in a point: where the library placed it, or
// its offset in data, or failing both the offset of a token on the same
// line.
type pending struct {
	line, col int // from the library; 0 if not
	off       int // byte offset in data, -1 if unknown
	anchor    int
	err       error
}

func (d *decoder) point(dec *lineprotocol.Decoder) (model.Result, *pending) {
	d.anchor, d.first = -1, nil
	clear(d.metrics)
	d.metrics = d.metrics[:0]
	var r model.Result
	m, err := dec.Measurement()
	if err != nil {
		return r, d.syntax(err)
	}
	d.note(m)
	if endsWithBackslash(m) {
		d.fail(m, fmt.Errorf("measurement %s ends with a backslash", quote(m)))
	}
	r.Check = d.intern(m)
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return r, d.syntax(err)
		}
		if k == nil {
			break
		}
		d.note(k)
		d.note(v)
		if endsWithBackslash(k) || endsWithBackslash(v) {
			d.fail(k, fmt.Errorf("tag %s=%s ends with a backslash", quote(k), quote(v)))
			continue
		}
		switch string(k) {
		case CheckIDTag:
			if r.CheckID != uuid.Nil {
				d.fail(k, errors.New("tag check_id given twice"))
			}
			id, err := uuid.ParseBytes(v)
			if err != nil {
				d.fail(v, fmt.Errorf("tag check_id %s is not a UUID", quote(v)))
			}
			r.CheckID = id
		case TargetTag:
			if r.Target != "" {
				d.fail(k, errors.New("tag target given twice"))
			}
			r.Target = d.intern(v)
		default:
			name := tagName(d.intern(k))
			if r.Tags == nil {
				r.Tags = make(map[string]string, 4)
			}
			if _, dup := r.Tags[name]; dup {
				d.fail(k, fmt.Errorf("tag %s given twice", quote([]byte(name))))
			}
			r.Tags[name] = d.intern(v)
		}
	}
	var seen map[string]struct{} // only for points with many fields
	hasStatus := false
	for first := true; ; first = false {
		k, v, err := dec.NextField()
		if err != nil {
			return r, d.syntax(err)
		}
		if k == nil {
			break
		}
		if first {
			d.note(k)
		}
		if endsWithBackslash(k) {
			d.fail(k, fmt.Errorf("field key %s ends with a backslash", quote(k)))
			continue
		}
		if string(k) == StatusField {
			if hasStatus {
				d.fail(k, errors.New("field status_code given twice"))
			}
			hasStatus = true
			st, err := statusFrom(v)
			if err != nil {
				d.fail(k, err)
			}
			r.Status = st
			continue
		}
		name := MetricName(d.intern(k))
		if duplicateMetric(d.metrics, name, &seen) {
			d.fail(k, fmt.Errorf("field %s: metric %s given twice", quote(k), quote([]byte(name))))
			continue
		}
		var val model.Value
		switch v.Kind() {
		case lineprotocol.Int:
			val = model.Int(v.IntV())
		case lineprotocol.Uint:
			val = model.Uint(v.UintV())
		case lineprotocol.Float:
			val = model.Float(v.FloatV())
		case lineprotocol.String:
			val = model.String(v.StringV())
		case lineprotocol.Bool:
			// No boolean metric kind: 1 and 0 stay graphable and
			// alertable.
			if v.BoolV() {
				val = model.Int(1)
			} else {
				val = model.Int(0)
			}
		default:
			d.fail(k, fmt.Errorf("field %s: unsupported value kind %v", quote(k), v.Kind()))
			continue
		}
		d.metrics = append(d.metrics, model.Metric{Name: name, Value: val})
	}
	ts, err := dec.TimeBytes()
	if err != nil {
		return r, d.syntax(err)
	}
	r.Time = d.now
	if ts != nil {
		n, err := strconv.ParseInt(string(ts), 10, 64)
		mul := int64(d.prec.Duration())
		switch {
		case err != nil && errors.Is(err, strconv.ErrRange), n > math.MaxInt64/mul || n < math.MinInt64/mul:
			d.fail(ts, fmt.Errorf("timestamp %s out of range at precision %s (1677-2262)", quote(ts), d.prec))
		case err != nil:
			d.fail(ts, fmt.Errorf("invalid timestamp %s", quote(ts)))
		}
		r.Time = time.Unix(0, n*mul)
	}
	if d.first != nil {
		d.first.anchor = d.anchor
		return r, d.first
	}
	if len(d.metrics) > 0 {
		r.Metrics = slices.Clone(d.metrics) // one exact allocation per result
	}
	if r.CheckID == uuid.Nil {
		r.CheckID = model.CheckID(d.agent, r.Check)
	}
	return r, nil
}

// note records tok as the point's anchor if it is the first token seen
// whose place in data is known.
func (d *decoder) note(tok []byte) {
	if d.anchor < 0 {
		d.anchor = d.offset(tok)
	}
}

// fail records err about tok unless the point already has an error.
func (d *decoder) fail(tok []byte, err error) {
	if d.first == nil {
		d.first = &pending{off: d.offset(tok), anchor: -1, err: err}
	}
}

// syntax returns an error of the library as pending. An error found
// earlier in the point wins: it is first in the line.
func (d *decoder) syntax(err error) *pending {
	if d.first != nil {
		d.first.anchor = d.anchor
		return d.first
	}
	var de *lineprotocol.DecodeError
	if errors.As(err, &de) {
		return &pending{line: int(de.Line), col: de.Column, off: -1, err: de.Err}
	}
	return &pending{off: -1, anchor: d.anchor, err: err}
}

func (d *decoder) locate(p *pending, point int) LineError {
	le := LineError{Line: p.line, Column: p.col, Point: point, Err: p.err}
	switch {
	case p.line > 0:
	case p.off >= 0:
		le.Line, le.Column = d.position(p.off)
	case p.anchor >= 0:
		le.Line, _ = d.position(p.anchor)
	}
	return le
}

// offset returns where tok lies in data, or -1 when tok is not a slice of
// data (the library unescaped it into its own buffer). The decoder hands
// out unescaped tokens as slices of its input, so their place is known.
func (d *decoder) offset(tok []byte) int {
	if len(tok) == 0 || len(d.data) == 0 {
		return -1
	}
	off := cap(d.data) - cap(tok)
	if off < 0 || off >= len(d.data) || &d.data[off] != &tok[0] {
		return -1
	}
	return off
}

// position converts a byte offset to a 1-based line and byte column.
func (d *decoder) position(off int) (line, col int) {
	before := d.data[:off]
	line = 1 + bytes.Count(before, []byte{'\n'})
	return line, off - bytes.LastIndexByte(before, '\n')
}

func endsWithBackslash(b []byte) bool { return len(b) > 0 && b[len(b)-1] == '\\' }

// duplicateMetric reports whether metrics already holds name; past
// manyFields metrics it switches to a map.
func duplicateMetric(metrics []model.Metric, name string, seen *map[string]struct{}) bool {
	if len(metrics) < manyFields {
		for i := range metrics {
			if metrics[i].Name == name {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*len(metrics))
		for i := range metrics {
			(*seen)[metrics[i].Name] = struct{}{}
		}
	}
	if _, ok := (*seen)[name]; ok {
		return true
	}
	(*seen)[name] = struct{}{}
	return false
}

func statusFrom(v lineprotocol.Value) (model.Status, error) {
	var n float64
	switch v.Kind() {
	case lineprotocol.Int:
		n = float64(v.IntV())
	case lineprotocol.Uint:
		n = float64(v.UintV())
	case lineprotocol.Float:
		n = v.FloatV()
	default:
		return model.Unknown, fmt.Errorf("field status_code must be a number 0-3, got %s", showValue(v))
	}
	if n != math.Trunc(n) || n < 0 || n > 3 {
		return model.Unknown, fmt.Errorf("field status_code must be 0, 1, 2 or 3, got %s", showValue(v))
	}
	return model.Status(n), nil
}

// quote quotes a token for an error message, cut to 64 bytes: a client's
// 64 KiB string must not become a 64 KiB error.
func quote(b []byte) string {
	const max = 64
	if len(b) <= max {
		return strconv.Quote(string(b))
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return strconv.Quote(string(b[:cut])) + "…"
}

func showValue(v lineprotocol.Value) string {
	if v.Kind() == lineprotocol.String {
		return quote(v.BytesV())
	}
	return v.String()
}
