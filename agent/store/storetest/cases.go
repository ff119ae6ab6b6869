package storetest

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/store"
)

func testWriteAndQuery(t *testing.T, s Store) {
	ctx := context.Background()
	var rs []model.Result
	for i := 0; i < 10; i++ {
		rs = append(rs, Res("load", time.Duration(i)*10*time.Second, model.Status(i%3), Num("load1", float64(i)), Num("load5", 1)))
	}
	write(t, s, rs...)
	id := ID("load")
	ser := series(t, s, id, "load1", Base, Base.Add(time.Hour), time.Second)
	if ser.Resolution != store.Raw || len(ser.Points) != 10 || ser.CheckID != id || ser.Metric != "load1" {
		t.Fatalf("raw series: %s %s %s, %d points", ser.CheckID, ser.Metric, ser.Resolution, len(ser.Points))
	}
	for i, p := range ser.Points {
		v := float64(i)
		if p.Value != v || !p.Time.Equal(Base.Add(time.Duration(i)*10*time.Second)) || p.Count != 1 || p.Min != v || p.Max != v || p.Sum != v {
			t.Errorf("point %d: %+v", i, p)
		}
	}
	// [From, To] is inclusive at both ends.
	if sub := series(t, s, id, "load1", Base.Add(20*time.Second), Base.Add(50*time.Second), time.Second); len(sub.Points) != 4 {
		t.Errorf("time range [20s, 50s]: %d points, want 4", len(sub.Points))
	}
	checks, err := s.Checks(ctx)
	if err != nil || len(checks) != 1 {
		t.Fatalf("checks: %v %+v", err, checks)
	}
	c := checks[0]
	if c.ID != id || c.Name != "load" || c.Agent != "a1" || c.Type != "nagios" || c.Target != "10.0.0.1" || c.Tags["role"] != "db" ||
		c.Status != model.OK || c.StateType != model.Hard || c.Output != "load OK" || !c.Time.Equal(Base.Add(90*time.Second)) ||
		!c.LastSeen.Equal(Base.Add(90*time.Second)) || !c.FirstSeen.Equal(Base) {
		t.Errorf("check info: %+v", c)
	}
	names, err := s.MetricNames(ctx, id)
	if err != nil || len(names) != 2 || names[0] != "load1" || names[1] != "load5" {
		t.Errorf("metric names: %v %v", names, err)
	}
	h := history(t, s, id, 3)
	if len(h) != 3 || !h[0].Time.Equal(Base.Add(90*time.Second)) || h[0].Status != model.OK || h[1].Status != model.Critical ||
		h[2].Status != model.Warning || h[0].Duration != 12*time.Millisecond || h[0].LongOutput != "line2" || h[0].Output != "load OK" ||
		h[0].Attempt != 1 || h[0].StateType != model.Hard {
		t.Errorf("history: %+v", h)
	}
	// A later result of a known check updates its last status.
	soft := Res("load", 2*time.Minute, model.Critical)
	soft.StateType, soft.Attempt, soft.Output, soft.Tags = model.Soft, 2, "load high", map[string]string{"role": "web"}
	write(t, s, soft)
	checks, _ = s.Checks(ctx)
	if c := checks[0]; len(checks) != 1 || c.Status != model.Critical || c.StateType != model.Soft || c.Output != "load high" ||
		!c.Time.Equal(soft.Time) || !c.FirstSeen.Equal(Base) || c.Tags["role"] != "web" {
		t.Errorf("check info after a newer result: %+v", checks)
	}
	// An older (late) result does not.
	write(t, s, Res("load", -time.Minute, model.Unknown))
	checks, _ = s.Checks(ctx)
	if c := checks[0]; c.Status != model.Critical || !c.Time.Equal(soft.Time) || !c.FirstSeen.Equal(Base.Add(-time.Minute)) {
		t.Errorf("check info after a late result: %+v", c)
	}
}

