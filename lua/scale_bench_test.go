package lua

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/scheduler"
)

// scheduledLuaJobs prepares n Lua checks of one trivial script.
func scheduledLuaJobs(b *testing.B, typ *Type, n int, period time.Duration) []scheduler.Job {
	path := writeScript(b, "trivial.lua", trivialSrc)
	jobs := make([]scheduler.Job, n)
	for i := range jobs {
		name := "lua-" + strconv.Itoa(i)
		c := &model.Check{ID: model.CheckID("bench", name), Name: name, Type: "lua", Period: period, Timeout: period,
			MaxAttempts: 1, RetryPeriod: period, Settings: &Settings{Script: path}}
		r, err := typ.Prepare(c)
		if err != nil {
			b.Fatal(err)
		}
		jobs[i] = scheduler.Job{Check: c, Runner: r}
	}
	return jobs
}

// BenchmarkLuaThroughScheduler: 10,000 trivial Lua checks whose periods
// ask for more than the machine can run; results counted at the
// scheduler's Emit (SPEC §13: >= 100,000 results/s).
func BenchmarkLuaThroughScheduler(b *testing.B) {
	typ := benchType()
	defer typ.Close()
	jobs := scheduledLuaJobs(b, typ, 10_000, 20*time.Millisecond)
	var n atomic.Int64
	target := int64(b.N)
	done := make(chan struct{})
	s := scheduler.New(scheduler.Options{Emit: func(context.Context, model.Result) error {
		if n.Add(1) == target {
			close(done)
		}
		return nil
	}})
	s.Update(jobs)
	ctx, cancel := context.WithCancel(context.Background())
	b.ResetTimer()
	go s.Run(ctx, time.Second)
	<-done
	b.StopTimer()
	cancel()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "results/s")
}

func rssMB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkLuaScale100k: 100,000 Lua checks scheduled in one scheduler,
// each every 10 s (10,000 runs/s once the splay has spread them): memory
// per scheduled check, dispatch jitter p99 over 15 s of steady running,
// and process RSS (SPEC §13: < 4 KB per check).
func BenchmarkLuaScale100k(b *testing.B) {
	const checks = 100_000
	for range b.N {
		typ := benchType()
		before := heapInUse()
		jobs := scheduledLuaJobs(b, typ, checks, 10*time.Second)
		var results atomic.Int64
		s := scheduler.New(scheduler.Options{Emit: func(context.Context, model.Result) error {
			results.Add(1)
			return nil
		}})
		s.Update(jobs)
		after := heapInUse()
		ctx, cancel := context.WithCancel(context.Background())
		go s.Run(ctx, time.Second)
		// The first period spreads the checks; measure lag after it.
		time.Sleep(10 * time.Second)
		st0 := s.Stats()
		time.Sleep(15 * time.Second)
		st1 := s.Stats()
		cancel()
		var lag scheduler.Stats
		for i := range lag.LagBuckets {
			lag.LagBuckets[i] = st1.LagBuckets[i] - st0.LagBuckets[i]
		}
		runs := st1.Runs - st0.Runs
		b.ReportMetric(float64(after-before)/checks, "bytes/check")
		b.ReportMetric(float64(lag.LagQuantile(0.99).Microseconds())/1000, "jitter_p99_ms")
		b.ReportMetric(float64(runs)/15, "runs/s")
		b.ReportMetric(rssMB(), "rss_MB")
		b.ReportMetric(0, "ns/op")
		if late := st1.Late - st0.Late; late > 0 {
			b.Logf("%d late runs", late)
		}
		runtime.KeepAlive(jobs)
		typ.Close()
		_ = fmt.Sprint(results.Load())
	}
}
