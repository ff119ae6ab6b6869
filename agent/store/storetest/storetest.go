// Package storetest is the conformance suite every trend store passes: the
// same writes, queried back through store.Store, with the same answers.
package storetest

import (
	"context"
	"math"
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

// Open returns a fresh, connected, empty store.
type Open func(t *testing.T) Store

// Base is a fixed time the suite writes around (a Monday, 10:00 UTC).
var Base = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func res(agent, check string, at time.Time, st model.Status, metrics ...model.Metric) model.Result {
	return model.Result{CheckID: model.CheckID(agent, check), Check: check, Agent: agent, Type: "nagios", Target: "10.0.0.1",
		Time: at, Duration: 12 * time.Millisecond, Status: st, StateType: model.Hard, Attempt: 1, Output: check + " " + st.String(),
		LongOutput: "line2", Tags: map[string]string{"role": "db"}, Metrics: metrics}
}

func num(name string, v float64) model.Metric { return model.Metric{Name: name, Value: model.Float(v)} }

func text(name, v string) model.Metric { return model.Metric{Name: name, Value: model.String(v)} }

// Run runs every conformance test.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"WriteAndQuery", testWriteAndQuery},
		{"Idempotent", testIdempotent},
		{"Rollups", testRollups},
		{"TextOnChange", testTextOnChange},
		{"Replay", testReplay},
		{"Alerts", testAlerts},
		{"Awkward", testAwkward},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func write(t *testing.T, s Store, rs ...model.Result) {
	t.Helper()
	if err := s.WriteBatch(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func series(t *testing.T, s Store, id uuid.UUID, metric string, from, to time.Time, step time.Duration) store.Series {
	t.Helper()
	ser, err := s.Series(context.Background(), store.SeriesQuery{CheckID: id, Metric: metric, From: from, To: to, Step: step})
	if err != nil {
		t.Fatal(err)
	}
	return ser
}

func testWriteAndQuery(t *testing.T, s Store) {
	ctx := context.Background()
	var rs []model.Result
	for i := 0; i < 10; i++ {
		rs = append(rs, res("a1", "load", Base.Add(time.Duration(i)*10*time.Second), model.Status(i%3), num("load1", float64(i)), num("load5", 1)))
	}
	write(t, s, rs...)
	id := model.CheckID("a1", "load")
	ser := series(t, s, id, "load1", Base, Base.Add(time.Hour), time.Second)
	if ser.Resolution != store.Raw || len(ser.Points) != 10 {
		t.Fatalf("raw series: %s, %d points", ser.Resolution, len(ser.Points))
	}
	for i, p := range ser.Points {
		if p.Value != float64(i) || !p.Time.Equal(Base.Add(time.Duration(i)*10*time.Second)) || p.Count != 1 {
			t.Errorf("point %d: %+v", i, p)
		}
	}
	if sub := series(t, s, id, "load1", Base.Add(25*time.Second), Base.Add(55*time.Second), time.Second); len(sub.Points) != 3 {
		t.Errorf("time range: %d points, want 3", len(sub.Points))
	}
	checks, err := s.Checks(ctx)
	if err != nil || len(checks) != 1 {
		t.Fatalf("checks: %v %+v", err, checks)
	}
	c := checks[0]
	if c.ID != id || c.Name != "load" || c.Agent != "a1" || c.Target != "10.0.0.1" || c.Tags["role"] != "db" ||
		c.Status != model.OK || !c.LastSeen.Equal(Base.Add(90*time.Second)) || !c.FirstSeen.Equal(Base) {
		t.Errorf("check info: %+v", c)
	}
	names, err := s.MetricNames(ctx, id)
	if err != nil || len(names) != 2 || names[0] != "load1" || names[1] != "load5" {
		t.Errorf("metric names: %v %v", names, err)
	}
	h, err := s.StatusHistory(ctx, id, Base, Base.Add(time.Hour), 3)
	if err != nil || len(h) != 3 || !h[0].Time.Equal(Base.Add(90*time.Second)) || h[0].Status != model.OK ||
		h[1].Status != model.Critical || h[0].Duration != 12*time.Millisecond || h[0].LongOutput != "line2" || h[0].Output != "load OK" {
		t.Errorf("history: %v %+v", err, h)
	}
}

func testIdempotent(t *testing.T, s Store) {
	var rs []model.Result
	for i := 0; i < 20; i++ {
		rs = append(rs, res("a1", "c", Base.Add(time.Duration(i)*time.Minute), model.OK, num("v", float64(i))))
	}
	write(t, s, rs...)
	write(t, s, rs...)       // a replay after a crash
	write(t, s, rs[5:12]...) // and a partial one
	id := model.CheckID("a1", "c")
	if n := len(series(t, s, id, "v", Base, Base.Add(time.Hour), time.Second).Points); n != 20 {
		t.Errorf("raw points after replays: %d, want 20", n)
	}
	roll := series(t, s, id, "v", Base, Base.Add(time.Hour), 5*time.Minute)
	var count int64
	var sum float64
	for _, p := range roll.Points {
		count += p.Count
		sum += p.Sum
	}
	if count != 20 || sum != 190 {
		t.Errorf("rollups counted replays: count %d sum %v, want 20 and 190", count, sum)
	}
	h, _ := s.StatusHistory(context.Background(), id, Base, Base.Add(time.Hour), 1000)
	if len(h) != 20 {
		t.Errorf("status rows: %d", len(h))
	}
}

func testRollups(t *testing.T, s Store) {
	// 5-minute buckets from 10:00: values 1..6 every minute in the first
	// bucket (10:00–10:04 → 1..5) and one in the second (10:05 → 6); an
	// out-of-order late value 100 at 10:02:30 joins the first bucket.
	var rs []model.Result
	for i := 0; i < 6; i++ {
		rs = append(rs, res("a1", "r", Base.Add(time.Duration(i)*time.Minute), model.OK, num("v", float64(i+1))))
	}
	write(t, s, rs...)
	write(t, s, res("a1", "r", Base.Add(150*time.Second), model.OK, num("v", 100)))
	id := model.CheckID("a1", "r")
	r5 := series(t, s, id, "v", Base, Base.Add(time.Hour), 10*time.Minute)
	if r5.Resolution != store.Roll5 || len(r5.Points) != 2 {
		t.Fatalf("5m: %s %+v", r5.Resolution, r5.Points)
	}
	b0, b1 := r5.Points[0], r5.Points[1]
	if !b0.Time.Equal(Base) || b0.Count != 6 || b0.Min != 1 || b0.Max != 100 || b0.Sum != 115 || math.Abs(b0.Value-115.0/6) > 1e-9 {
		t.Errorf("first 5m bucket: %+v", b0)
	}
	if !b1.Time.Equal(Base.Add(5*time.Minute)) || b1.Count != 1 || b1.Value != 6 {
		t.Errorf("second 5m bucket: %+v", b1)
	}
	r1 := series(t, s, id, "v", Base.Add(-time.Hour), Base.Add(2*time.Hour), 2*time.Hour)
	if r1.Resolution != store.Roll1 || len(r1.Points) != 1 || r1.Points[0].Count != 7 || r1.Points[0].Sum != 121 || !r1.Points[0].Time.Equal(Base) {
		t.Errorf("1h: %s %+v", r1.Resolution, r1.Points)
	}
	rd := series(t, s, id, "v", Base.Add(-48*time.Hour), Base.Add(48*time.Hour), 48*time.Hour)
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if rd.Resolution != store.RollD || len(rd.Points) != 1 || rd.Points[0].Count != 7 || !rd.Points[0].Time.Equal(day) {
		t.Errorf("1d: %s %+v", rd.Resolution, rd.Points)
	}
}

func testTextOnChange(t *testing.T, s Store) {
	vals := []string{"up", "up", "down", "down", "up"}
	for i, v := range vals {
		write(t, s, res("a1", "t", Base.Add(time.Duration(i)*time.Minute), model.OK, text("state", v)))
	}
	pts, err := s.TextSeries(context.Background(), store.SeriesQuery{CheckID: model.CheckID("a1", "t"), Metric: "state", From: Base, To: Base.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pts {
		got = append(got, p.Value+"@"+p.Time.Sub(Base).String())
	}
	if want := "up@0s down@2m0s up@4m0s"; joined(got) != want {
		t.Errorf("text changes: %s, want %s", joined(got), want)
	}
}

func joined(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func testReplay(t *testing.T, s Store) {
	write(t, s,
		res("a1", "x", Base.Add(2*time.Second), model.Warning, num("m", 2), text("s", "a")),
		res("a1", "y", Base.Add(1*time.Second), model.OK, num("m", 1)),
		res("a2", "x", Base.Add(2*time.Hour), model.Critical, num("m", 3)),
	)
	var got []string
	err := s.Replay(context.Background(), Base, Base.Add(3*time.Hour), func(r model.Result) error {
		got = append(got, r.Agent+"/"+r.Check+":"+r.Status.String())
		if r.Check == "x" && r.Agent == "a1" && (len(r.Metrics) != 2 || r.Metrics[0].Name != "m" || r.Metrics[1].Value.Str() != "a" || r.Tags["role"] != "db") {
			t.Errorf("replayed metrics/tags: %+v", r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a1/y:OK a1/x:WARNING a2/x:CRITICAL"; joined(got) != want {
		t.Errorf("replay order: %s, want %s", joined(got), want)
	}
}

func testAlerts(t *testing.T, s Store) {
	ctx := context.Background()
	tr := []store.AlertTransition{
		{Time: Base, Rule: "r", Key: "r|x", Labels: map[string]string{"check": "x"}, CheckID: model.CheckID("a1", "x"), From: "inactive", To: "firing", Severity: "critical", Value: 9.5, Message: "x hot"},
		{Time: Base.Add(time.Minute), Rule: "r", Key: "r|x", From: "firing", To: "resolved", Message: "x ok"},
	}
	if err := s.WriteAlerts(ctx, tr); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAlerts(ctx, tr); err != nil { // idempotent
		t.Fatal(err)
	}
	got, err := s.Alerts(ctx, Base.Add(-time.Hour), Base.Add(time.Hour))
	if err != nil || len(got) != 2 {
		t.Fatalf("alerts: %v %d", err, len(got))
	}
	if g := got[0]; g.To != "firing" || g.Labels["check"] != "x" || g.Value != 9.5 || g.Severity != "critical" || !g.Time.Equal(Base) {
		t.Errorf("alert: %+v", g)
	}
}

func testAwkward(t *testing.T, s Store) {
	r := res("a1", "odd 'name'; DROP TABLE x", Base, model.Unknown,
		num("nan", math.NaN()), num("inf", math.Inf(1)), num("ok", 1),
		text("nul", "a\x00b"), text("bad utf8", "\xff\xfe"))
	r.Output = "out\x00put with NUL"
	r.LongOutput = "\xff invalid utf8"
	write(t, s, r)
	id := model.CheckID("a1", "odd 'name'; DROP TABLE x")
	if n := len(series(t, s, id, "ok", Base, Base.Add(time.Minute), time.Second).Points); n != 1 {
		t.Errorf("finite metric next to NaN/Inf not stored: %d", n)
	}
	h, err := s.StatusHistory(context.Background(), id, Base, Base.Add(time.Minute), 10)
	if err != nil || len(h) != 1 || h[0].Status != model.Unknown {
		t.Errorf("result with awkward text not stored: %v %+v", err, h)
	}
	checks, _ := s.Checks(context.Background())
	found := false
	for _, c := range checks {
		found = found || c.ID == id
	}
	if !found {
		t.Error("check with awkward name missing")
	}
}