func testIdempotent(t *testing.T, s Store) {
	var rs []model.Result
	for i := 0; i < 20; i++ {
		rs = append(rs, Res("c", time.Duration(i)*time.Minute, model.OK, Num("v", float64(i)), Text("state", []string{"up", "down"}[i/10])))
	}
	trap := trapResult(time.Minute, "linkDown", 3)
	rs = append(rs, trap)
	write(t, s, rs...)
	write(t, s, rs...) // the same batch again (a retry after an ambiguous commit)
	write(t, s, rs...) // and a third time
	write(t, s, rs[5:12]...)
	// A replay that mixes stored results with new ones.
	write(t, s, append([]model.Result{rs[3], Res("c", 20*time.Minute, model.OK, Num("v", 20))}, rs[15:18]...)...)
	id := ID("c")
	if n := len(series(t, s, id, "v", Base, Base.Add(time.Hour), time.Second).Points); n != 21 {
		t.Errorf("raw points after replays: %d, want 21", n)
	}
	for _, step := range []time.Duration{5 * time.Minute, time.Hour, 24 * time.Hour} {
		if count, sum := sums(series(t, s, id, "v", Base, Base.Add(time.Hour), step)); count != 21 || sum != 210 {
			t.Errorf("rollups at step %s counted replays: count %d sum %v, want 21 and 210", step, count, sum)
		}
	}
	if h := history(t, s, id, 0); len(h) != 21 {
		t.Errorf("status rows: %d, want 21", len(h))
	}
	if got := texts(t, s, id, "state"); got != "up@0s down@10m0s" {
		t.Errorf("text points after replays: %s", got)
	}
	traps, err := s.Traps(context.Background(), Base, Base.Add(time.Hour), 0)
	if err != nil || len(traps) != 1 {
		t.Errorf("traps after replays: %v %d, want 1", err, len(traps))
	}
	checks, _ := s.Checks(context.Background())
	if len(checks) != 2 {
		t.Errorf("checks: %d, want 2", len(checks))
	}
}

// testRollups checks every aggregate on hand-computed data: values 1..6
// each minute from 10:00 (10:00–10:04 in the first 5-minute bucket, 10:05
// in the second), then 7 at 11:10 (next hour) and 8 at 09:59 the day
// before (previous day), with int, uint and float kinds mixed.
func testRollups(t *testing.T, s Store) {
	var rs []model.Result
	for i := 0; i < 6; i++ {
		v := model.Metric{Name: "v", Value: model.Int(int64(i + 1))}
		if i%2 == 1 {
			v.Value = model.Uint(uint64(i + 1))
		}
		rs = append(rs, Res("r", time.Duration(i)*time.Minute, model.OK, v))
	}
	rs = append(rs, Res("r", 70*time.Minute, model.OK, Num("v", 7)), Res("r", -24*time.Hour-time.Minute, model.OK, Num("v", -8.5)))
	write(t, s, rs...)
	id := ID("r")
	from, to := Base.Add(-48*time.Hour), Base.Add(48*time.Hour)
	r5 := series(t, s, id, "v", from, to, 5*time.Minute)
	want5 := "-24h5m0s:1/-8.5/-8.5/-8.5/-8.5 0s:5/1/5/15/3 5m0s:1/6/6/6/6 1h10m0s:1/7/7/7/7"
	if r5.Resolution != store.Roll5 || pointsString(r5.Points) != want5 {
		t.Errorf("5m rollup: %s\n got  %s\n want %s", r5.Resolution, pointsString(r5.Points), want5)
	}
	r1 := series(t, s, id, "v", from, to, time.Hour)
	want1 := "-25h0m0s:1/-8.5/-8.5/-8.5/-8.5 0s:6/1/6/21/3.5 1h0m0s:1/7/7/7/7"
	if r1.Resolution != store.Roll1 || pointsString(r1.Points) != want1 {
		t.Errorf("1h rollup: %s\n got  %s\n want %s", r1.Resolution, pointsString(r1.Points), want1)
	}
	rd := series(t, s, id, "v", from, to, 24*time.Hour)
	// Day buckets start at 00:00 UTC: 10:00 is 10h after the bucket.
	wantD := "-34h0m0s:1/-8.5/-8.5/-8.5/-8.5 -10h0m0s:7/1/7/28/4"
	if rd.Resolution != store.RollD || pointsString(rd.Points) != wantD {
		t.Errorf("1d rollup: %s\n got  %s\n want %s", rd.Resolution, pointsString(rd.Points), wantD)
	}
}

