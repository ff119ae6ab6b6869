package postgres

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/testutil"
)

const (
	benchResults = 10000 // results per iteration
	benchMetrics = 10    // numeric metrics per result: 100,000 metric rows
	benchBatch   = 5000  // results per WriteBatch (the sink's batch_size)
)

func benchData(iter int) []model.Result {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(iter) * time.Hour)
	rs := make([]model.Result, benchResults)
	for i := range rs {
		check := fmt.Sprintf("c%03d", i%100)
		r := model.Result{CheckID: model.CheckID("a", check), Check: check, Agent: "a", Status: model.OK,
			Time: base.Add(time.Duration(i/100) * time.Second)}
		for m := 0; m < benchMetrics; m++ {
			r.Metrics = append(r.Metrics, model.Metric{Name: fmt.Sprintf("m%d", m), Value: model.Float(float64(i*m) / 7)})
		}
		rs[i] = r
	}
	return rs
}

func truncate(b *testing.B, dsn string) {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `TRUNCATE recon.metric_numeric, recon.status, recon.rollup_5m, recon.rollup_1h, recon.rollup_1d`); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkIngest compares metric rows/s written through the sink
// (idempotency and rollups included, batches of 1,000 results) with psql
// \copy of the same rows into the same table with the same indexes, in the
// same run. SPEC §13: the sink must reach >= 80% of psql \copy.
func BenchmarkIngest(b *testing.B) {
	c := pg(b)
	dsn := c.NewDatabase(b)
	s := open(b, dsn)
	ctx := context.Background()
	b.Run("recon", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			truncate(b, dsn)
			data := benchData(i)
			b.StartTimer()
			for j := 0; j < len(data); j += benchBatch {
				if err := s.WriteBatch(ctx, data[j:j+benchBatch]); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N*benchResults*benchMetrics)/b.Elapsed().Seconds(), "metric_rows/s")
	})
	b.Run("psql_copy", func(b *testing.B) {
		psql := testutil.RequireBinary(b, c.Psql())
		csv := filepath.Join(b.TempDir(), "rows.csv")
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			truncate(b, dsn)
			f, _ := os.Create(csv)
			w := bufio.NewWriter(f)
			for _, r := range benchData(i) {
				for _, m := range r.Metrics {
					v, _ := m.Value.Float()
					fmt.Fprintf(w, "%s,%s,%s,%v\n", r.CheckID, m.Name, r.Time.Format(time.RFC3339Nano), v)
				}
			}
			w.Flush()
			f.Close()
			cmd := exec.Command(psql, dsn, "-v", "ON_ERROR_STOP=1", "-q", "-c",
				`\copy recon.metric_numeric (check_id, name, ts, value) FROM '`+csv+`' WITH (FORMAT csv)`)
			b.StartTimer()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("psql: %v\n%s", err, out)
			}
		}
		b.ReportMetric(float64(b.N*benchResults*benchMetrics)/b.Elapsed().Seconds(), "metric_rows/s")
	})
}
