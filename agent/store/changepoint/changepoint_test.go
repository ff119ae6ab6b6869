package changepoint

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// mem is a store of one series plus the result times of its check.
type mem struct {
	points  map[int64]string // stored change points
	results map[int64]bool   // every stored result of the check
	batch   map[int64]bool   // results of the batch being written
	queries int
}

func newMem() *mem { return &mem{points: map[int64]string{}, results: map[int64]bool{}} }

func (m *mem) sorted() []int64 {
	var ts []int64
	for t := range m.points {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts
}

func (m *mem) Around(_ context.Context, t time.Time) (*string, time.Time, error) {
	m.queries++
	var prev *string
	var next time.Time
	for _, p := range m.sorted() {
		if p < t.UnixNano() {
			v := m.points[p]
			prev = &v
		} else if p > t.UnixNano() && next.IsZero() {
			next = time.Unix(0, p)
		}
	}
	return prev, next, nil
}

func (m *mem) Head(ctx context.Context, t time.Time) (*string, bool, error) {
	prev, next, _ := m.Around(ctx, t)
	clear := next.IsZero()
	for r := range m.results {
		if r > t.UnixNano() && !m.batch[r] {
			clear = false
		}
	}
	return prev, clear, nil
}

func (m *mem) OtherResult(_ context.Context, after, before time.Time) (time.Time, error) {
	m.queries++
	best := int64(-1)
	for r := range m.results {
		if r > after.UnixNano() && (before.IsZero() || r < before.UnixNano()) && !m.batch[r] && (best < 0 || r < best) {
			best = r
		}
	}
	if best < 0 {
		return time.Time{}, nil
	}
	return time.Unix(0, best), nil
}

func (m *mem) Insert(_ context.Context, t time.Time, v string) error {
	if _, ok := m.points[t.UnixNano()]; !ok {
		m.points[t.UnixNano()] = v
	}
	return nil
}

// at is the value the stored step function gives at t.
func (m *mem) at(t int64) (string, bool) {
	v, ok := "", false
	for _, p := range m.sorted() {
		if p <= t {
			v, ok = m.points[p], true
		}
	}
	return v, ok
}

// write stores one batch: its results (those with a sample and those
// without) first, as the stores do, then the samples.
func (m *mem) write(t *testing.T, samples []Sample, bare []int64) {
	t.Helper()
	m.batch = map[int64]bool{}
	var fresh []Sample
	for _, s := range samples {
		if !m.results[s.Time.UnixNano()] { // a replayed result is not fresh
			fresh = append(fresh, s)
		}
	}
	for _, s := range fresh {
		m.results[s.Time.UnixNano()], m.batch[s.Time.UnixNano()] = true, true
	}
	for _, b := range bare {
		if !m.results[b] {
			m.results[b], m.batch[b] = true, true
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].Time.Before(fresh[j].Time) })
	if err := Write(context.Background(), m, fresh); err != nil {
		t.Fatal(err)
	}
}

func ts(sec int) time.Time { return time.Unix(int64(sec), 0) }

func pts(m *mem) string {
	out := ""
	for _, p := range m.sorted() {
		out += fmt.Sprintf("%s@%d ", m.points[p], p/1e9)
	}
	return out
}

func TestInOrder(t *testing.T) {
	m := newMem()
	m.write(t, []Sample{{ts(0), "up"}, {ts(1), "up"}, {ts(2), "down"}}, nil)
	m.write(t, []Sample{{ts(3), "down"}, {ts(4), "up"}}, nil)
	m.write(t, []Sample{{ts(3), "down"}, {ts(4), "up"}}, nil) // replay: nothing
	if got := pts(m); got != "up@0 down@2 up@4 " {
		t.Errorf("points %q", got)
	}
}

func TestLateSampleRestoresSkippedValue(t *testing.T) {
	m := newMem()
	// up@0 stored, up@2 skipped as unchanged.
	m.write(t, []Sample{{ts(0), "up"}, {ts(2), "up"}}, nil)
	// A late down@1: storing it alone would make 2 read "down".
	m.write(t, []Sample{{ts(1), "down"}}, nil)
	if got := pts(m); got != "up@0 down@1 up@2 " {
		t.Errorf("points %q", got)
	}
	// A late equal value changes nothing.
	m.write(t, []Sample{{ts(3), "up"}}, nil)
	if got := pts(m); got != "up@0 down@1 up@2 " {
		t.Errorf("points after equal late value %q", got)
	}
}

func TestLateBatchAcrossSkippedSamples(t *testing.T) {
	m := newMem()
	m.write(t, []Sample{{ts(0), "a"}, {ts(10), "a"}, {ts(20), "b"}}, nil)
	// Late samples 5 and 7 before the skipped a@10.
	m.write(t, []Sample{{ts(5), "x"}, {ts(7), "y"}}, nil)
	if got := pts(m); got != "a@0 x@5 y@7 a@10 b@20 " {
		t.Errorf("points %q", got)
	}
}

// TestRandomHistories writes random series in random batch orders (late
// data, replays, results without the metric) and checks the one property
// that matters: every sample ever written reads back its own value.
func TestRandomHistories(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	for seed := 0; seed < n; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		m := newMem()
		total := 5 + r.IntN(40)
		want := map[int64]string{}
		var all []Sample
		var bare []int64
		for i := 0; i < total; i++ {
			if r.IntN(5) == 0 {
				bare = append(bare, ts(i).UnixNano()) // a result without the metric
				continue
			}
			s := Sample{ts(i), string(rune('a' + r.IntN(3)))}
			all = append(all, s)
			want[s.Time.UnixNano()] = s.Value
		}
		r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		for len(all) > 0 {
			k := 1 + r.IntN(min(len(all), 6))
			batch := all[:k]
			if r.IntN(4) == 0 && k > 1 { // a replay of part of the batch later
				all = append(all[k:], batch[:1]...)
			} else {
				all = all[k:]
			}
			var b []int64
			if len(bare) > 0 && r.IntN(2) == 0 {
				b, bare = bare[:1], bare[1:]
			}
			m.write(t, batch, b)
		}
		m.write(t, nil, bare)
		for at, v := range want {
			if got, ok := m.at(at); !ok || got != v {
				t.Fatalf("seed %d: sample at %d was %q, reads back %q (%v); points %s", seed, at/1e9, v, got, ok, pts(m))
			}
		}
	}
}