// testRollupsLateAndReplayed: late values join their bucket; a replayed
// batch (and one replayed with a new result in it) never double-counts.
func testRollupsLateAndReplayed(t *testing.T, s Store) {
	var rs []model.Result
	for i := 0; i < 6; i++ {
		rs = append(rs, Res("r", time.Duration(i)*time.Minute, model.OK, Num("v", float64(i+1))))
	}
	write(t, s, rs...)
	id := ID("r")
	_ = series(t, s, id, "v", Base, Base.Add(time.Hour), 5*time.Minute) // rollups read once before the late data
	late := Res("r", 150*time.Second, model.OK, Num("v", 100))
	write(t, s, late)
	write(t, s, late)                                                                                      // replayed alone
	write(t, s, append(rs[:3:3], late, Res("r", 4*time.Minute+30*time.Second, model.OK, Num("v", -1)))...) // replayed with a new one
	r5 := series(t, s, id, "v", Base, Base.Add(time.Hour), 10*time.Minute)
	want := "0s:7/-1/100/114/16.285714285714285 5m0s:1/6/6/6/6"
	if r5.Resolution != store.Roll5 || pointsString(r5.Points) != want {
		t.Errorf("5m rollup after late and replayed data:\n got  %s\n want %s", pointsString(r5.Points), want)
	}
	r1 := series(t, s, id, "v", Base, Base.Add(time.Hour), 2*time.Hour)
	if pointsString(r1.Points) != "0s:8/-1/100/120/15" {
		t.Errorf("1h rollup: %s", pointsString(r1.Points))
	}
	if n := len(series(t, s, id, "v", Base, Base.Add(time.Hour), 0).Points); n != 8 {
		t.Errorf("raw points: %d, want 8", n)
	}
}

func testSeriesResolution(t *testing.T, s Store) {
	// One value every minute for two days from Base-1h.
	var rs []model.Result
	for i := 0; i < 48*60; i++ {
		rs = append(rs, Res("s", time.Duration(i-60)*time.Minute, model.OK, Num("v", 1)))
	}
	for i := 0; i < len(rs); i += 1000 {
		write(t, s, rs[i:min(i+1000, len(rs))]...)
	}
	id := ID("s")
	for _, tc := range []struct {
		step time.Duration
		res  store.Resolution
		n    int // points over [Base, Base+6h]
	}{
		{0, store.Raw, 361}, {time.Second, store.Raw, 361}, {5*time.Minute - time.Nanosecond, store.Raw, 361},
		{5 * time.Minute, store.Roll5, 73}, {59 * time.Minute, store.Roll5, 73},
		{time.Hour, store.Roll1, 7}, {23 * time.Hour, store.Roll1, 7},
		{24 * time.Hour, store.RollD, 1}, {30 * 24 * time.Hour, store.RollD, 1},
	} {
		if got := store.ResolutionFor(tc.step); got != tc.res {
			t.Errorf("ResolutionFor(%s) = %s, want %s", tc.step, got, tc.res)
		}
		ser := series(t, s, id, "v", Base, Base.Add(6*time.Hour), tc.step)
		if ser.Resolution != tc.res || len(ser.Points) != tc.n {
			t.Errorf("step %s: resolution %s with %d points, want %s with %d", tc.step, ser.Resolution, len(ser.Points), tc.res, tc.n)
		}
	}
	// From inside a bucket includes that bucket, whole.
	r5 := series(t, s, id, "v", Base.Add(7*time.Minute), Base.Add(10*time.Minute), 5*time.Minute)
	if pointsString(r5.Points) != "5m0s:5/1/1/5/1 10m0s:5/1/1/5/1" {
		t.Errorf("5m buckets for [10:07, 10:10]: %s", pointsString(r5.Points))
	}
	rd := series(t, s, id, "v", Base, Base.Add(time.Hour), 24*time.Hour)
	if len(rd.Points) != 1 || rd.Points[0].Count != 15*60 || !rd.Points[0].Time.Equal(Base.Add(-10*time.Hour)) {
		t.Errorf("day bucket of 2026-03-02 (data from 09:00: 900 values): %s", pointsString(rd.Points))
	}
}

