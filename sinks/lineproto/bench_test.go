package lineproto

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

// benchResult has 5 metrics and 2 tags, like a typical plugin result.
func benchResult() model.Result {
	return model.Result{CheckID: testID, Check: "disk", Target: "db1.example.net", Time: testTime, Status: model.Warning,
		Tags: map[string]string{"role": "db", "dc": "ams"},
		Metrics: []model.Metric{
			{Name: "used", Value: model.Float(81.25)}, {Name: "free_bytes", Value: model.Uint(123456789012)},
			{Name: "inodes", Value: model.Int(1234567)}, {Name: "time", Value: model.Float(0.0021)},
			{Name: "mount", Value: model.String("/var/lib/postgresql")}}}
}

// BenchmarkAppendResult encodes one result; "library" is the bare
// line-protocol encoder writing the same line, the floor for ours.
func BenchmarkAppendResult(b *testing.B) {
	r := benchResult()
	b.Run("recon", func(b *testing.B) {
		var e Encoder
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf, _, _ = e.Append(buf[:0], &r)
		}
		b.SetBytes(int64(len(buf)))
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "results/s")
	})
	b.Run("library", func(b *testing.B) {
		var e lineprotocol.Encoder
		id := r.CheckID.String()
		f1, _ := lineprotocol.FloatValue(81.25)
		f2, _ := lineprotocol.FloatValue(0.0021)
		mount := []byte("/var/lib/postgresql")
		b.ReportAllocs()
		for b.Loop() {
			e.Reset()
			e.StartLine("disk")
			e.AddTag("check_id", id)
			e.AddTag("dc", "ams")
			e.AddTag("role", "db")
			e.AddTag("target", "db1.example.net")
			e.AddField("used", f1)
			e.AddField("free_bytes", lineprotocol.UintValue(123456789012))
			e.AddField("inodes", lineprotocol.IntValue(1234567))
			e.AddField("metric_time", f2)
			v, _ := lineprotocol.NewValueFromBytes(lineprotocol.String, mount)
			e.AddField("mount", v)
			e.AddField("status_code", lineprotocol.IntValue(1))
			e.EndLine(testTime)
		}
		b.SetBytes(int64(len(e.Bytes())))
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "results/s")
	})
}

// BenchmarkDecode decodes a write of 1,000 lines; "library" only walks
// the same input with the bare decoder, the floor for ours.
func BenchmarkDecode(b *testing.B) {
	var data []byte
	var e Encoder
	r := benchResult()
	for i := range 1000 {
		r.Time = testTime.Add(time.Duration(i))
		data, _, _ = e.Append(data, &r)
	}
	b.Run("recon", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(data, lineprotocol.Nanosecond, testTime, "a"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "results/s")
	})
	b.Run("library", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			dec := lineprotocol.NewDecoderWithBytes(data)
			for dec.Next() {
				dec.Measurement()
				for k, _, _ := dec.NextTag(); k != nil; k, _, _ = dec.NextTag() {
				}
				for k, _, _ := dec.NextField(); k != nil; k, _, _ = dec.NextField() {
				}
				dec.Time(lineprotocol.Nanosecond, testTime)
			}
		}
		b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "results/s")
	})
}

// BenchmarkWriteBatchStdout measures the sink path: a batch of 500
// results encoded and written in one write.
func BenchmarkWriteBatchStdout(b *testing.B) {
	st := &Settings{}
	s, err := (&Type{Stdout: io.Discard}).New(&sink.Spec{Name: "lp", Settings: st}, sink.Env{})
	if err != nil {
		b.Fatal(err)
	}
	rs := make([]model.Result, 500)
	for i := range rs {
		rs[i] = benchResult()
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.WriteBatch(ctx, rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(500*float64(b.N)/b.Elapsed().Seconds(), "results/s")
}
