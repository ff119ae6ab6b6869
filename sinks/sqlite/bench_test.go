package sqlite

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

	"github.com/reconmon/recon/agent/model"
)

const (
	benchResults = 10000 // results per iteration
	benchMetrics = 10    // numeric metrics per result: 100,000 metric rows
	benchBatch   = 5000  // results per WriteBatch
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

// BenchmarkSQLiteIngest measures metric rows/s written through the sink
// (status rows, idempotent inserts, rollups, synchronous=FULL commits, in
// batches of benchBatch results) into a fresh file per iteration. When the
// sqlite3 shell is installed, the same metric rows are also .imported from
// CSV into the same table of an identical file (one transaction, as the
// shell does it) as a baseline, alternating with recon.
func BenchmarkSQLiteIngest(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	shell, _ := exec.LookPath("sqlite3")
	var tRecon, tShell time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		data := benchData(i)
		path := filepath.Join(dir, fmt.Sprintf("recon-%d.db", i))
		s := openAt(b, path)
		var csv, basePath string
		if shell != "" {
			csv = filepath.Join(dir, "rows.csv")
			writeCSV(b, csv, data)
			basePath = filepath.Join(dir, fmt.Sprintf("shell-%d.db", i))
			bs := openAt(b, basePath) // the same schema
			bs.Close()
		}
		for k := 0; k < 2; k++ {
			if (i+k)%2 == 0 {
				b.StartTimer()
				t0 := time.Now()
				for j := 0; j < len(data); j += benchBatch {
					if err := s.WriteBatch(ctx, data[j:j+benchBatch]); err != nil {
						b.Fatal(err)
					}
				}
				tRecon += time.Since(t0)
				b.StopTimer()
			} else if shell != "" {
				cmd := exec.Command(shell, basePath, ".import --csv "+csv+" metric_numeric")
				b.StartTimer()
				t0 := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
					b.Fatalf("sqlite3 .import: %v %s", err, out)
				}
				tShell += time.Since(t0)
				b.StopTimer()
			}
		}
		s.Close()
	}
	rows := float64(b.N * benchResults * benchMetrics)
	b.ReportMetric(rows/tRecon.Seconds(), "recon_rows/s")
	if shell != "" {
		b.ReportMetric(rows/tShell.Seconds(), "sqlite3_rows/s")
		b.ReportMetric(100*tShell.Seconds()/tRecon.Seconds(), "%_of_sqlite3")
	}
}

func writeCSV(b *testing.B, path string, rs []model.Result) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, r := range rs {
		for _, m := range r.Metrics {
			v, _ := m.Value.Float()
			fmt.Fprintf(w, "%s,%s,%d,%s\n", r.CheckID, m.Name, r.Time.UnixNano(), strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}
