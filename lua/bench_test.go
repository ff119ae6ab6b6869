package lua

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"syscall"
	"testing"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
)

const trivialSrc = `function check(ctx)
  return { status = "OK", output = "fine", metrics = { value = 42 } }
end`

var benchPrev = &model.Result{Status: model.OK, Output: "fine", Metrics: []model.Metric{{Name: "value", Value: model.Int(42)}}}

// cpuTime is the process's user+system CPU time. The machine these
// benchmarks run on is shared and often loaded: results per CPU-second
// stay meaningful when wall-clock rates do not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates reports results/s (wall clock) and results/cpu-s.
func reportRates(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "results/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "results/cpu-s")
	}
}

func benchType() *Type {
	return New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// BenchmarkTrivialCheck: a trivial script returning OK with one metric,
// through the Runner, from all Ps at once, each run under its own timeout
// context as the scheduler does it. Peer baselines in the same run:
// BenchmarkBaselineNewLState (a new LState per run, the naive design) and
// BenchmarkBaselineGopherLuaCall (a bare call into one warm LState).
func BenchmarkTrivialCheck(b *testing.B) {
	typ := benchType()
	defer typ.Close()
	r := prepareSrc(b, typ, trivialSrc)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res := r.Run(ctx, benchPrev)
			cancel()
			if res.Status != model.OK || len(res.Metrics) != 1 {
				panic(fmt.Sprintf("%+v", res))
			}
		}
	})
	reportRates(b, cpu0)
}

// BenchmarkBaselineNewLState: what a run costs with a fresh LState (and
// standard libraries) per run instead of the pool.
func BenchmarkBaselineNewLState(b *testing.B) {
	proto, err := compileChunk(trivialSrc, "trivial")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			L := glua.NewState()
			L.Push(L.NewFunctionFromProto(proto))
			L.Call(0, 0)
			if err := L.CallByParam(glua.P{Fn: L.GetGlobal("check"), NRet: 1, Protect: true}, L.NewTable()); err != nil {
				panic(err)
			}
			L.Close()
		}
	})
	reportRates(b, cpu0)
}

// BenchmarkBaselineGopherLuaCall: the floor, one call of a Lua function
// building the same table in one warm LState, nothing converted.
func BenchmarkBaselineGopherLuaCall(b *testing.B) {
	proto, err := compileChunk(trivialSrc, "trivial")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		L := glua.NewState()
		defer L.Close()
		L.Push(L.NewFunctionFromProto(proto))
		L.Call(0, 0)
		fn := L.GetGlobal("check")
		arg := L.NewTable()
		for pb.Next() {
			L.Push(fn)
			L.Push(arg)
			L.Call(1, 1)
			L.Pop(1)
		}
	})
	reportRates(b, cpu0)
}

// preparedBytes prepares n checks of one script, runs each once, and
// returns the heap each prepared check holds afterwards.
func preparedBytes(tb testing.TB, n int) (perCheck float64, idle int) {
	typ := benchType()
	defer typ.Close()
	path := writeScript(tb, "mem.lua", trivialSrc)
	checks := make([]*model.Check, n)
	for i := range checks {
		checks[i] = &model.Check{Name: fmt.Sprintf("check-%d", i), Target: fmt.Sprintf("host-%d", i), Timeout: time.Second,
			Settings: &Settings{Script: path}}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	runners := make([]checktype.Runner, n)
	for i, c := range checks {
		r, err := typ.Prepare(c)
		if err != nil {
			tb.Fatal(err)
		}
		runners[i] = r
	}
	ctx := context.Background()
	for _, r := range runners {
		if res := r.Run(ctx, nil); res.Status != model.OK {
			tb.Fatalf("%+v", res)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	idle = typ.pool.idleStates()
	runtime.KeepAlive(runners)
	runtime.KeepAlive(checks)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n), idle
}

// BenchmarkPreparedCheckMemory reports the heap a prepared (and once run)
// Lua check holds: its runner, not an LState.
func BenchmarkPreparedCheckMemory(b *testing.B) {
	var per float64
	var idle int
	for i := 0; i < b.N; i++ {
		per, idle = preparedBytes(b, 10_000)
	}
	b.ReportMetric(per, "bytes/check")
	b.ReportMetric(float64(idle), "idle-states")
}

// 10,000 prepared checks of one script hold far less than the agent's
// budget of 4 KB per check, and only the bounded pool holds LStates.
func TestPreparedCheckMemory(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 2_000
	}
	per, idle := preparedBytes(t, n)
	t.Logf("%d prepared and run checks: %.0f bytes per check; %d idle LStates", n, per, idle)
	if per > 1024 {
		t.Fatalf("%.0f bytes per prepared check (an LState is ~30 KiB: states must be pooled, not per check)", per)
	}
	if max := benchType().opts.MaxIdle; idle > max {
		t.Fatalf("%d idle states, more than the bound %d", idle, max)
	}
}
