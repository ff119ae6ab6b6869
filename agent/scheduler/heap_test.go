package scheduler

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestQueueOrder: random inserts, moves and removals keep the heap order
// and every entry's index; draining returns entries in time order.
func TestQueueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var q queue
	var live []*entry
	base := time.Unix(1_700_000_000, 0)
	check := func() {
		t.Helper()
		for i, it := range q {
			if it.e.index != i {
				t.Fatalf("entry at %d has index %d", i, it.e.index)
			}
			if it.at != it.e.next.UnixNano() {
				t.Fatalf("stale key at %d", i)
			}
			if i > 0 && q[(i-1)/2].at > it.at {
				t.Fatalf("heap order broken at %d", i)
			}
		}
	}
	for range 5000 {
		switch op := rng.IntN(10); {
		case op < 5 || len(live) == 0:
			e := &entry{index: -1, next: base.Add(time.Duration(rng.IntN(1e6)) * time.Millisecond)}
			q.update(e)
			live = append(live, e)
		case op < 8:
			e := live[rng.IntN(len(live))]
			e.next = base.Add(time.Duration(rng.IntN(1e6)) * time.Millisecond)
			q.update(e)
		default:
			i := rng.IntN(len(live))
			q.remove(live[i])
			if live[i].index != -1 {
				t.Fatal("removed entry keeps an index")
			}
			live = append(live[:i], live[i+1:]...)
		}
		check()
	}
	if q.Len() != len(live) {
		t.Fatalf("queue holds %d, want %d", q.Len(), len(live))
	}
	var prev time.Time
	for q.Len() > 0 {
		e := q.head()
		if e.next.Before(prev) {
			t.Fatalf("drained out of order: %v after %v", e.next, prev)
		}
		prev = e.next
		q.remove(e)
		check()
	}
}
