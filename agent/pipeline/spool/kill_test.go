//go:build unix

package spool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

// The kill -9 test runs an agent-like helper process (this test binary,
// re-executed) with producers appending as fast as they can and a consumer
// draining, SIGKILLs it at a random moment, and repeats on the same spool.
// The helper reports on stdout, always after the fact:
//
//	A <id>   Append of this result returned nil (acknowledged)
//	D <id>   the consumer received this result (written before Commit)
//	C <n>    Commit(n) returned
//	S <corrupt> <depth>   stats right after Open
//
// An id is round/producer/n; each producer appends its n in order.
const (
	killEnvDir   = "RECON_SPOOL_KILL_DIR"
	killEnvRound = "RECON_SPOOL_KILL_ROUND"
	killSegSize  = 64 << 10 // small, so rounds roll over and delete segments
	killProducer = 16
)

func TestKillHelperProcess(t *testing.T) {
	dir := os.Getenv(killEnvDir)
	if dir == "" {
		return // only meaningful as the helper of TestKill9
	}
	round, _ := strconv.Atoi(os.Getenv(killEnvRound))
	out := &lockedWriter{w: bufio.NewWriterSize(os.Stdout, 64<<10)}
	// Every policy survives a process crash; fsync only matters for power loss.
	policy := []FsyncPolicy{FsyncAlways, FsyncAlways, FsyncInterval, FsyncNever}[round%4]
	s, err := Open(dir, Options{Fsync: policy, SegmentSize: killSegSize, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper open:", err)
		os.Exit(3)
	}
	st := s.Stats()
	out.line(fmt.Sprintf("S %d %d", st.Corrupt, st.Depth), true)
	go func() { // acknowledgements reach the parent within a few ms
		for range time.Tick(2 * time.Millisecond) {
			out.flush()
		}
	}()
	for p := 0; p < killProducer; p++ {
		go func() {
			for n := 0; ; {
				k := 1 + n%3 // single results and small batches
				rs := make([]model.Result, k)
				for i := range rs {
					rs[i] = result(0)
					rs[i].Output = fmt.Sprintf("%d/%d/%d", round, p, n+i)
				}
				if err := s.Append(context.Background(), rs); err != nil {
					fmt.Fprintln(os.Stderr, "helper append:", err)
					os.Exit(3)
				}
				for i := range rs {
					out.line("A "+rs[i].Output, false)
				}
				n += k
			}
		}()
	}
	go func() { // the consumer, a sink writer
		for {
			rs, err := s.Peek(context.Background(), 1+rand.IntN(300))
			if err != nil {
				fmt.Fprintln(os.Stderr, "helper peek:", err)
				os.Exit(3)
			}
			for _, r := range rs {
				out.line("D "+r.Output, false)
			}
			out.flush()                                                   // the deliveries are on record before the commit
			time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond) // the sink's write
			if err := s.Commit(len(rs)); err != nil {
				fmt.Fprintln(os.Stderr, "helper commit:", err)
				os.Exit(3)
			}
			out.line(fmt.Sprintf("C %d", len(rs)), true)
		}
	}()
	time.Sleep(60 * time.Second) // the parent kills us long before
	os.Exit(4)
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *lockedWriter) line(s string, flush bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.WriteString(s)
	l.w.WriteByte('\n')
	if flush {
		l.w.Flush()
	}
}

func (l *lockedWriter) flush() {
	l.mu.Lock()
	l.w.Flush()
	l.mu.Unlock()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Contains(b.b.Bytes(), []byte(s))
}

// killRound is what one helper run reported.
type killRound struct {
	acked     []string
	delivered []string
	committed int // sum of C lines
	afterLast int // D lines after the last C line
	corrupt   int
	depth     int // at open
}

func parseKillOutput(t *testing.T, out []byte) killRound {
	t.Helper()
	var r killRound
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[:i+1] // a line cut by the kill is not a report
	} else {
		out = nil
	}
	for _, line := range strings.Split(string(out), "\n") {
		kind, arg, _ := strings.Cut(line, " ")
		switch kind {
		case "A":
			r.acked = append(r.acked, arg)
		case "D":
			r.delivered = append(r.delivered, arg)
			r.afterLast++
		case "C":
			n, _ := strconv.Atoi(arg)
			r.committed += n
			r.afterLast = 0
		case "S":
			fmt.Sscan(arg, &r.corrupt, &r.depth)
		}
	}
	return r
}