func testOrdering(t *testing.T, s Store) {
	perm := rand.New(rand.NewPCG(1, 2)).Perm(30)
	for i := 0; i < len(perm); i += 7 { // several batches, each out of order
		var rs []model.Result
		for _, j := range perm[i:min(i+7, len(perm))] {
			rs = append(rs, Res("o", time.Duration(j)*time.Second, model.Status(j%4), Num("v", float64(j))))
		}
		write(t, s, rs...)
	}
	write(t, s, Res("b-check", 0, model.OK), Res("a-check", 0, model.OK))
	id := ID("o")
	ser := series(t, s, id, "v", Base, Base.Add(time.Hour), 0)
	for i, p := range ser.Points {
		if p.Value != float64(i) || !p.Time.Equal(Base.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("series not in time order at %d: %+v", i, p)
		}
	}
	h := history(t, s, id, 0)
	if len(h) != 30 {
		t.Fatalf("history: %d rows, want 30", len(h))
	}
	for i, p := range h {
		if !p.Time.Equal(Base.Add(time.Duration(29-i) * time.Second)) {
			t.Fatalf("history not newest first at %d: %s", i, p.Time)
		}
	}
	if h := history(t, s, id, 4); len(h) != 4 || !h[0].Time.Equal(Base.Add(29*time.Second)) {
		t.Errorf("history with limit 4: %+v", h)
	}
	if h, _ := s.StatusHistory(context.Background(), id, Base.Add(10*time.Second), Base.Add(12*time.Second), 0); len(h) != 3 {
		t.Errorf("history in [10s, 12s]: %d rows, want 3", len(h))
	}
	checks, _ := s.Checks(context.Background())
	if len(checks) != 3 || checks[0].Name != "a-check" || checks[1].Name != "b-check" || checks[2].Name != "o" {
		t.Errorf("checks not sorted by name: %+v", checks)
	}
}

// testPrecision: results a few microseconds apart are distinct and keep
// their time (microseconds: what Postgres's timestamptz holds).
func testPrecision(t *testing.T, s Store) {
	var rs []model.Result
	for i := 0; i < 5; i++ {
		rs = append(rs, Res("p", time.Duration(i)*3*time.Microsecond, model.OK, Num("v", float64(i))))
	}
	write(t, s, rs...)
	ser := series(t, s, ID("p"), "v", Base, Base.Add(time.Second), 0)
	if len(ser.Points) != 5 {
		t.Fatalf("points: %d, want 5", len(ser.Points))
	}
	for i, p := range ser.Points {
		if !p.Time.Equal(Base.Add(time.Duration(i) * 3 * time.Microsecond)) {
			t.Errorf("point %d at %s", i, p.Time.Sub(Base))
		}
	}
}

func testTextOnChange(t *testing.T, s Store) {
	vals := []string{"up", "up", "down", "down", "up"}
	for i, v := range vals {
		write(t, s, Res("t", time.Duration(i)*time.Minute, model.OK, Text("state", v)))
	}
	// In one batch too, interleaved with another series and a result
	// without the metric.
	var rs []model.Result
	for i, v := range []string{"up", "x", "x", "", "y"} {
		m := []model.Metric{Text("state", v), Text("other", "same")}
		if v == "" {
			m = nil
		}
		rs = append(rs, Res("t", time.Duration(10+i)*time.Minute, model.OK, m...))
	}
	write(t, s, rs...)
	id := ID("t")
	if got, want := texts(t, s, id, "state"), "up@0s down@2m0s up@4m0s x@11m0s y@14m0s"; got != want {
		t.Errorf("text changes: %s, want %s", got, want)
	}
	if got := texts(t, s, id, "other"); got != "same@10m0s" {
		t.Errorf("other series: %s", got)
	}
	names, _ := s.MetricNames(context.Background(), id)
	if len(names) != 2 || names[0] != "other" || names[1] != "state" {
		t.Errorf("metric names: %v", names)
	}
	pts, _ := s.TextSeries(context.Background(), store.SeriesQuery{CheckID: id, Metric: "state", From: Base.Add(time.Minute), To: Base.Add(4 * time.Minute)})
	if len(pts) != 2 {
		t.Errorf("text points in [1m, 4m]: %+v", pts)
	}
}

