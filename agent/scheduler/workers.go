package scheduler

import "time"

// workers runs functions on reused goroutines. A goroutine per run would
// start each check on a fresh 8 KiB stack that deep runners (a Lua VM, a
// gRPC call) grow by copying on every run: at 100,000 results/s that was
// an eighth of the CPU. A worker keeps its grown stack and waits a while
// for more work before exiting, so idle agents hold no extra goroutines.
type workers struct {
	work chan func() // unbuffered: a send succeeds only to an idle worker
	idle time.Duration
}

func newWorkers(idle time.Duration) *workers {
	return &workers{work: make(chan func()), idle: idle}
}

// do runs f on an idle worker, or on a new one if none is waiting.
func (w *workers) do(f func()) {
	select {
	case w.work <- f:
	default:
		go w.start(f)
	}
}

// start reserves stackReserve bytes of the new worker's stack below its
// loop. The GC shrinks a goroutine's stack when less than a quarter of it
// is in use, which a parked worker always is; the next run then grows it
// again by copying, level by level. With the reserve in use while parked,
// the stack a run needs is kept. Trivial Lua checks through the scheduler
// on two cores (BenchmarkLuaThroughScheduler): 105,000 results/s without
// the reserve, 137,000 with 8 KiB, 144,000 with 16 KiB; 8 KiB keeps a
// worker's stack at 32 KiB, and idle workers exit.
//
//go:noinline
func (w *workers) start(f func()) {
	var reserve [stackReserve]byte
	w.loop(f, reserve[:])
}

const stackReserve = 8 << 10

// loop runs f and then what it is given, until idle for w.idle. reserve
// only holds the caller's frame in place.
//
//go:noinline
func (w *workers) loop(f func(), reserve []byte) {
	_ = reserve
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		f()
		t.Reset(w.idle)
		select {
		case f = <-w.work:
		case <-t.C:
			return
		}
	}
}
