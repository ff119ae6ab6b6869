package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

const (
	helperEnv  = "RECON_SQLITE_KILL_HELPER_PATH"
	killBatch  = 1000
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
	s, err := Open(ctx, os.Getenv(helperEnv))
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
// several times, and checks the file: intact, every batch whole or absent,
// every acknowledged batch present (synchronous=FULL), metrics, text
// points and rollups matching the status rows exactly.
func TestKilledWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "recon.db")
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	acked := -1
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+path)
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
		time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		for sc.Scan() {
			b, _ := strconv.Atoi(strings.TrimPrefix(sc.Text(), "ok "))
			acked = max(acked, b)
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("helper ended by itself, not killed: %v\n%s", err, stderr.String())
		}
	}
	s := openAt(t, path)
	db, _ := s.handle()
	var integrity string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check: %s %v", integrity, err)
	}
	perBatch := map[int]int{}
	rows, err := db.Query(`SELECT (ts - ?) / 1000000 / ?, count(*) FROM status GROUP BY 1`, killBase.UnixNano(), killBatch)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b, n int
		rows.Scan(&b, &n)
		perBatch[b] = n
	}
	rows.Close()
	last := len(perBatch) - 1
	for b := 0; b <= last; b++ {
		if perBatch[b] != killBatch {
			t.Errorf("batch %d: %d status rows, want %d (whole batches, a prefix)", b, perBatch[b], killBatch)
		}
	}
	if last < acked {
		t.Errorf("acknowledged batch %d missing (stored up to %d)", acked, last)
	}
	total := (last + 1) * killBatch
	for q, want := range map[string]int{
		`SELECT count(*) FROM metric_numeric`: total,
		`SELECT sum(count) FROM rollup_5m`:    total,
		`SELECT sum(count) FROM rollup_1h`:    total,
		`SELECT sum(count) FROM rollup_1d`:    total,
		`SELECT CAST(sum(sum) - (SELECT sum(value) FROM metric_numeric) AS INTEGER) FROM rollup_1d`: 0,
		`SELECT count(*) FROM metric_text`: (last + 1) * killChecks,
	} {
		if n := count(t, s, q); n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
}
