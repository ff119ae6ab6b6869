package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

type fakeSink struct {
	mu        sync.Mutex
	got       []model.Result
	failNext  int    // transient failures to return before succeeding
	poison    string // check name that is permanently rejected
	connects  int
	closes    int
	failConns int
}

func (s *fakeSink) Connect(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connects++
	if s.failConns > 0 {
		s.failConns--
		return errors.New("connection refused")
	}
	return nil
}

func (s *fakeSink) WriteBatch(_ context.Context, b []model.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		return errors.New("transient")
	}
	for _, r := range b {
		if r.Check == s.poison {
			return sink.Permanent(fmt.Errorf("cannot store %s", r.Check))
		}
	}
	s.got = append(s.got, b...)
	return nil
}

func (s *fakeSink) Close() error { s.mu.Lock(); s.closes++; s.mu.Unlock(); return nil }

func (s *fakeSink) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n []string
	for _, r := range s.got {
		n = append(n, r.Check)
	}
	return n
}

func waitUntil(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func results(prefix string, n int) []model.Result {
	rs := make([]model.Result, n)
	for i := range rs {
		rs[i] = model.Result{Check: fmt.Sprintf("%s%03d", prefix, i), Time: time.Unix(0, int64(i))}
	}
	return rs
}

func out(name string, s sink.Sink, q Queue, fp string) Output {
	return Output{Spec: &sink.Spec{Name: name, Type: "fake", BatchSize: 7}, Sink: s,
		Open: func() (Queue, error) { return q, nil }, Fingerprint: fp}
}

func TestFanOutInOrderWithRetries(t *testing.T) {
	p := New(nil)
	defer p.Close()
	a, b := &fakeSink{failNext: 3, failConns: 2}, &fakeSink{}
	p.SetOutputs([]Output{out("a", a, NewMemQueue(0), "1"), out("b", b, NewMemQueue(0), "1")})
	rs := results("r", 50)
	for i := 0; i < len(rs); i += 5 {
		if err := p.Publish(context.Background(), rs[i:i+5]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*fakeSink{a, b} {
		waitUntil(t, "all results written", func() bool { return len(s.names()) == 50 })
		for i, n := range s.names() {
			if n != rs[i].Check {
				t.Fatalf("out of order at %d: %s", i, n)
			}
		}
	}
	st := p.Stats()
	if st[0].WriteErrors < 5 || st[0].Written != 50 || st[0].Queue.Depth != 0 {
		t.Errorf("stats of the failing sink: %+v", st[0])
	}
	if a.connects < 3 {
		t.Errorf("sink was not reconnected after failures: %d connects", a.connects)
	}
}

func TestPermanentRejectionIsDeadLettered(t *testing.T) {
	dir := t.TempDir()
	p := New(nil)
	defer p.Close()
	s := &fakeSink{poison: "r013"}
	o := out("a", s, NewMemQueue(0), "1")
	o.DeadLetterDir = dir
	p.SetOutputs([]Output{o})
	if err := p.Publish(context.Background(), results("r", 30)...); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "good results written", func() bool { return len(s.names()) == 29 })
	for _, n := range s.names() {
		if n == "r013" {
			t.Fatal("poison result written")
		}
	}
	f, err := os.Open(filepath.Join(dir, "deadletter.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"check":"r013"`) || !strings.Contains(lines[0], "cannot store r013") {
		t.Errorf("dead-letter file: %q", lines)
	}
	if st := p.Stats()[0]; st.DeadLettered != 1 {
		t.Errorf("dead-lettered = %d", st.DeadLettered)
	}
}

func TestPermanentWithoutDeadLetterKeepsRetrying(t *testing.T) {
	p := New(nil)
	s := &fakeSink{poison: "r000"}
	p.SetOutputs([]Output{out("a", s, NewMemQueue(0), "1")})
	p.Publish(context.Background(), results("r", 1)...)
	waitUntil(t, "retries", func() bool { return p.Stats()[0].WriteErrors >= 2 })
	if st := p.Stats()[0]; st.Queue.Depth != 1 {
		t.Errorf("result left the queue without being written or dead-lettered: %+v", st)
	}
	p.Close()
}

func TestPublishBlocksWhenFull(t *testing.T) {
	p := New(nil)
	defer p.Close()
	s := &fakeSink{failNext: 1 << 30} // never drains
	q := NewMemQueue(10)
	p.SetOutputs([]Output{out("a", s, q, "1")})
	if err := p.Publish(context.Background(), results("r", 10)...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Publish(ctx, results("x", 1)...); err == nil {
		t.Fatal("publish into a full queue returned without waiting")
	}
	if q.Stats().BlockedWaits == 0 || q.Stats().Depth != 10 {
		t.Errorf("queue stats: %+v", q.Stats())
	}
	// Once the sink recovers, the blocked producer goes through.
	s.mu.Lock()
	s.failNext = 0
	s.mu.Unlock()
	if err := p.Publish(context.Background(), results("y", 5)...); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "drain", func() bool { return len(s.names()) == 15 })
}

func TestSetOutputsKeepsUnchanged(t *testing.T) {
	p := New(nil)
	defer p.Close()
	a1, b1 := &fakeSink{}, &fakeSink{}
	qa := NewMemQueue(0)
	p.SetOutputs([]Output{out("a", a1, qa, "fa"), out("b", b1, NewMemQueue(0), "fb")})
	p.Publish(context.Background(), results("r", 3)...)
	a2, b2, c2 := &fakeSink{}, &fakeSink{}, &fakeSink{}
	qa2 := NewMemQueue(0)
	p.SetOutputs([]Output{out("a", a2, qa2, "fa"), out("b", b2, NewMemQueue(0), "fb-changed"), out("c", c2, NewMemQueue(0), "fc")})
	p.Publish(context.Background(), results("s", 2)...)
	waitUntil(t, "a got all", func() bool { return len(a1.names()) == 5 })
	waitUntil(t, "b2 got new", func() bool { return len(b2.names()) == 2 })
	waitUntil(t, "c got new", func() bool { return len(c2.names()) == 2 })
	if len(a2.names()) != 0 || a2.closes != 1 {
		t.Errorf("unchanged output was replaced: a2 got %d, closed %d", len(a2.names()), a2.closes)
	}
	if qa2.Stats().Appended != 0 {
		t.Error("unused new queue was used")
	}
	if b1.closes == 0 {
		t.Error("changed output's old sink not closed")
	}
}

func TestSetOutputsRollsBack(t *testing.T) {
	p := New(nil)
	defer p.Close()
	a := &fakeSink{}
	first := out("a", a, nil, "1")
	// Like a spool, the queue can be opened again after being closed.
	first.Open = func() (Queue, error) { return NewMemQueue(0), nil }
	p.SetOutputs([]Output{first})
	bad := Output{Spec: &sink.Spec{Name: "a", Type: "fake"}, Sink: &fakeSink{}, Fingerprint: "2",
		Open: func() (Queue, error) { return nil, errors.New("disk on fire") }}
	if err := p.SetOutputs([]Output{bad}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("SetOutputs: %v", err)
	}
	p.Publish(context.Background(), results("r", 2)...)
	waitUntil(t, "old output restored", func() bool { return len(a.names()) == 2 })
}

func TestSubscribers(t *testing.T) {
	p := New(nil)
	s := &fakeSink{}
	p.SetOutputs([]Output{out("a", s, NewMemQueue(0), "1")})
	all := p.Subscribe(100, nil)
	only := p.Subscribe(100, func(r *model.Result) bool { return r.Check == "r001" })
	slow := p.Subscribe(1, nil)
	p.Publish(context.Background(), results("r", 3)...)
	for i := 0; i < 3; i++ {
		if r := <-all.C; r.Check != fmt.Sprintf("r%03d", i) {
			t.Errorf("got %s", r.Check)
		}
	}
	if r := <-only.C; r.Check != "r001" {
		t.Errorf("filter: %s", r.Check)
	}
	if slow.Dropped() != 2 {
		t.Errorf("slow subscriber dropped %d, want 2", slow.Dropped())
	}
	only.Close()
	p.Publish(context.Background(), results("q", 1)...)
	if _, ok := <-only.C; ok {
		t.Error("closed subscription still receives")
	}
	p.Close()
	if _, ok := <-all.C; !ok {
		return
	}
	for range all.C {
	}
}
