package alerter

import (
	"math"
	"sort"
	"time"
)

type sample struct {
	t time.Time
	v float64
}

// window holds a series' recent samples: the last N, or those within a
// duration of the newest, or both (whichever keeps fewer).
type window struct {
	samples []sample
	maxN    int
	maxAge  time.Duration
}

// maxSamples bounds a duration window so one chatty series cannot eat the
// agent's memory.
const maxSamples = 10000

func newWindow(n int, age time.Duration) *window {
	if n <= 0 && age <= 0 {
		n = 1
	}
	if n <= 0 || n > maxSamples {
		n = maxSamples
	}
	return &window{maxN: n, maxAge: age}
}

// add appends a sample; samples older than the newest one are ignored
// (replays after a crash must not be counted twice).
func (w *window) add(t time.Time, v float64) bool {
	if n := len(w.samples); n > 0 && !t.After(w.samples[n-1].t) {
		return false
	}
	w.samples = append(w.samples, sample{t, v})
	w.trim(t)
	return true
}

// trim drops samples beyond the count or older than maxAge before now.
func (w *window) trim(now time.Time) {
	drop := 0
	if len(w.samples) > w.maxN {
		drop = len(w.samples) - w.maxN
	}
	if w.maxAge > 0 {
		cut := now.Add(-w.maxAge)
		for drop < len(w.samples) && w.samples[drop].t.Before(cut) {
			drop++
		}
	}
	if drop > 0 {
		w.samples = append(w.samples[:0], w.samples[drop:]...)
	}
}

func (w *window) count() int { return len(w.samples) }

func (w *window) last() float64 {
	if len(w.samples) == 0 {
		return math.NaN()
	}
	return w.samples[len(w.samples)-1].v
}

func (w *window) lastTime() time.Time {
	if len(w.samples) == 0 {
		return time.Time{}
	}
	return w.samples[len(w.samples)-1].t
}

func (w *window) sum() float64 {
	s := 0.0
	for _, x := range w.samples {
		s += x.v
	}
	return s
}

func (w *window) avg() float64 {
	if len(w.samples) == 0 {
		return math.NaN()
	}
	return w.sum() / float64(len(w.samples))
}

func (w *window) min() float64 {
	if len(w.samples) == 0 {
		return math.NaN()
	}
	m := w.samples[0].v
	for _, x := range w.samples[1:] {
		m = math.Min(m, x.v)
	}
	return m
}

func (w *window) max() float64 {
	if len(w.samples) == 0 {
		return math.NaN()
	}
	m := w.samples[0].v
	for _, x := range w.samples[1:] {
		m = math.Max(m, x.v)
	}
	return m
}

// delta is newest minus oldest.
func (w *window) delta() float64 {
	if len(w.samples) < 2 {
		return math.NaN()
	}
	return w.samples[len(w.samples)-1].v - w.samples[0].v
}

// rate is the per-second increase of a counter over the window; a
// decrease is taken as a counter reset (the new value counts as the
// increase since the reset), as Prometheus does.
func (w *window) rate() float64 {
	if len(w.samples) < 2 {
		return math.NaN()
	}
	inc := 0.0
	for i := 1; i < len(w.samples); i++ {
		d := w.samples[i].v - w.samples[i-1].v
		if d < 0 {
			d = w.samples[i].v
		}
		inc += d
	}
	secs := w.samples[len(w.samples)-1].t.Sub(w.samples[0].t).Seconds()
	if secs <= 0 {
		return math.NaN()
	}
	return inc / secs
}

// stddev is the population standard deviation.
func (w *window) stddev() float64 {
	n := len(w.samples)
	if n == 0 {
		return math.NaN()
	}
	mean := w.avg()
	ss := 0.0
	for _, x := range w.samples {
		ss += (x.v - mean) * (x.v - mean)
	}
	return math.Sqrt(ss / float64(n))
}

// percentile interpolates linearly between closest ranks (p in 0..100).
func (w *window) percentile(p float64) float64 {
	n := len(w.samples)
	if n == 0 || p < 0 || p > 100 || math.IsNaN(p) {
		return math.NaN()
	}
	vs := make([]float64, n)
	for i, x := range w.samples {
		vs[i] = x.v
	}
	sort.Float64s(vs)
	if n == 1 {
		return vs[0]
	}
	rank := p / 100 * float64(n-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	frac := rank - float64(lo)
	return vs[lo] + (vs[hi]-vs[lo])*frac
}