// testTextLateData: a late sample between stored results must not change
// what those results read back (the store restores the skipped value).
func testTextLateData(t *testing.T, s Store) {
	for i, v := range []string{"a", "a", "a", "b"} {
		write(t, s, Res("t", time.Duration(i)*10*time.Second, model.OK, Text("s", v)))
	}
	id := ID("t")
	write(t, s, Res("t", 5*time.Second, model.OK, Text("s", "z")))
	if got, want := texts(t, s, id, "s"), "a@0s z@5s a@10s b@30s"; got != want {
		t.Errorf("after a late sample: %s, want %s", got, want)
	}
	// A late batch: equal values stay implicit; a changed one is kept.
	write(t, s, Res("t", 22*time.Second, model.OK, Text("s", "a")), Res("t", 25*time.Second, model.OK, Text("s", "q")))
	if got, want := texts(t, s, id, "s"), "a@0s z@5s a@10s q@25s b@30s"; got != want {
		t.Errorf("after a late batch: %s, want %s", got, want)
	}
	write(t, s, Res("t", 5*time.Second, model.OK, Text("s", "z"))) // replay
	if got, want := texts(t, s, id, "s"), "a@0s z@5s a@10s q@25s b@30s"; got != want {
		t.Errorf("after a replay: %s", got)
	}
}

