package main

import (
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
	"github.com/reconmon/recon/agent/store"
	"github.com/reconmon/recon/internal/testutil"
	"github.com/reconmon/recon/internal/testutil/pgtest"
	"github.com/reconmon/recon/sinks/postgres"
	"github.com/reconmon/recon/sinks/sqlite"
)

// seqPlugin writes a plugin that increments a counter on every run and
// reports it as output and perfdata, so the test knows every result the
// agent produced.
func seqPlugin(t *testing.T, dir string) (plugin, counter string) {
	counter = filepath.Join(dir, "counter")
	os.WriteFile(counter, []byte("0"), 0o644)
	plugin = filepath.Join(dir, "seq.sh")
	// flock: the counter must not be raced (runs never overlap, but a
	// killed run may leave the lock; flock releases it with the process).
	os.WriteFile(plugin, []byte(`#!/bin/sh
exec 9>>"`+counter+`.lock"
flock 9
n=$(cat "`+counter+`")
n=$((n+1))
echo "$n" > "`+counter+`.tmp" && mv "`+counter+`.tmp" "`+counter+`"
echo "OK seq=$n|seq=$n"
`), 0o755)
	return plugin, counter
}

func readCounter(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// killLoop runs the agent, SIGKILLs it at random moments `rounds` times and
// restarts it, then stops it cleanly. It returns, per round, the counter
// value read right after the kill: every sequence number below it was
// acknowledged before the kill (runs of one check never overlap and a run
// only ends once its result is in every spool), so it must be stored; the
// number equal to it may have died in flight.
func killLoop(t *testing.T, cfgPath, counter string, rounds int, between func(round int), drained func(last int) bool) []int {
	var boundaries []int
	for round := 0; round <= rounds; round++ {
		cmd := exec.Command(reconBinary(t), "agent", "-c", cfgPath, "--log-level", "warn")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		start := readCounter(t, counter)
		// Let it produce some results, then kill it at a random moment.
		deadline := time.Now().Add(20 * time.Second)
		want := start + 5 + rand.IntN(10)
		for readCounter(t, counter) < want && time.Now().Before(deadline) {
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		}
		if round == rounds {
			// Let the spool drain into the store before the clean stop.
			deadline := time.Now().Add(60 * time.Second)
			for drained != nil && !drained(readCounter(t, counter)) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			break
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		boundaries = append(boundaries, readCounter(t, counter))
		if between != nil {
			between(round)
		}
	}
	return boundaries
}

// checkSequence verifies: every sequence number is stored at most once;
// every number below the last one is stored except, at most, the number
// read right after each kill.
func checkSequence(t *testing.T, stored map[int]int, last int, boundaries []int) {
	t.Helper()
	mayMiss := map[int]bool{}
	for _, b := range boundaries {
		mayMiss[b] = true
	}
	lost, dup, inflight, timedOut := 0, 0, 0, stored[0]
	var missing []int
	for seq := 1; seq <= last; seq++ {
		switch n := stored[seq]; {
		case n > 1:
			dup++
			t.Errorf("seq %d stored %d times", seq, n)
		case n == 0 && mayMiss[seq]:
			inflight++
		case n == 0 && seq < last:
			lost++
			missing = append(missing, seq)
		}
	}
	// A gap is a loss unless a stored timed-out run accounts for it.
	if lost > timedOut {
		t.Errorf("sequence numbers %v missing, only %d explained by runs that timed out", missing, timedOut)
	}
	t.Logf("%d results produced over %d kill -9s: %d lost, %d gaps from %d timed-out runs, %d duplicated, %d in flight at a kill (never acknowledged)",
		last, len(boundaries), max(0, lost-timedOut), min(lost, timedOut), timedOut, dup, inflight)
}

func TestKill9SQLite(t *testing.T) {
	testutil.RequireBinary(t, "flock")
	dir := t.TempDir()
	plugin, counter := seqPlugin(t, dir)
	cfgPath := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[agent]
listen = "127.0.0.1:0"
data_dir = %q
[[check]]
name = "seq"
type = "nagios"
command = %q
period = "100ms"
[[sink]]
type = "sqlite"
batch_size = 7
`, filepath.Join(dir, "data"), plugin)), 0o644)
	rounds := 6
	if testing.Short() {
		rounds = 3
	}
	boundaries := killLoop(t, cfgPath, counter, rounds, nil, nil)
	last := readCounter(t, counter)
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "data", "recon.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stored := storedSeqs(t, s)
	if len(stored) < 30 {
		t.Fatalf("only %d results stored", len(stored))
	}
	checkSequence(t, stored, last, boundaries)
}

// storedSeqs reads the seq metric of every stored result. Key 0 counts the
// stored runs that timed out: such a run may have taken a number from the
// counter and been killed before printing it, so each explains one gap.
func storedSeqs(t *testing.T, st store.Store) map[int]int {
	stored := map[int]int{}
	err := st.Replay(context.Background(), time.Unix(0, 0), time.Now().Add(time.Hour), func(r model.Result) error {
		if r.Status == model.Unknown && strings.Contains(r.Output, "timed out") {
			stored[0]++
		}
		for _, m := range r.Metrics {
			if m.Name == "seq" {
				v, _ := m.Value.Float()
				stored[int(v)]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// TestKill9Postgres: the real agent with the Postgres sink, kill -9 at
// random moments while Postgres itself is stopped and restarted: every
// acknowledged result is in recon.status exactly once.
func TestKill9Postgres(t *testing.T) {
	testutil.RequireBinary(t, "flock")
	pgc := pgtest.Start(t, pgtest.Options{Fsync: true})
	dsn := pgc.DSN("postgres")
	dir := t.TempDir()
	plugin, counter := seqPlugin(t, dir)
	cfgPath := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[agent]
listen = "127.0.0.1:0"
data_dir = %q
[[check]]
name = "seq"
type = "nagios"
command = %q
period = "100ms"
[[sink]]
type = "postgres"
dsn = %q
batch_size = 5
`, filepath.Join(dir, "data"), plugin, dsn)), 0o644)
	rounds := 6
	if testing.Short() {
		rounds = 4
	}
	ctx := context.Background()
	var reader *postgres.Store
	openReader := func() *postgres.Store {
		if reader == nil {
			r, err := postgres.Open(ctx, postgres.Settings{DSN: dsn}, nil)
			if err != nil {
				return nil
			}
			reader = r
		}
		return reader
	}
	defer func() {
		if reader != nil {
			reader.Close()
		}
	}()
	restarted := make(chan struct{}, rounds)
	pending := 0
	between := func(round int) {
		if round%2 == 1 {
			return
		}
		for ; pending > 0; pending-- {
			<-restarted // the previous outage is over
		}
		pending++
		// Postgres goes away while the agent restarts and comes back a
		// little later: the agent must spool and catch up.
		if err := pgc.Stop(); err != nil {
			t.Error(err)
			return
		}
		if reader != nil {
			reader.Close()
			reader = nil
		}
		go func() {
			time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
			if err := pgc.Start(); err != nil {
				t.Error(err)
			}
			restarted <- struct{}{}
		}()
	}
	drained := func(last int) bool {
		r := openReader()
		if r == nil {
			return false
		}
		stored := storedSeqs(t, r)
		gaps := 0
		for seq := 1; seq < last; seq++ {
			if stored[seq] == 0 {
				gaps++
			}
		}
		return gaps <= stored[0]
	}
	boundaries := killLoop(t, cfgPath, counter, rounds, between, drained)
	for ; pending > 0; pending-- {
		<-restarted
	}
	r := openReader()
	if r == nil {
		t.Fatal("cannot open the store")
	}
	stored := storedSeqs(t, r)
	if len(stored) < 30 {
		t.Fatalf("only %d results stored", len(stored))
	}
	checkSequence(t, stored, readCounter(t, counter), boundaries)
}
