package postgres

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/testutil/pgtest"
)

const (
	helperEnv  = "RECON_PG_KILL_HELPER_DSN"
	killBatch  = 2000
	killChecks = 10
)

var killBase = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func killBatchResults(b int) []model.Result {
	rs := make([]model.Result, killBatch)
	for i := range rs {
		seq := b*killBatch + i
		check := "k" + strconv.Itoa(i%killChecks)
		rs[i] = model.Result{CheckID: model.CheckID("a", check), Check: check, Agent: "a", Time: killBase.Add(time.Duration(seq) * time.Millisecond),
			Status: model.OK, Output: "seq " + strconv.Itoa(seq), Metrics: []model.Metric{{Name: "seq", Value: model.Int(int64(seq))},
				{Name: "phase", Value: model.String(strconv.Itoa(b % 3))}}}
	}
	return rs
}

// helperMain writes batch after batch from the first one (earlier ones
// are replays) and reports each commit on stdout, until it is killed.
func helperMain() int {
	ctx := context.Background()
	s, err := Open(ctx, Settings{DSN: os.Getenv(helperEnv)}, quiet())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for b := 0; b < 500; b++ {
		if err := s.WriteBatch(ctx, killBatchResults(b)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("ok %d\n", b)
	}
	return 0
}

// TestKilledWriter SIGKILLs a process writing batches at random moments,
// several times, on a cluster with fsync on, and checks that the store is
// consistent: every batch whole or absent (one transaction), every
// acknowledged batch present, metrics and rollups matching the status
// rows exactly.
func TestKilledWriter(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Fsync: true})
	dsn := c.NewDatabase(t)
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	acked := -1
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := 0; round < rounds; round++ {
		cmd := osexec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+dsn)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		target := acked + 2 + r.IntN(3)
		for sc.Scan() {
			b, _ := strconv.Atoi(strings.TrimPrefix(sc.Text(), "ok "))
			acked = max(acked, b)
			if b >= target {
				break
			}
		}
		// Kill somewhere inside one of the next batches.
		time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		for sc.Scan() { // acknowledgements written before the kill
			b, _ := strconv.Atoi(strings.TrimPrefix(sc.Text(), "ok "))
			acked = max(acked, b)
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("helper ended by itself, not killed: %v\n%s", err, stderr.String())
		}
	}
	if acked < rounds {
		t.Fatalf("only %d batches acknowledged", acked+1)
	}
	// Batches are written in order, so what is stored is a prefix of
	// whole batches: 0 … k with k >= the last acknowledged one.
	perBatch := map[int]int{}
	s := open(t, dsn)
	ctx := context.Background()
	pool, _ := s.handle()
	rows, err := pool.Query(ctx, `SELECT (extract(epoch FROM ts - $1) * 1000)::bigint / $2, count(*) FROM recon.status GROUP BY 1`, killBase, killBatch)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b, n int
		if err := rows.Scan(&b, &n); err != nil {
			t.Fatal(err)
		}
		perBatch[b] = n
	}
	rows.Close()
	last := -1
	for b := 0; b < len(perBatch); b++ {
		if perBatch[b] != killBatch {
			t.Errorf("batch %d: %d status rows, want %d (whole batches only)", b, perBatch[b], killBatch)
		}
		last = b
	}
	if len(perBatch) != last+1 {
		t.Errorf("stored batches are not a prefix: %v", perBatch)
	}
	if last < acked {
		t.Errorf("acknowledged batch %d missing (stored up to %d)", acked, last)
	}
	total := (last + 1) * killBatch
	if n := count(t, dsn, `SELECT count(*) FROM recon.metric_numeric`); n != total {
		t.Errorf("metric rows: %d, want %d", n, total)
	}
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT sum(count)::int FROM recon.rollup_5m`); n != total {
		t.Errorf("5m rollups count %d values, want %d", n, total)
	}
	if n := count(t, dsn, `SELECT sum(count)::int FROM recon.rollup_1d`); n != total {
		t.Errorf("1d rollups count %d values, want %d", n, total)
	}
	if n := count(t, dsn, `SELECT (sum(sum) - (SELECT sum(value) FROM recon.metric_numeric))::int FROM recon.rollup_1h`); n != 0 {
		t.Errorf("1h rollup sums differ from the raw sum by %d", n)
	}
	// phase changes with every batch: one text point per check per batch.
	if n := count(t, dsn, `SELECT count(*) FROM recon.metric_text`); n != (last+1)*killChecks {
		t.Errorf("text points: %d, want %d", n, (last+1)*killChecks)
	}
}
