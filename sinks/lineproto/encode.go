// Package lineproto encodes results as InfluxDB line protocol, decodes
// line protocol into results (POST /api/v1/write), and is the lineproto
// sink: stdout, a file, or HTTP to any InfluxDB-compatible write endpoint.
//
// A result is one line: measurement = check name; tags check_id, target
// (when not empty) and the result's tags; fields = every metric plus
// status_code (0-3); timestamp = the result's time. Escaping is the
// influxdata/line-protocol library's; names.go says how names that cannot
// be written as they are get renamed.
package lineproto

import (
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/model"
)

// Encoder appends results as line protocol. The zero value writes
// nanosecond timestamps and is ready to use; it reuses its scratch space,
// so it is not safe for concurrent use.
type Encoder struct {
	// Precision of the timestamps written (truncated to it).
	Precision lineprotocol.Precision
	// UintAsInt writes uint metrics as integers, for receivers without
	// an unsigned type (InfluxDB 1.x answers 400 "invalid number" to a
	// whole write with one 'u' value). A value above MaxInt64 is then
	// left out and counted.
	UintAsInt bool

	enc     lineprotocol.Encoder
	tags    []tag
	keys    []string            // field keys of the current line
	seen    map[string]struct{} // the same, when a result has many metrics
	id      [36]byte
	idKey   []byte
	scratch []byte
}

type tag struct{ key, orig, val string }

// manyFields is where duplicate detection switches from a linear scan of
// the keys written so far to a map.
const manyFields = 32

// Append appends r as one line to b.
//
// It returns how many metrics and tags it left out because line protocol
// cannot carry them: NaN and ±Inf floats (line protocol has no literal for
// them), a second metric or tag whose key is the same as an earlier one's
// (InfluxDB would keep only the last), and with UintAsInt a uint above
// MaxInt64. The caller must count or report them; nothing else is left
// out. A tag with an empty value is not written: line protocol has no
// empty tag value, and InfluxDB treats an absent tag as empty.
//
// The error is for a result that cannot be a line at all (a time outside
// 1677-2262, a status that is not 0-3); b is then returned unchanged.
func (e *Encoder) Append(b []byte, r *model.Result) ([]byte, int, error) {
	if e.Precision > lineprotocol.Second {
		return b, 0, fmt.Errorf("lineproto: invalid precision %d", e.Precision)
	}
	if !r.Status.Valid() {
		return b, 0, fmt.Errorf("lineproto: check %q: invalid status %d (want 0-3)", r.Check, r.Status)
	}
	e.enc.SetBuffer(b)
	e.enc.SetPrecision(e.Precision)
	e.enc.StartLine(measurement(r.Check))
	skipped := e.addTags(r)
	skipped += e.addFields(r)
	e.enc.EndLine(r.Time)
	if err := e.enc.Err(); err != nil {
		e.enc.SetBuffer(nil)
		return b, 0, fmt.Errorf("lineproto: encode check %q: %w", r.Check, err)
	}
	out := e.enc.Bytes()
	e.enc.SetBuffer(nil) // do not keep the caller's buffer alive
	return out, skipped, nil
}

func (e *Encoder) addTags(r *model.Result) (skipped int) {
	e.tags = e.tags[:0]
	for k, v := range r.Tags {
		if v == "" {
			continue
		}
		e.tags = append(e.tags, tag{key: tagKey(k), orig: k, val: v})
	}
	if r.Target != "" {
		e.tags = append(e.tags, tag{key: TargetTag, val: r.Target})
	}
	// check_id is written from e.id below; val stays empty.
	e.tags = append(e.tags, tag{key: CheckIDTag})
	// The library requires tags in key order. Sanitised keys can collide;
	// ordering ties by the original key keeps the choice deterministic.
	slices.SortFunc(e.tags, func(a, b tag) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.orig, b.orig)
	})
	for i, t := range e.tags {
		if i > 0 && t.key == e.tags[i-1].key {
			skipped++
			continue
		}
		if t.key == CheckIDTag {
			if e.idKey == nil {
				e.idKey = []byte(CheckIDTag)
			}
			e.enc.AddTagRaw(e.idKey, appendUUID(e.id[:0], r.CheckID))
			continue
		}
		e.enc.AddTag(t.key, sanitize(t.val, ""))
	}
	clear(e.tags) // drop references to the result's strings
	return skipped
}

func (e *Encoder) addFields(r *model.Result) (skipped int) {
	e.keys = e.keys[:0]
	if len(r.Metrics) > manyFields {
		if e.seen == nil {
			e.seen = make(map[string]struct{}, len(r.Metrics))
		}
		clear(e.seen)
	}
	for i := range r.Metrics {
		m := &r.Metrics[i]
		key := FieldKey(m.Name)
		if e.duplicate(key, len(r.Metrics) > manyFields) {
			skipped++
			continue
		}
		var v lineprotocol.Value
		switch m.Value.Kind() {
		case model.KindInt:
			v = lineprotocol.IntValue(m.Value.Int())
		case model.KindUint:
			u := m.Value.Uint()
			switch {
			case !e.UintAsInt:
				v = lineprotocol.UintValue(u)
			case u <= math.MaxInt64:
				v = lineprotocol.IntValue(int64(u))
			default:
				skipped++
				continue
			}
		case model.KindString:
			// Invalid UTF-8 cannot be carried; U+FFFD keeps the rest.
			// Copying into scratch avoids an allocation per value (the
			// library appends the bytes before the next use).
			e.scratch = append(e.scratch[:0], m.Value.Str()...)
			if !utf8.Valid(e.scratch) {
				e.scratch = append(e.scratch[:0], strings.ToValidUTF8(m.Value.Str(), "\uFFFD")...)
			}
			v, _ = lineprotocol.NewValueFromBytes(lineprotocol.String, e.scratch)
		default:
			f, _ := m.Value.Float()
			fv, ok := lineprotocol.FloatValue(f)
			if !ok { // NaN, ±Inf
				skipped++
				continue
			}
			v = fv
		}
		e.enc.AddField(key, v)
		e.keys = append(e.keys, key)
	}
	e.enc.AddField(StatusField, lineprotocol.IntValue(int64(r.Status)))
	clear(e.keys)
	if e.seen != nil {
		clear(e.seen)
	}
	return skipped
}

// duplicate reports whether key was already written on this line, and
// remembers it otherwise.
func (e *Encoder) duplicate(key string, useMap bool) bool {
	if useMap {
		if _, ok := e.seen[key]; ok {
			return true
		}
		e.seen[key] = struct{}{}
		return false
	}
	return slices.Contains(e.keys, key)
}

// AppendResult is Append with a one-off Encoder (nanosecond timestamps).
func AppendResult(b []byte, r *model.Result) ([]byte, int, error) {
	var e Encoder
	return e.Append(b, r)
}

// appendUUID appends the canonical 36-character form of id without the
// allocation of id.String().
func appendUUID(b []byte, id uuid.UUID) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], id[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], id[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], id[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], id[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], id[10:])
	return append(b, buf[:]...)
}
