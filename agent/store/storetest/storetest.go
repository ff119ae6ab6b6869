// Package storetest is the conformance suite every trend store passes: the
// same writes through the sink side, queried back through store.Store,
// with the same answers. Expected values are computed by hand in the
// tests, not by a second implementation.
package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store"
)

// Store is what the suite needs: the write side (a sink) and the query side.
type Store interface {
	sink.Sink
	store.Store
}

// Open returns a fresh, connected, empty store that the test cleans up.
type Open func(t *testing.T) Store

// Base is a fixed time the suite writes around (a Monday, 10:00 UTC).
var Base = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// Run runs the conformance tests, each on a fresh store: all of them, or
// only those named.
func Run(t *testing.T, open Open, only ...string) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"WriteAndQuery", testWriteAndQuery},
		{"Idempotent", testIdempotent},
		{"Rollups", testRollups},
		{"RollupsLateAndReplayed", testRollupsLateAndReplayed},
		{"SeriesResolution", testSeriesResolution},
		{"Ordering", testOrdering},
		{"Precision", testPrecision},
		{"TextOnChange", testTextOnChange},
		{"TextLateData", testTextLateData},
		{"Replay", testReplay},
		{"ReplayPages", testReplayPages},
		{"Traps", testTraps},
		{"Alerts", testAlerts},
		{"Awkward", testAwkward},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ReadWhileWriting", testReadWhileWriting},
		{"Empty", testEmpty},
	}
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	for _, tc := range tests {
		if len(only) > 0 && !want[tc.name] {
			continue
		}
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// Res builds a result of check on agent a1 at Base+offset.
func Res(check string, offset time.Duration, st model.Status, metrics ...model.Metric) model.Result {
	return model.Result{CheckID: model.CheckID("a1", check), Check: check, Agent: "a1", Type: "nagios", Target: "10.0.0.1",
		Time: Base.Add(offset), Duration: 12 * time.Millisecond, Status: st, StateType: model.Hard, Attempt: 1,
		Output: check + " " + st.String(), LongOutput: "line2", Tags: map[string]string{"role": "db"}, Metrics: metrics}
}

// Num is a float metric.
func Num(name string, v float64) model.Metric { return model.Metric{Name: name, Value: model.Float(v)} }

// Text is a string metric.
func Text(name, v string) model.Metric { return model.Metric{Name: name, Value: model.String(v)} }

// ID is the check id Res uses.
func ID(check string) uuid.UUID { return model.CheckID("a1", check) }

func write(t testing.TB, s Store, rs ...model.Result) {
	t.Helper()
	if err := s.WriteBatch(context.Background(), rs); err != nil {
		t.Fatalf("write batch of %d: %v", len(rs), err)
	}
}

func series(t testing.TB, s Store, id uuid.UUID, metric string, from, to time.Time, step time.Duration) store.Series {
	t.Helper()
	ser, err := s.Series(context.Background(), store.SeriesQuery{CheckID: id, Metric: metric, From: from, To: to, Step: step})
	if err != nil {
		t.Fatalf("series %s: %v", metric, err)
	}
	return ser
}

func history(t testing.TB, s Store, id uuid.UUID, limit int) []store.StatusPoint {
	t.Helper()
	h, err := s.StatusHistory(context.Background(), id, Base.Add(-1000*time.Hour), Base.Add(1000*time.Hour), limit)
	if err != nil {
		t.Fatalf("status history: %v", err)
	}
	return h
}

func texts(t testing.TB, s Store, id uuid.UUID, metric string) string {
	t.Helper()
	pts, err := s.TextSeries(context.Background(), store.SeriesQuery{CheckID: id, Metric: metric, From: Base.Add(-1000 * time.Hour), To: Base.Add(1000 * time.Hour)})
	if err != nil {
		t.Fatalf("text series: %v", err)
	}
	var out []string
	for _, p := range pts {
		out = append(out, p.Value+"@"+p.Time.Sub(Base).String())
	}
	return strings.Join(out, " ")
}

// sums adds up a series' points.
func sums(ser store.Series) (count int64, sum float64) {
	for _, p := range ser.Points {
		count += p.Count
		sum += p.Sum
	}
	return count, sum
}

// pointsString renders points as time:count/min/max/sum/avg for messages
// and comparisons.
func pointsString(pts []store.Point) string {
	var out []string
	for _, p := range pts {
		out = append(out, fmt.Sprintf("%s:%d/%g/%g/%g/%g", p.Time.Sub(Base), p.Count, p.Min, p.Max, p.Sum, p.Value))
	}
	return strings.Join(out, " ")
}
