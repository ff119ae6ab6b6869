package scheduler

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestWorkersRunConcurrentlyReuseAndExit(t *testing.T) {
	base := runtime.NumGoroutine()
	w := newWorkers(50 * time.Millisecond)
	// Ten blocking functions at once: each gets its own worker.
	var started, release sync.WaitGroup
	started.Add(10)
	release.Add(1)
	var done sync.WaitGroup
	done.Add(10)
	for range 10 {
		w.do(func() { started.Done(); release.Wait(); done.Done() })
	}
	started.Wait()
	release.Done()
	done.Wait()
	// Sequential work is taken by the idle workers: no new goroutines.
	peak := runtime.NumGoroutine()
	for range 100 {
		var wg sync.WaitGroup
		wg.Add(1)
		w.do(wg.Done)
		wg.Wait()
		if n := runtime.NumGoroutine(); n > peak {
			t.Fatalf("%d goroutines after reuse, peak was %d", n, peak)
		}
	}
	// Idle workers exit.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, want %d", runtime.NumGoroutine(), base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