func TestKill9(t *testing.T) {
	rounds := 8
	if testing.Short() {
		rounds = 5
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))

	var log []string          // the spool's contents in order, as delivered
	index := map[string]int{} // id → position in log
	head := 0                 // log position of the first result not reported committed
	slack := 0                // results after head whose commit may have gone unreported
	redelivered := 0
	acked := map[string]bool{}

	absorb := func(name string, r killRound) {
		t.Helper()
		if len(r.delivered) == 0 {
			return
		}
		p, ok := index[r.delivered[0]]
		if !ok {
			p = len(log)
		}
		if p != head && p != head+slack {
			t.Fatalf("%s: delivery resumed at log position %d; committed head was %d (+%d unreported)", name, p, head, slack)
		}
		for i, id := range r.delivered {
			if p+i < len(log) {
				if log[p+i] != id {
					t.Fatalf("%s: redelivery differs at %d: %s, stored %s", name, p+i, id, log[p+i])
				}
				redelivered++
				continue
			}
			if _, dup := index[id]; dup {
				t.Fatalf("%s: %s delivered twice as a new result", name, id)
			}
			index[id] = len(log)
			log = append(log, id)
		}
		head, slack = p+r.committed, r.afterLast
	}

	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), killEnvDir+"="+dir, killEnvRound+"="+strconv.Itoa(round))
		var stdout syncBuffer
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); !stdout.contains("\nA "); {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: helper acknowledged nothing; stderr: %s", round, stderr.String())
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: helper ended by itself (%v); stderr: %s", round, err, stderr.String())
		}
		r := parseKillOutput(t, stdout.b.Bytes())
		if r.corrupt != 0 {
			t.Fatalf("round %d: spool opened with %d corrupt records after kill -9", round, r.corrupt)
		}
		for _, id := range r.acked {
			acked[id] = true
		}
		absorb(fmt.Sprintf("round %d", round), r)
		t.Logf("round %d: backlog %d at open; %d acknowledged, %d delivered, %d committed", round, r.depth, len(r.acked), len(r.delivered), r.committed)
	}

	// Drain what is left in this process and check the whole history.
	s := openT(t, dir, Options{SegmentSize: killSegSize})
	var final killRound
	if st := s.Stats(); st.Corrupt != 0 {
		t.Fatalf("final open: %+v", st)
	}
	for s.Stats().Depth > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rs, err := s.Peek(ctx, 1000)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			final.delivered = append(final.delivered, r.Output)
		}
		s.Commit(len(rs))
		final.committed += len(rs)
	}
	absorb("final drain", final)
	s.Close()
	if left := segFiles(t, dir); len(left) != 1 {
		t.Fatalf("%d segment files after draining everything", len(left))
	}

	// 0 lost: every acknowledged result was delivered.
	lost := 0
	for id := range acked {
		if _, ok := index[id]; !ok {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged result %s never delivered", id)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged results lost", lost, len(acked))
	}
	// In order, without gaps: per round and producer, n runs 0, 1, 2, …
	// and rounds follow each other. A stored result that was not reported
	// acknowledged can only be the newest of its producer (its Append was
	// in flight, or its report unflushed, at the kill).
	next := map[string]int{}
	lastRound := 0
	type stream struct{ round, producer int }
	unacked := map[stream][]int{}
	maxAcked := map[stream]int{}
	for _, id := range log {
		var rd, p, n int
		fmt.Sscanf(id, "%d/%d/%d", &rd, &p, &n)
		if rd < lastRound {
			t.Fatalf("result %s of round %d stored after round %d", id, rd, lastRound)
		}
		lastRound = rd
		key := fmt.Sprintf("%d/%d", rd, p)
		if n != next[key] {
			t.Fatalf("stream %s: result %d follows %d", key, n, next[key]-1)
		}
		next[key] = n + 1
		k := stream{rd, p}
		if acked[id] {
			maxAcked[k] = max(maxAcked[k], n)
		} else {
			unacked[k] = append(unacked[k], n)
		}
	}
	stored := 0
	for k, ns := range unacked {
		for _, n := range ns {
			if n < maxAcked[k] {
				t.Fatalf("round %d producer %d: result %d stored but not acknowledged, before acknowledged %d", k.round, k.producer, n, maxAcked[k])
			}
			stored++
		}
	}
	t.Logf("%d rounds: %d acknowledged, %d stored, 0 lost, %d redelivered after crashes (uncommitted at the kill), "+
		"%d stored without a printed acknowledgement (in flight at the kill)", rounds, len(acked), len(log), redelivered, stored)
}
