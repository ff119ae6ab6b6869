package stream

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
)

type countingRunner struct {
	runs, inFlight, maxInFlight atomic.Int32
	closed                      atomic.Bool
}

func (r *countingRunner) Run(ctx context.Context, _ *model.Result) model.Result {
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for {
		m := r.maxInFlight.Load()
		if n <= m || r.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	r.runs.Add(1)
	return model.Result{Status: model.OK, Metrics: []model.Metric{{Name: "x", Value: model.Int(int64(r.runs.Load()))}}}
}

func (r *countingRunner) Close() error { r.closed.Store(true); return nil }

type fixture struct {
	mu       sync.Mutex
	prepared int
	runners  []*countingRunner
	timeouts []time.Duration
}

func (f *fixture) prepare(id uuid.UUID, period, timeout time.Duration) (*model.Check, checktype.Runner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prepared++
	r := &countingRunner{}
	f.runners = append(f.runners, r)
	f.timeouts = append(f.timeouts, timeout)
	return &model.Check{ID: id, Name: "web", Type: "test", Period: period, Timeout: timeout}, r, nil
}

func TestFiftyWatchersShareOneClone(t *testing.T) {
	f := &fixture{}
	h := NewHub(f.prepare, "a1", nil)
	defer h.Close()
	id := uuid.New()
	var ws []*Watcher
	for i := 0; i < 50; i++ {
		w, err := h.Watch(id, time.Second, 16)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if f.prepared != 1 {
		t.Fatalf("%d clones prepared for 50 watchers of one check+period", f.prepared)
	}
	if st := h.Stats(); st.Clones != 1 || st.Watchers != 50 {
		t.Errorf("stats: %+v", st)
	}
	if f.timeouts[0] >= time.Second || f.timeouts[0] < 800*time.Millisecond {
		t.Errorf("clone timeout %v is not a little under the period", f.timeouts[0])
	}
	// Every watcher sees the same results.
	for i, w := range ws {
		for j := 0; j < 2; j++ {
			select {
			case r := <-w.C:
				if r.Check != "web" || r.Agent != "a1" || r.CheckID != id {
					t.Errorf("watcher %d: %+v", i, r)
				}
			case <-time.After(3 * time.Second):
				t.Fatalf("watcher %d got no result", i)
			}
		}
	}
	r := f.runners[0]
	if r.maxInFlight.Load() != 1 {
		t.Errorf("clone runs overlapped")
	}
	for _, w := range ws {
		w.Close()
	}
	stopped := time.Now()
	runs := r.runs.Load()
	for !r.closed.Load() && time.Since(stopped) < 2*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if !r.closed.Load() {
		t.Fatal("clone did not stop within 2s of the last watcher leaving")
	}
	time.Sleep(1200 * time.Millisecond)
	if r.runs.Load() != runs {
		t.Errorf("clone kept running after the last watcher left: %d → %d", runs, r.runs.Load())
	}
	if st := h.Stats(); st.Clones != 0 || st.Watchers != 0 {
		t.Errorf("stats after: %+v", st)
	}
}

func TestDifferentPeriodsAreDifferentClones(t *testing.T) {
	f := &fixture{}
	h := NewHub(f.prepare, "a", nil)
	defer h.Close()
	id := uuid.New()
	w1, _ := h.Watch(id, time.Second, 4)
	w2, _ := h.Watch(id, 500*time.Millisecond, 4)
	defer w1.Close()
	defer w2.Close()
	if f.prepared != 2 {
		t.Errorf("prepared %d", f.prepared)
	}
	if _, err := h.Watch(id, 100*time.Millisecond, 4); err != ErrPeriod {
		t.Errorf("short period: %v", err)
	}
}

func TestSlowWatcherIsDropped(t *testing.T) {
	f := &fixture{}
	h := NewHub(f.prepare, "a", nil)
	defer h.Close()
	id := uuid.New()
	slow, _ := h.Watch(id, 500*time.Millisecond, 1) // never read
	fast, _ := h.Watch(id, 500*time.Millisecond, 1)
	defer fast.Close()
	got := 0
	deadline := time.After(5 * time.Second)
	for got < 4 {
		select {
		case _, ok := <-fast.C:
			if !ok {
				t.Fatal("fast watcher dropped")
			}
			got++
		case <-deadline:
			t.Fatalf("fast watcher starved after %d results", got)
		}
	}
	if !slow.Dropped() {
		t.Error("slow watcher not dropped")
	}
	// Its channel is closed after the buffered result.
	<-slow.C
	if _, ok := <-slow.C; ok {
		t.Error("dropped watcher's channel still open")
	}
	if h.Stats().Dropped != 1 {
		t.Errorf("dropped count %d", h.Stats().Dropped)
	}
}
