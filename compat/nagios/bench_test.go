package nagios

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reconmon/recon/agent/model"
)

// The runner against a bare os/exec of the same plugin with the same
// arguments, both at 2-way concurrency, so that one `go test -bench Exec`
// gives the ratio (SPEC §13: the runner at >= 90% of raw).

const benchParallel = 2

// runParallel shares b.N operations among exactly n goroutines, whatever
// GOMAXPROCS is, and reports executions per second.
func runParallel(b *testing.B, n int, op func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, n)
	b.ResetTimer()
	for i := range n {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
}

func BenchmarkExecCheckDummy(b *testing.B) {
	p := plugin(b, "check_dummy")
	r := prepare(b, newType(b, Options{MaxConcurrent: benchParallel}), Settings{Command: p + " 0 ok"}, "")
	ctx := context.Background()
	b.ReportAllocs()
	runParallel(b, benchParallel, func() error {
		if res := r.Run(ctx, nil); res.Status != model.OK || res.Output != "OK: ok" {
			return fmt.Errorf("%v %q", res.Status, res.Output)
		}
		return nil
	})
}

func BenchmarkRawOSExecCheckDummy(b *testing.B) {
	p := plugin(b, "check_dummy")
	b.ReportAllocs()
	runParallel(b, benchParallel, func() error {
		out, err := exec.Command(p, "0", "ok").Output()
		if err != nil || string(out) != "OK: ok\n" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
}