func testReplay(t *testing.T, s Store) {
	x := Res("x", 2*time.Second, model.Warning, Num("m", 2), Text("s", "a"), model.Metric{Name: "i", Value: model.Int(-3)})
	x.Agent = "a1"
	write(t, s,
		x,
		Res("y", time.Second, model.OK, Num("m", 1)),
		Res("z", 2*time.Hour, model.Critical, Num("m", 3)),
		Res("z", 3*time.Hour+time.Second, model.Critical, Num("m", 4)),
	)
	var got []string
	err := s.Replay(context.Background(), Base, Base.Add(3*time.Hour), func(r model.Result) error {
		got = append(got, r.Check+":"+r.Status.String()+"@"+r.Time.Sub(Base).String())
		if r.Check == "x" {
			if len(r.Metrics) != 3 || r.Metrics[0].Name != "i" || r.Metrics[1].Name != "m" || r.Metrics[2].Value.Str() != "a" ||
				r.Tags["role"] != "db" || r.Agent != "a1" || r.Type != "nagios" || r.Target != "10.0.0.1" || r.CheckID != ID("x") ||
				r.Output != "x WARNING" || r.LongOutput != "line2" || r.Duration != 12*time.Millisecond || r.Attempt != 1 {
				t.Errorf("replayed result: %+v", r)
			}
			if v, _ := r.Metrics[0].Value.Float(); v != -3 {
				t.Errorf("replayed int metric: %v", r.Metrics[0].Value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "y:OK@1s x:WARNING@2s z:CRITICAL@2h0m0s"; joined(got) != want {
		t.Errorf("replay: %s, want %s", joined(got), want)
	}
	stop := errors.New("stop")
	n := 0
	err = s.Replay(context.Background(), Base, Base.Add(4*time.Hour), func(model.Result) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("an error from fn stops the replay: %v after %d", err, n)
	}
}

// testReplayPages replays more results than one page, many sharing a
// timestamp, so pages break inside one instant.
func testReplayPages(t *testing.T, s Store) {
	var rs []model.Result
	const checks = 3100
	for c := 0; c < checks; c++ {
		for k := 0; k < 2; k++ {
			r := Res("c"+itoa(c), time.Duration(k)*time.Minute, model.OK, Num("v", float64(c)))
			rs = append(rs, r)
		}
	}
	for i := 0; i < len(rs); i += 2000 {
		write(t, s, rs[i:min(i+2000, len(rs))]...)
	}
	seen := map[string]int{}
	var last time.Time
	err := s.Replay(context.Background(), Base, Base.Add(time.Hour), func(r model.Result) error {
		if r.Time.Before(last) {
			t.Fatalf("replay went back in time: %s after %s", r.Time, last)
		}
		last = r.Time
		seen[r.Check+"@"+r.Time.Sub(Base).String()]++
		if v, _ := r.Metrics[0].Value.Float(); len(r.Metrics) != 1 || "c"+itoa(int(v)) != r.Check {
			t.Fatalf("metrics of %s: %+v", r.Check, r.Metrics)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2*checks {
		t.Errorf("replayed %d distinct results, want %d", len(seen), 2*checks)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s replayed %d times", k, n)
		}
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}

func trapResult(offset time.Duration, name string, ifIndex int64) model.Result {
	return model.Result{CheckID: model.CheckID("a1", "snmptrap"), Check: "snmptrap", Agent: "a1", Type: "snmptrap", Target: "192.0.2.7",
		Time: Base.Add(offset), Status: model.Warning, Output: "IF-MIB::" + name, Tags: map[string]string{"trap_oid": "1.3.6.1.6.3.1.1.5.3"},
		Metrics: []model.Metric{{Name: "IF-MIB::ifIndex", Value: model.Int(ifIndex)}, {Name: "IF-MIB::ifDescr", Value: model.String("eth0")}}}
}

func testTraps(t *testing.T, s Store) {
	write(t, s, trapResult(0, "linkDown", 3), Res("not-a-trap", 0, model.OK), trapResult(time.Second, "linkUp", 4))
	write(t, s, trapResult(0, "linkDown", 3))
	traps, err := s.Traps(context.Background(), Base, Base.Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(traps) != 2 {
		t.Fatalf("traps: %+v", traps)
	}
	tr := traps[1] // newest first
	if !tr.Time.Equal(Base) || tr.Name != "IF-MIB::linkDown" || tr.OID != "1.3.6.1.6.3.1.1.5.3" || tr.Source != "192.0.2.7" ||
		tr.CheckID != model.CheckID("a1", "snmptrap") || tr.Varbinds["IF-MIB::ifIndex"] != float64(3) || tr.Varbinds["IF-MIB::ifDescr"] != "eth0" {
		t.Errorf("trap: %+v", tr)
	}
	if traps[0].Name != "IF-MIB::linkUp" {
		t.Errorf("traps not newest first: %+v", traps)
	}
	if l, _ := s.Traps(context.Background(), Base, Base.Add(time.Minute), 1); len(l) != 1 || l[0].Name != "IF-MIB::linkUp" {
		t.Errorf("traps with limit 1: %+v", l)
	}
	// The trap's varbinds are its metrics too.
	if ser := series(t, s, model.CheckID("a1", "snmptrap"), "IF-MIB::ifIndex", Base, Base.Add(time.Minute), 0); len(ser.Points) != 2 {
		t.Errorf("trap varbind series: %+v", ser.Points)
	}
}

func testAlerts(t *testing.T, s Store) {
	ctx := context.Background()
	tr := []store.AlertTransition{
		{Time: Base.Add(time.Minute), Rule: "r", Key: "r|x", From: "firing", To: "resolved", Message: "x ok"},
		{Time: Base, Rule: "r", Key: "r|x", Labels: map[string]string{"check": "x"}, CheckID: ID("x"), From: "inactive", To: "firing",
			Severity: "critical", Value: 9.5, Message: "x hot"},
		{Time: Base.Add(2 * time.Hour), Rule: "r2", Key: "r2|y", From: "pending", To: "firing", Value: math.NaN()},
	}
	if err := s.WriteAlerts(ctx, tr); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAlerts(ctx, tr[:2]); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.WriteAlerts(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Alerts(ctx, Base.Add(-time.Hour), Base.Add(time.Hour))
	if err != nil || len(got) != 2 {
		t.Fatalf("alerts: %v %+v", err, got)
	}
	if g := got[0]; g.To != "firing" || g.From != "inactive" || g.Labels["check"] != "x" || g.Value != 9.5 || g.Severity != "critical" ||
		!g.Time.Equal(Base) || g.Rule != "r" || g.Key != "r|x" || g.CheckID != ID("x") || g.Message != "x hot" {
		t.Errorf("alert: %+v", g)
	}
	if g := got[1]; g.To != "resolved" || !g.Time.Equal(Base.Add(time.Minute)) {
		t.Errorf("alerts not oldest first: %+v", got)
	}
	all, _ := s.Alerts(ctx, Base, Base.Add(2*time.Hour))
	if len(all) != 3 {
		t.Fatalf("alerts in [Base, Base+2h] (inclusive): %d", len(all))
	}
	if !math.IsNaN(all[2].Value) {
		t.Errorf("a NaN value (an empty window) reads back as %v", all[2].Value)
	}
}

func testAwkward(t *testing.T, s Store) {
	name := "odd 'name'; DROP TABLE x; \"quoted\" \\ %"
	r := Res(name, 0, model.Unknown,
		Num("nan", math.NaN()), Num("inf", math.Inf(1)), Num("ok", 1), Num("ok", 2), // the second "ok" is ignored: first wins
		Text("nul", "a\x00b"), Text("bad utf8", "\xff\xfe"), Num("na\x00me", 5),
		model.Metric{Name: "big", Value: model.Uint(math.MaxUint64)})
	r.Output = "out\x00put with NUL"
	r.LongOutput = "\xff invalid utf8"
	r.Target = "t\x00"
	r.Tags = map[string]string{"k\x00": "v\x00\xff"}
	write(t, s, r)
	write(t, s) // an empty batch is fine
	write(t, s, Res("bare", 0, model.OK))
	ctx := context.Background()
	id := ID(name)
	if pts := series(t, s, id, "ok", Base, Base.Add(time.Minute), 0).Points; len(pts) != 1 || pts[0].Value != 1 {
		t.Errorf("finite metric next to NaN/Inf, first of a duplicated name: %+v", pts)
	}
	if pts := series(t, s, id, "nan", Base, Base.Add(time.Minute), 0).Points; len(pts) != 0 {
		t.Errorf("NaN stored as a point: %+v", pts)
	}
	if pts := series(t, s, id, "big", Base, Base.Add(time.Minute), 0).Points; len(pts) != 1 || pts[0].Value != float64(math.MaxUint64) {
		t.Errorf("max uint64: %+v", pts)
	}
	if pts := series(t, s, id, "na\uFFFDme", Base, Base.Add(time.Minute), 0).Points; len(pts) != 1 {
		t.Errorf("metric name with NUL (stored with U+FFFD): %+v", pts)
	}
	h := history(t, s, id, 10)
	if len(h) != 1 || h[0].Status != model.Unknown || h[0].Output != "out\uFFFDput with NUL" || h[0].LongOutput != "\uFFFD invalid utf8" {
		t.Errorf("result with awkward text: %+v", h)
	}
	if got := texts(t, s, id, "nul"); got != "a\uFFFDb@0s" {
		t.Errorf("text with NUL: %q", got)
	}
	if got := texts(t, s, id, "bad utf8"); got != "\uFFFD@0s" {
		t.Errorf("text with invalid UTF-8: %q", got)
	}
	checks, _ := s.Checks(ctx)
	found := false
	for _, c := range checks {
		if c.ID == id {
			found = true
			if c.Name != name || c.Target != "t\uFFFD" || c.Tags["k\uFFFD"] != "v\uFFFD\uFFFD" {
				t.Errorf("awkward check: %+v", c)
			}
		}
	}
	if !found || len(checks) != 2 {
		t.Errorf("checks: %+v", checks)
	}
	if err := s.WriteAlerts(ctx, []store.AlertTransition{{Time: Base, Rule: "r\x00", Key: "k\x00", Labels: map[string]string{"a\x00": "\xff"},
		Message: "m\x00", Value: math.Inf(-1)}}); err != nil {
		t.Fatalf("alert with NUL: %v", err)
	}
	if al, err := s.Alerts(ctx, Base, Base); err != nil || len(al) != 1 || al[0].Key != "k\uFFFD" || al[0].Labels["a\uFFFD"] != "\uFFFD" {
		t.Errorf("alert with NUL: %v %+v", err, al)
	}
}

// testConcurrentWriters: several writers store overlapping batches of the
// same results at once (replays racing the original); exactly one copy
// and exact rollups come out.
func testConcurrentWriters(t *testing.T, s Store) {
	var rs []model.Result
	for i := 0; i < 400; i++ {
		rs = append(rs, Res("w"+itoa(i%4), time.Duration(i)*time.Second, model.OK, Num("v", float64(i)), Text("t", itoa(i/100))))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			mine := append([]model.Result(nil), rs...)
			rand.New(rand.NewPCG(uint64(w), 9)).Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			for i := 0; i < len(mine); i += 50 {
				// The pipeline retries a failed batch; so does this writer
				// (e.g. on a deadlock or serialisation error).
				var err error
				for try := 0; try < 5; try++ {
					if err = s.WriteBatch(context.Background(), mine[i:i+50]); err == nil {
						break
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write: %v", err)
	}
	var count int64
	var sum float64
	for c := 0; c < 4; c++ {
		id := ID("w" + itoa(c))
		if n := len(history(t, s, id, 0)); n != 100 {
			t.Errorf("w%d: %d status rows, want 100", c, n)
		}
		n, su := sums(series(t, s, id, "v", Base, Base.Add(time.Hour), time.Hour))
		count, sum = count+n, sum+su
		// Each check sees t = 0,1,2,3 in time order, whatever the order
		// of the writes: each sample must read back its own value.
		pts, _ := s.TextSeries(context.Background(), store.SeriesQuery{CheckID: id, Metric: "t", From: Base, To: Base.Add(time.Hour)})
		for i := c; i < 400; i += 4 {
			at := Base.Add(time.Duration(i) * time.Second)
			v := ""
			for _, p := range pts {
				if !p.Time.After(at) {
					v = p.Value
				}
			}
			if v != itoa(i/100) {
				t.Errorf("w%d text at %ds reads %q, want %q (points %+v)", c, i, v, itoa(i/100), pts)
				break
			}
		}
	}
	if count != 400 || sum != 399*400/2 {
		t.Errorf("rollups under concurrent replays: count %d sum %v, want 400 and %d", count, sum, 399*400/2)
	}
}

// testReadWhileWriting: queries (the API) run while batches are written
// and never fail with a lock error.
func testReadWhileWriting(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 40 && err == nil; i++ {
			var rs []model.Result
			for j := 0; j < 50; j++ {
				rs = append(rs, Res("rw", time.Duration(i*50+j)*time.Second, model.OK, Num("v", 1)))
			}
			err = s.WriteBatch(ctx, rs)
		}
		done <- err
	}()
	reads := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("writer: %v", err)
			}
			if reads == 0 {
				t.Fatal("no read ran while writing")
			}
			if n := len(series(t, s, ID("rw"), "v", Base, Base.Add(time.Hour), 0).Points); n != 2000 {
				t.Errorf("points: %d, want 2000", n)
			}
			return
		default:
		}
		if _, err := s.Series(ctx, store.SeriesQuery{CheckID: ID("rw"), Metric: "v", From: Base, To: Base.Add(time.Hour), Step: 5 * time.Minute}); err != nil {
			t.Fatalf("read while writing: %v", err)
		}
		if _, err := s.Checks(ctx); err != nil {
			t.Fatalf("read while writing: %v", err)
		}
		reads++
	}
}

func testEmpty(t *testing.T, s Store) {
	ctx := context.Background()
	id := ID("nothing")
	if ser := series(t, s, id, "v", Base, Base.Add(time.Hour), 0); ser.Points == nil || len(ser.Points) != 0 {
		t.Errorf("empty series: %+v (want an empty, non-nil slice for JSON)", ser)
	}
	if ser := series(t, s, id, "v", Base, Base.Add(time.Hour), time.Hour); ser.Points == nil || len(ser.Points) != 0 {
		t.Errorf("empty rollup series: %+v", ser)
	}
	if h, err := s.StatusHistory(ctx, id, Base, Base.Add(time.Hour), 10); err != nil || h == nil || len(h) != 0 {
		t.Errorf("empty history: %v %+v", err, h)
	}
	if c, err := s.Checks(ctx); err != nil || len(c) != 0 {
		t.Errorf("checks: %v %+v", err, c)
	}
	if n, err := s.MetricNames(ctx, id); err != nil || len(n) != 0 {
		t.Errorf("metric names: %v %+v", err, n)
	}
	if tr, err := s.Traps(ctx, Base, Base.Add(time.Hour), 0); err != nil || tr == nil || len(tr) != 0 {
		t.Errorf("traps: %v %+v", err, tr)
	}
	if err := s.Replay(ctx, Base, Base.Add(time.Hour), func(model.Result) error { t.Error("replayed from an empty store"); return nil }); err != nil {
		t.Error(err)
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
