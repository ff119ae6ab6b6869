package host

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/scheduler"
	pb "github.com/reconmon/recon/plugins/proto"
)

func benchHost(b *testing.B, opts Options) *Host {
	opts.Logger = slog.New(slog.DiscardHandler)
	h := New(opts)
	b.Cleanup(func() { h.Close() })
	return h
}

func benchRunners(b *testing.B, h *Host, n int, c func(i int) *model.Check) []*Runner {
	typ := NewCheckType(h)
	rs := make([]*Runner, n)
	for i := range rs {
		r, err := typ.Prepare(c(i))
		if err != nil {
			b.Fatal(err)
		}
		rs[i] = r.(*Runner)
	}
	b.Cleanup(func() {
		for _, r := range rs {
			r.Close()
		}
	})
	return rs
}

// BenchmarkRunMany measures plugin check results per second through
// RunMany: batches of 1000 checks (two configs) to one plugin process.
// sdk: the hello example, whose SDK runs the checks of a batch on 64
// goroutines; raw: the test plugin, a bare protocol implementation that
// loops over the batch.
func BenchmarkRunMany(b *testing.B) {
	const checks = 1000
	hello, helloSum := example(b, "hello")
	for _, bc := range []struct {
		name string
		c    func(i int) *model.Check
	}{
		{"sdk", func(i int) *model.Check {
			c := pluginCheck(fmt.Sprint("c", i), hello, helloSum, map[string]any{"greeting": []string{"hi", "hello"}[i%2]}, nil)
			c.Target = fmt.Sprint("host", i)
			return c
		}},
		{"raw", func(i int) *model.Check { return testPluginCheck(fmt.Sprint("c", i), "healthy") }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := benchHost(b, Options{})
			rs := benchRunners(b, h, checks, bc.c)
			if res := RunMany(context.Background(), rs); res[0].Status != model.OK { // start + configure
				b.Fatalf("%v %q", res[0].Status, res[0].Output)
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				res := RunMany(context.Background(), rs)
				if res[checks-1].Status != model.OK {
					b.Fatalf("%v %q", res[checks-1].Status, res[checks-1].Output)
				}
			}
			b.ReportMetric(float64(b.N*checks)/time.Since(start).Seconds(), "results/s")
		})
	}
}

// BenchmarkRunLatency compares one Runner.Run (what the scheduler calls)
// with a raw gRPC Run round trip on the same connection to the same
// plugin process, measured in the same run.
func BenchmarkRunLatency(b *testing.B) {
	path, sum := example(b, "hello")
	h := benchHost(b, Options{})
	c := pluginCheck("latency", path, sum, map[string]any{"greeting": "hi"}, nil)
	r := benchRunners(b, h, 1, func(int) *model.Check { return c })[0]
	if res := runOnce(r, 10*time.Second); res.Status != model.OK {
		b.Fatalf("%v %q", res.Status, res.Output)
	}
	p, _ := r.proc()
	inst, err := p.get(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("recon", func(b *testing.B) {
		for range b.N {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res := r.Run(ctx, nil)
			cancel()
			if res.Status != model.OK {
				b.Fatal(res.Output)
			}
		}
	})
	b.Run("raw_grpc", func(b *testing.B) {
		req := &pb.RunRequest{Handle: r.handle, Check: c.Name, CheckId: c.ID.String(), Target: c.Target, TimeoutMs: 4500}
		for range b.N {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := inst.check.Run(ctx, req)
			cancel()
			if err != nil || resp.GetResult().GetStatus() != pb.Status_STATUS_OK {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStart measures starting a plugin process until it is usable
// (checksum, handshake, AutoMTLS, Info, ConfigSchema); stopping is not
// timed. default is what a configured plugin costs; the others show the
// share of the checksum (hashing the binary) and of AutoMTLS (go-plugin
// makes a P-521 certificate on each side).
func BenchmarkStart(b *testing.B) {
	path, sum := example(b, "hello")
	no := false
	for _, bc := range []struct {
		name string
		sum  string
		mtls *bool
	}{{"default", sum, nil}, {"no_checksum", "", nil}, {"no_checksum_no_mtls", "", &no}} {
		b.Run(bc.name, func(b *testing.B) {
			h := benchHost(b, Options{})
			s := &CommonSettings{Path: path, SHA256: bc.sum, InsecureSkipChecksum: bc.sum == "", AutoMTLS: bc.mtls}
			spec, err := buildSpec(pb.CheckPluginName, s, "")
			if err != nil {
				b.Fatal(err)
			}
			p := newProc(h, spec)
			p.warnedCksum = true
			var total time.Duration
			for range b.N {
				start := time.Now()
				inst, err := p.launch()
				total += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				inst.stop(true, time.Second)
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/start")
		})
	}
}

// BenchmarkThroughScheduler: 10,000 checks of the hello example whose
// periods ask for more than the machine can run, through the real
// scheduler (SPEC §13: >= 100,000 results/s for plugin checks).
// coalesced: runs due together share RunStream calls (the default);
// singly: one Run call per run.
func BenchmarkThroughScheduler(b *testing.B) {
	const checks = 10_000
	hello, helloSum := example(b, "hello")
	for _, mode := range []string{"coalesced", "singly"} {
		b.Run(mode, func(b *testing.B) {
			h := benchHost(b, Options{RunSingly: mode == "singly"})
			rs := benchRunners(b, h, checks, func(i int) *model.Check {
				c := pluginCheck(fmt.Sprint("c", i), hello, helloSum, map[string]any{"greeting": "hi"}, nil)
				c.Target, c.Period, c.Timeout = fmt.Sprint("host", i), 20*time.Millisecond, 5*time.Second
				return c
			})
			jobs := make([]scheduler.Job, len(rs))
			for i, r := range rs {
				jobs[i] = scheduler.Job{Check: r.check, Runner: r}
			}
			// Start the process before the clock runs.
			if res := runOnce(rs[0], 10*time.Second); res.Status != model.OK {
				b.Fatalf("%v %q", res.Status, res.Output)
			}
			var n atomic.Int64
			target := int64(b.N)
			done := make(chan struct{})
			s := scheduler.New(scheduler.Options{Emit: func(_ context.Context, r model.Result) error {
				if r.Status != model.OK {
					b.Errorf("%s: %v %q", r.Check, r.Status, r.Output)
				}
				if n.Add(1) == target {
					close(done)
				}
				return nil
			}})
			s.Update(jobs)
			ctx, cancel := context.WithCancel(context.Background())
			st0 := h.Stats()[0]
			b.ResetTimer()
			stopped := make(chan struct{})
			go func() { s.Run(ctx, 10*time.Second); close(stopped) }()
			<-done
			b.StopTimer()
			cancel()
			<-stopped // runs in flight finish before the runners close
			st := h.Stats()[0]
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "results/s")
			b.ReportMetric(float64(st.Runs-st0.Runs)/float64(max(st.Calls-st0.Calls, 1)), "runs/call")
		})
	}
}
