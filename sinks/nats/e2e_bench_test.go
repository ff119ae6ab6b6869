package nats

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/testutil/pgtest"
	"github.com/reconmon/recon/sinks/postgres"
)

// timedWriter records, for every result, the time from its timestamp to
// the commit of the transaction that stored it.
type timedWriter struct {
	w     Writer
	mu    sync.Mutex
	lat   []time.Duration
	count int
	done  chan struct{}
	want  int
}

func (tw *timedWriter) WriteBatch(ctx context.Context, b []model.Result) error {
	if err := tw.w.WriteBatch(ctx, b); err != nil {
		return err
	}
	now := time.Now()
	tw.mu.Lock()
	for i := range b {
		tw.lat = append(tw.lat, now.Sub(b[i].Time))
	}
	tw.count += len(b)
	if tw.count >= tw.want && tw.done != nil {
		close(tw.done)
		tw.done = nil
	}
	tw.mu.Unlock()
	return nil
}

func genResults(agent string, n int, start int) []model.Result {
	rs := make([]model.Result, n)
	for i := range rs {
		c := fmt.Sprint("check", (start+i)%1000)
		rs[i] = model.Result{CheckID: model.CheckID(agent, c), Check: c, Agent: agent, Status: model.OK, Time: time.Now(),
			Metrics: []model.Metric{{Name: "value", Value: model.Float(float64(i))}, {Name: "seq", Value: model.Int(int64(start + i))}}}
	}
	return rs
}

// BenchmarkEndToEnd: agents' nats sinks → JetStream → an ingester →
// Postgres, on this machine. "throughput" publishes as fast as the sinks
// can; "latency_10k" publishes 10,000 results/s and reports the p50/p99
// time from a result's timestamp to the commit of its row (SPEC §13:
// p99 < 1 s).
func BenchmarkEndToEnd(b *testing.B) {
	pgc := pgtest.Start(b, pgtest.Options{})
	ns := startNATS(b)
	run := func(b *testing.B, total, rate, ingesters int) *timedWriter {
		st, err := postgres.Open(context.Background(), postgres.Settings{DSN: pgc.NewDatabase(b)}, quiet())
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		tw := &timedWriter{w: st, done: make(chan struct{}), want: total}
		done := tw.done
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Ingesters share the durable consumer, as the scale-out docs
		// recommend.
		for i := 0; i < ingesters; i++ {
			in, _ := NewIngester(IngestConfig{Connection: Connection{URL: ns.url()}, Batch: 2000, MaxWait: 0}, tw, quiet())
			go in.Run(ctx)
		}
		const agents = 4
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for a := 0; a < agents; a++ {
			wg.Add(1)
			go func(a int) {
				defer wg.Done()
				s := newSink(b, ns.url(), fmt.Sprint("agent", a))
				per := total / agents
				const batch = 200
				interval := time.Duration(0)
				if rate > 0 {
					interval = time.Duration(float64(time.Second) * batch / float64(rate/agents))
				}
				next := time.Now()
				for i := 0; i < per; i += batch {
					if interval > 0 {
						time.Sleep(time.Until(next))
						next = next.Add(interval)
					}
					if err := s.WriteBatch(ctx, genResults(fmt.Sprint("agent", a), min(batch, per-i), i)); err != nil {
						b.Error(err)
						return
					}
				}
			}(a)
		}
		wg.Wait()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("only %d of %d results ingested", tw.count, total)
		}
		b.ReportMetric(float64(total)/time.Since(start).Seconds(), "results/s")
		return tw
	}
	b.Run("throughput", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			run(b, 100000, 0, 2)
		}
	})
	b.Run("latency_10k", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			tw := run(b, 100000, 10000, 1)
			sort.Slice(tw.lat, func(i, j int) bool { return tw.lat[i] < tw.lat[j] })
			b.ReportMetric(float64(tw.lat[len(tw.lat)/2].Milliseconds()), "p50_ms")
			b.ReportMetric(float64(tw.lat[len(tw.lat)*99/100].Milliseconds()), "p99_ms")
		}
	})
}
