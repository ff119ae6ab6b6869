package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// Binary encoding of results, used by the durable spool and anything else
// that needs a compact, versioned form. Layout (version 1):
//
//	version byte | check id 16 bytes | strings check,type,agent,target,output,long_output
//	| varint time ns | varint duration ns | status byte | state type byte | uvarint attempt
//	| uvarint ntags, (key, value)… | uvarint nmetrics, metric…
//
// A string is uvarint length + bytes. A metric is name, kind byte, value
// (varint, uvarint, 8-byte float bits or string), unit, warn, crit, flags byte
// (1=min, 2=max) followed by the present 8-byte floats.
const codecVersion = 1

var errShort = errors.New("truncated")

// AppendBinary appends the binary encoding of r to b.
func (r *Result) AppendBinary(b []byte) []byte {
	b = append(b, codecVersion)
	b = append(b, r.CheckID[:]...)
	for _, s := range [...]string{r.Check, r.Type, r.Agent, r.Target, r.Output, r.LongOutput} {
		b = appendStr(b, s)
	}
	b = binary.AppendVarint(b, r.Time.UnixNano())
	b = binary.AppendVarint(b, int64(r.Duration))
	b = append(b, byte(r.Status), byte(r.StateType))
	b = binary.AppendUvarint(b, uint64(r.Attempt))
	b = binary.AppendUvarint(b, uint64(len(r.Tags)))
	if len(r.Tags) > 0 {
		keys := make([]string, 0, len(r.Tags))
		for k := range r.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic bytes for identical results
		for _, k := range keys {
			b = appendStr(b, k)
			b = appendStr(b, r.Tags[k])
		}
	}
	b = binary.AppendUvarint(b, uint64(len(r.Metrics)))
	for i := range r.Metrics {
		m := &r.Metrics[i]
		b = appendStr(b, m.Name)
		b = append(b, byte(m.Value.kind))
		switch m.Value.kind {
		case KindInt:
			b = binary.AppendVarint(b, int64(m.Value.num))
		case KindUint:
			b = binary.AppendUvarint(b, m.Value.num)
		case KindString:
			b = appendStr(b, m.Value.str)
		default:
			b = binary.LittleEndian.AppendUint64(b, m.Value.num)
		}
		b = appendStr(b, m.Unit)
		b = appendStr(b, m.Warn)
		b = appendStr(b, m.Crit)
		var flags byte
		if m.Min != nil {
			flags |= 1
		}
		if m.Max != nil {
			flags |= 2
		}
		b = append(b, flags)
		if m.Min != nil {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(*m.Min))
		}
		if m.Max != nil {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(*m.Max))
		}
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type reader struct {
	b   []byte
	err error
}

func (d *reader) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", what, errShort)
	}
}

func (d *reader) byte1(what string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *reader) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *reader) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *reader) u64(what string) uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *reader) str(what string) string {
	n := d.uvarint(what)
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a collection length and rejects lengths that cannot fit in the
// remaining bytes, so corrupt input cannot make us allocate gigabytes.
func (d *reader) count(what string, minSize int) int {
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minSize) {
		d.err = fmt.Errorf("%s: count %d exceeds remaining data", what, n)
		return 0
	}
	return int(n)
}

// DecodeBinary parses a result written by AppendBinary.
func DecodeBinary(b []byte) (Result, error) {
	var r Result
	d := reader{b: b}
	if v := d.byte1("version"); d.err == nil && v != codecVersion {
		return r, fmt.Errorf("decode result: unsupported encoding version %d", v)
	}
	if len(d.b) < 16 {
		return r, fmt.Errorf("decode result: check id: %w", errShort)
	}
	copy(r.CheckID[:], d.b[:16])
	d.b = d.b[16:]
	r.Check = d.str("check")
	r.Type = d.str("type")
	r.Agent = d.str("agent")
	r.Target = d.str("target")
	r.Output = d.str("output")
	r.LongOutput = d.str("long_output")
	r.Time = time.Unix(0, d.varint("time"))
	r.Duration = time.Duration(d.varint("duration"))
	r.Status = Status(d.byte1("status"))
	r.StateType = StateType(d.byte1("state type"))
	r.Attempt = int(d.uvarint("attempt"))
	if d.err == nil && (!r.Status.Valid() || r.StateType > Soft) {
		d.err = fmt.Errorf("invalid status %d or state type %d", r.Status, r.StateType)
	}
	if n := d.count("tags", 2); n > 0 {
		r.Tags = make(map[string]string, n)
		for i := 0; i < n && d.err == nil; i++ {
			k := d.str("tag key")
			r.Tags[k] = d.str("tag value")
		}
	}
	if n := d.count("metrics", 6); n > 0 {
		r.Metrics = make([]Metric, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			var m Metric
			m.Name = d.str("metric name")
			m.Value.kind = Kind(d.byte1("metric kind"))
			switch m.Value.kind {
			case KindInt:
				m.Value.num = uint64(d.varint("metric value"))
			case KindUint:
				m.Value.num = d.uvarint("metric value")
			case KindString:
				m.Value.str = d.str("metric value")
			case KindFloat:
				m.Value.num = d.u64("metric value")
			default:
				if d.err == nil {
					d.err = fmt.Errorf("metric %q: invalid kind %d", m.Name, m.Value.kind)
				}
			}
			m.Unit = d.str("metric unit")
			m.Warn = d.str("metric warn")
			m.Crit = d.str("metric crit")
			flags := d.byte1("metric flags")
			if flags&1 != 0 {
				f := math.Float64frombits(d.u64("metric min"))
				m.Min = &f
			}
			if flags&2 != 0 {
				f := math.Float64frombits(d.u64("metric max"))
				m.Max = &f
			}
			r.Metrics = append(r.Metrics, m)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Result{}, fmt.Errorf("decode result: %w", d.err)
	}
	return r, nil
}
