package postgres

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
		r := model.Result{CheckID: model.CheckID("a", check), Check: check, Agent: "a", Type: "nagios", Status: model.OK,
			Time: base.Add(time.Duration(i/100) * time.Second), Output: "OK"}
		for m := 0; m < benchMetrics; m++ {
			r.Metrics = append(r.Metrics, model.Metric{Name: "m" + strconv.Itoa(m), Value: model.Float(float64(i*m) / 7)})
		}
		rs[i] = r
	}
	return rs
}

// writeCSV writes the metric rows of rs as psql \copy reads them.
func writeCSV(b *testing.B, path string, rs []model.Result) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, r := range rs {
		ts := r.Time.UTC().Format("2006-01-02 15:04:05.999999Z07:00")
		for _, m := range r.Metrics {
			v, _ := m.Value.Float()
			fmt.Fprintf(w, "%s,%s,%s,%s\n", r.CheckID, m.Name, ts, strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

func truncate(b *testing.B, conn *pgx.Conn) {
	if _, err := conn.Exec(context.Background(), `TRUNCATE recon.metric_numeric, recon.metric_text, recon.status, recon."check",
		recon.rollup_dirty, recon.rollup_5m, recon.rollup_1h, recon.rollup_1d`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `CHECKPOINT`); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPostgresIngest measures metric rows/s written through the sink
// — status rows, idempotency (keyed COPY), check upserts and rollups
// folded in, batches of benchBatch results — against psql \copy of the
// same metric rows (CSV) into the same table with the same indexes, on the
// same throwaway cluster. Each iteration runs both, alternating which goes
// first, so machine noise hits both alike; the ratio is what SPEC §13
// judges (recon >= 80% of psql \copy).
func BenchmarkPostgresIngest(b *testing.B) {
	c := pg(b)
	psql := testutil.RequireBinary(b, c.Psql())
	dsn := c.NewDatabase(b)
	s := open(b, dsn)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	csv := filepath.Join(b.TempDir(), "rows.csv")
	recon := func(data []model.Result) time.Duration {
		t0 := time.Now()
		for j := 0; j < len(data); j += benchBatch {
			if err := s.WriteBatch(ctx, data[j:j+benchBatch]); err != nil {
				b.Fatal(err)
			}
		}
		// Rollups are part of the write: recompute them before stopping.
		if err := s.flushRollups(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	baseline := func() time.Duration {
		cmd := exec.Command(psql, dsn, "-X", "-v", "ON_ERROR_STOP=1", "-q", "-c",
			`\copy recon.metric_numeric (check_id, name, ts, value) FROM '`+csv+`' WITH (FORMAT csv)`)
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("psql: %v\n%s", err, out)
		}
		return time.Since(t0)
	}
	var tRecon, tPsql time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		data := benchData(i)
		writeCSV(b, csv, data)
		for k := 0; k < 2; k++ {
			truncate(b, conn)
			b.StartTimer()
			if (i+k)%2 == 0 {
				tRecon += recon(data)
			} else {
				tPsql += baseline()
			}
			b.StopTimer()
		}
	}
	rows := float64(b.N * benchResults * benchMetrics)
	b.ReportMetric(rows/tRecon.Seconds(), "recon_rows/s")
	b.ReportMetric(rows/tPsql.Seconds(), "psql_rows/s")
	b.ReportMetric(100*tPsql.Seconds()/tRecon.Seconds(), "%_of_psql")
}
