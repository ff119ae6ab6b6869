package lineproto

import (
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/model"
)

// ParsePrecision maps InfluxDB's precision names to a precision.
func ParsePrecision(s string) (lineprotocol.Precision, error) {
	switch s {
	case "", "ns", "n":
		return lineprotocol.Nanosecond, nil
	case "us", "u":
		return lineprotocol.Microsecond, nil
	case "ms":
		return lineprotocol.Millisecond, nil
	case "s":
		return lineprotocol.Second, nil
	}
	return 0, fmt.Errorf("invalid precision %q (want ns, us, ms or s)", s)
}

// Decode parses line protocol into results, one per line: check = the
// measurement, check_id and target tags fill the result's identity, other
// tags become its tags, status_code (0-3) is the status (OK when absent)
// and every other field is a metric. A line without a timestamp gets now.
// agent scopes IDs derived from check names, like configured checks.
//
// Decoding is all or nothing: the first bad line fails the whole input
// with an error naming its line, so a client never has half a write
// silently accepted.
func Decode(data []byte, prec lineprotocol.Precision, now time.Time, agent string) ([]model.Result, error) {
	dec := lineprotocol.NewDecoderWithBytes(data)
	var out []model.Result
	for line := 1; dec.Next(); line++ {
		r, err := decodeLine(dec, prec, now, agent)
		if err != nil {
			return nil, fmt.Errorf("line protocol: point %d: %w", line, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func decodeLine(dec *lineprotocol.Decoder, prec lineprotocol.Precision, now time.Time, agent string) (model.Result, error) {
	var r model.Result
	m, err := dec.Measurement()
	if err != nil {
		return r, err
	}
	r.Check = string(m)
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return r, err
		}
		if k == nil {
			break
		}
		switch string(k) {
		case "check_id":
			id, err := uuid.ParseBytes(v)
			if err != nil {
				return r, fmt.Errorf("tag check_id %q is not a UUID", v)
			}
			r.CheckID = id
		case "target":
			r.Target = string(v)
		default:
			if r.Tags == nil {
				r.Tags = map[string]string{}
			}
			r.Tags[string(k)] = string(v)
		}
	}
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return r, err
		}
		if k == nil {
			break
		}
		name := string(k)
		if name == StatusField {
			st, err := statusFrom(v)
			if err != nil {
				return r, err
			}
			r.Status = st
			continue
		}
		if name == renamedStatusMetric {
			name = StatusField
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
			// Booleans have no metric kind of their own: 1 and 0 keep
			// them graphable and alertable.
			if v.BoolV() {
				val = model.Int(1)
			} else {
				val = model.Int(0)
			}
		default:
			return r, fmt.Errorf("field %q: unsupported value kind %v", name, v.Kind())
		}
		r.Metrics = append(r.Metrics, model.Metric{Name: name, Value: val})
	}
	t, err := dec.Time(prec, now)
	if err != nil {
		return r, err
	}
	r.Time = t
	if r.CheckID == uuid.Nil {
		r.CheckID = model.CheckID(agent, r.Check)
	}
	return r, nil
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
		return model.Unknown, fmt.Errorf("field status_code must be a number 0-3, got %v", v)
	}
	if n != math.Trunc(n) || n < 0 || n > 3 {
		return model.Unknown, fmt.Errorf("field status_code must be 0, 1, 2 or 3, got %v", v)
	}
	return model.Status(n), nil
}
