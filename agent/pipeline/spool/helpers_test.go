package spool

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

// result returns a realistic result whose Output carries its number.
func result(n int) model.Result {
	return model.Result{
		CheckID: model.CheckID("agent1", "disk"), Check: "disk", Type: "nagios", Agent: "agent1", Target: "db1",
		Time: time.Unix(1700000000, int64(n)), Duration: 12 * time.Millisecond,
		Status: model.OK, StateType: model.Hard, Attempt: 1,
		Output:  strconv.Itoa(n),
		Tags:    map[string]string{"dc": "ams"},
		Metrics: []model.Metric{{Name: "used", Value: model.Float(float64(n)), Unit: "B"}},
	}
}

func results(from, n int) []model.Result {
	rs := make([]model.Result, n)
	for i := range rs {
		rs[i] = result(from + i)
	}
	return rs
}

func num(t testing.TB, r model.Result) int {
	t.Helper()
	n, err := strconv.Atoi(r.Output)
	if err != nil {
		t.Fatalf("result output %q is not a number", r.Output)
	}
	return n
}

// logBuf captures a spool's log so tests can assert what was reported.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openT(t testing.TB, dir string, opts Options) *Spool {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func appendT(t testing.TB, s *Spool, rs []model.Result) {
	t.Helper()
	if err := s.Append(context.Background(), rs); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// drainAll peeks and commits until the spool is empty and returns the
// numbers of the results read, in order.
func drainAll(t testing.TB, s *Spool, batch int) []int {
	t.Helper()
	var got []int
	for s.Stats().Depth > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rs, err := s.Peek(ctx, batch)
		cancel()
		if err != nil {
			t.Fatalf("Peek with depth %d: %v", s.Stats().Depth, err)
		}
		for _, r := range rs {
			got = append(got, num(t, r))
		}
		if err := s.Commit(len(rs)); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	return got
}

func seq(from, to int) []int { // [from, to)
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func equalInts(t testing.TB, what string, got, want []int) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %d results %s, want %d %s", what, len(got), short(got), len(want), short(want))
	}
}

func short(xs []int) string {
	if len(xs) <= 20 {
		return fmt.Sprint(xs)
	}
	return fmt.Sprintf("%v … %v", xs[:10], xs[len(xs)-10:])
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func quarantineFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "quarantine-*.bad"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// frameOffsets lists the offset of every frame in a segment file.
func frameOffsets(t testing.TB, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for off := segHdrSize; off < len(b); {
		_, _, size, st := parseFrame(b[off:])
		if st != frameOK {
			t.Fatalf("%s: frame at %d is not valid", path, off)
		}
		offs = append(offs, int64(off))
		off += size
	}
	return offs
}
