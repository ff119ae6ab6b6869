package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/pipeline"
)

func TestAppendPeekCommitInOrder(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	defer s.Close()
	want := results(0, 500)
	for i := 0; i < len(want); {
		n := min(1+i%13, len(want)-i) // batches of varying size
		appendT(t, s, want[i:i+n])
		i += n
	}
	if st := s.Stats(); st.Depth != 500 || st.Appended != 500 {
		t.Fatalf("stats after 500 appends: %+v", st)
	}
	var got []model.Result
	for len(got) < len(want) {
		rs, err := s.Peek(context.Background(), 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) > 7 {
			t.Fatalf("Peek(7) returned %d", len(rs))
		}
		got = append(got, rs...)
		if err := s.Commit(len(rs)); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("results read back differ from the results appended")
	}
	if st := s.Stats(); st.Depth != 0 || st.Committed != 500 || st.Corrupt != 0 {
		t.Fatalf("stats after draining: %+v", st)
	}
}

func TestPeekReturnsSameHeadUntilCommit(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	defer s.Close()
	appendT(t, s, results(0, 10))
	ctx := context.Background()
	a, err := s.Peek(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Peek(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) || num(t, a[0]) != 0 || len(a) != 4 {
		t.Fatalf("second Peek differs: %v vs %v", a, b)
	}
	c, _ := s.Peek(ctx, 2) // smaller max: a prefix of the same head
	if len(c) != 2 || num(t, c[0]) != 0 || num(t, c[1]) != 1 {
		t.Fatalf("Peek(2) = %d results starting %d", len(c), num(t, c[0]))
	}
	if err := s.Commit(3); err == nil {
		t.Fatal("Commit(3) after Peek returned 2 succeeded")
	}
	if err := s.Commit(-1); err == nil {
		t.Fatal("Commit(-1) succeeded")
	}
	if err := s.Commit(0); err != nil {
		t.Fatalf("Commit(0): %v", err)
	}
	if err := s.Commit(2); err != nil {
		t.Fatal(err)
	}
	d, _ := s.Peek(ctx, 100)
	if len(d) != 8 || num(t, d[0]) != 2 || num(t, d[7]) != 9 {
		t.Fatalf("after Commit(2): %d results from %d", len(d), num(t, d[0]))
	}
	if _, err := s.Peek(ctx, 0); err == nil {
		t.Fatal("Peek(0) succeeded")
	}
}

func TestPeekBlocksUntilAppend(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	defer s.Close()
	got := make(chan []model.Result)
	go func() {
		rs, err := s.Peek(context.Background(), 10)
		if err != nil {
			t.Error(err)
		}
		got <- rs
	}()
	select {
	case <-got:
		t.Fatal("Peek returned on an empty spool")
	case <-time.After(50 * time.Millisecond):
	}
	appendT(t, s, results(42, 1))
	select {
	case rs := <-got:
		if len(rs) != 1 || num(t, rs[0]) != 42 {
			t.Fatalf("Peek got %v", rs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Peek did not wake up after Append")
	}
}

func TestPeekHonoursContext(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Peek(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Peek on empty spool with deadline: %v", err)
	}
}

func TestCloseWakesBlockedCalls(t *testing.T) {
	s := openT(t, t.TempDir(), Options{MaxBytes: 256 << 10})
	for s.Stats().Bytes < 200<<10 { // fill it; nobody consumes
		appendT(t, s, results(0, 10))
	}
	appendErr := make(chan error)
	go func() { appendErr <- s.Append(context.Background(), results(0, 1000)) }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().BlockedWaits == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := s.Stats(); st.BlockedWaits != 1 {
		t.Fatalf("Append did not block on a full spool: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-appendErr:
		if !errors.Is(err, pipeline.ErrQueueClosed) {
			t.Fatalf("blocked Append after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the blocked Append")
	}

	e := openT(t, t.TempDir(), Options{})
	peekErr := make(chan error)
	go func() {
		_, err := e.Peek(context.Background(), 1)
		peekErr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	e.Close()
	select {
	case err := <-peekErr:
		if !errors.Is(err, pipeline.ErrQueueClosed) {
			t.Fatalf("blocked Peek after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the blocked Peek")
	}
	if err := e.Append(context.Background(), results(0, 1)); !errors.Is(err, pipeline.ErrQueueClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := e.Commit(0); !errors.Is(err, pipeline.ErrQueueClosed) {
		t.Fatalf("Commit after Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestConcurrentProducersKeepTheirOrder(t *testing.T) {
	s := openT(t, t.TempDir(), Options{SegmentSize: 64 << 10})
	defer s.Close()
	const producers, each = 16, 300
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := s.Append(context.Background(), results(p*each+i, 1)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Consume concurrently with the producers.
	last := make([]int, producers)
	for i := range last {
		last[i] = -1
	}
	for n := 0; n < producers*each; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rs, err := s.Peek(ctx, 64)
		cancel()
		if err != nil {
			t.Fatalf("after %d results: %v", n, err)
		}
		for _, r := range rs {
			v := num(t, r)
			p, i := v/each, v%each
			if i != last[p]+1 {
				t.Fatalf("producer %d: result %d after %d", p, i, last[p])
			}
			last[p] = i
		}
		n += len(rs)
		if err := s.Commit(len(rs)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if st := s.Stats(); st.Depth != 0 || st.Appended != producers*each || st.Committed != producers*each {
		t.Fatalf("stats: %+v", st)
	}
}

func TestReopenResumesAtCommittedHead(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	appendT(t, s, results(0, 100))
	ctx := context.Background()
	rs, _ := s.Peek(ctx, 30)
	if err := s.Commit(len(rs)); err != nil {
		t.Fatal(err)
	}
	if rs, _ = s.Peek(ctx, 10); len(rs) != 10 { // peeked, never committed
		t.Fatal(len(rs))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{})
	if st := s.Stats(); st.Depth != 70 || st.Corrupt != 0 {
		t.Fatalf("reopened stats: %+v", st)
	}
	appendT(t, s, results(100, 5))
	got := drainAll(t, s, 16)
	equalInts(t, "after reopen", got, seq(30, 105))
	s.Close()

	s = openT(t, dir, Options{})
	defer s.Close()
	if st := s.Stats(); st.Depth != 0 {
		t.Fatalf("fully drained spool reopened with depth %d", st.Depth)
	}
	appendT(t, s, results(105, 1))
	equalInts(t, "append after drained reopen", drainAll(t, s, 10), []int{105})
}

func TestSegmentRolloverAndDeletion(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SegmentSize: 64 << 10})
	const n = 4000 // ≈ 400 KiB: several segments
	for i := 0; i < n; i += 50 {
		appendT(t, s, results(i, 50))
	}
	files := segFiles(t, dir)
	if len(files) < 4 {
		t.Fatalf("%d segment files after ~400 KiB with 64 KiB segments", len(files))
	}
	var onDisk int64
	for _, f := range files {
		fi, _ := os.Stat(f)
		onDisk += fi.Size()
	}
	if st := s.Stats(); st.Bytes != onDisk {
		t.Fatalf("Stats.Bytes = %d, files hold %d", st.Bytes, onDisk)
	}
	// Consume half: the segments before the head go away.
	got := make([]int, 0, n)
	for len(got) < n/2 {
		rs, _ := s.Peek(context.Background(), 100)
		for _, r := range rs {
			got = append(got, num(t, r))
		}
		s.Commit(len(rs))
	}
	mid := segFiles(t, dir)
	if len(mid) >= len(files) || len(mid) == 0 {
		t.Fatalf("segments: %d before, %d after consuming half", len(files), len(mid))
	}
	got = append(got, drainAll(t, s, 100)...)
	equalInts(t, "all results", got, seq(0, n))
	if left := segFiles(t, dir); len(left) != 1 {
		t.Fatalf("%d segment files left after draining everything", len(left))
	}
	// The next append after a consumed tail starts a fresh segment, freeing
	// the consumed one.
	appendT(t, s, results(n, 1))
	if left := segFiles(t, dir); len(left) != 1 || filepath.Base(left[0]) != segName(n+1) {
		t.Fatalf("segments after appending to a consumed spool: %v", left)
	}
	if st := s.Stats(); st.Bytes > 1024 {
		t.Fatalf("drained spool still holds %d bytes", st.Bytes)
	}
	s.Close()
	s = openT(t, dir, Options{SegmentSize: 64 << 10})
	defer s.Close()
	equalInts(t, "after reopen", drainAll(t, s, 10), []int{n})
}

func TestMaxBytesBackpressure(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 512 << 10
	s := openT(t, dir, Options{MaxBytes: maxBytes})
	defer s.Close()
	const n = 20000 // ≈ 2.4 MB: several times MaxBytes
	var peak atomic.Int64
	done := make(chan struct{})
	go func() { // producer
		defer close(done)
		for i := 0; i < n; i += 10 {
			if err := s.Append(context.Background(), results(i, 10)); err != nil {
				t.Error(err)
				return
			}
			if b := s.Stats().Bytes; b > peak.Load() {
				peak.Store(b)
			}
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); s.Stats().BlockedWaits == 0; { // let the producer hit the limit first
		if time.Now().After(deadline) {
			t.Fatalf("producer never reached the limit: %+v", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	var got []int
	for len(got) < n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rs, err := s.Peek(ctx, 100)
		cancel()
		if err != nil {
			t.Fatalf("after %d: %v", len(got), err)
		}
		for _, r := range rs {
			got = append(got, num(t, r))
		}
		s.Commit(len(rs))
		if len(got)%2000 == 0 {
			time.Sleep(time.Millisecond) // a slow sink
		}
	}
	<-done
	equalInts(t, "results through a bounded spool", got, seq(0, n))
	st := s.Stats()
	if st.BlockedWaits == 0 {
		t.Fatalf("producer never blocked: %+v", st)
	}
	// One batch may land on top of the limit's check; nothing more.
	if p := peak.Load(); p > maxBytes+4096 {
		t.Fatalf("spool grew to %d bytes, limit %d", p, maxBytes)
	}
	t.Logf("blocked appends: %d, peak bytes %d (limit %d)", st.BlockedWaits, peak.Load(), maxBytes)

	// Without a consumer a blocked Append gives up when its context ends.
	for s.Stats().Bytes < maxBytes-2048 {
		appendT(t, s, results(0, 10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Append(ctx, results(0, 100))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append on a full spool without consumer: %v", err)
	}
}

func TestBatchLargerThanMaxBytesIsAdmittedWhenEmpty(t *testing.T) {
	s := openT(t, t.TempDir(), Options{MaxBytes: 64 << 10})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Append(ctx, results(0, 2000)); err != nil { // ≈ 240 KB
		t.Fatalf("oversized batch into an empty spool: %v", err)
	}
	equalInts(t, "oversized batch", drainAll(t, s, 500), seq(0, 2000))
}

func TestFsyncPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy     FsyncPolicy
		syncOnEach bool
	}{{FsyncAlways, true}, {"", true}, {FsyncInterval, false}, {FsyncNever, false}} {
		t.Run(string(tc.policy), func(t *testing.T) {
			var segSyncs, appends atomic.Int64
			h := hooks{datasync: func(f *os.File) error {
				if strings.HasSuffix(f.Name(), segSuffix) {
					segSyncs.Add(1)
				}
				return datasync(f)
			}}
			dir := t.TempDir()
			s, err := open(dir, Options{Fsync: tc.policy, FsyncInterval: 30 * time.Millisecond}, h)
			if err != nil {
				t.Fatal(err)
			}
			base := segSyncs.Load() // creating the first segment
			for i := 0; i < 20; i++ {
				appendT(t, s, results(i, 1))
				appends.Add(1)
			}
			during := segSyncs.Load() - base
			switch {
			case tc.syncOnEach && during < 20:
				t.Fatalf("%d fsyncs for 20 sequential appends", during)
			case !tc.syncOnEach && during != 0:
				t.Fatalf("%d fsyncs during appends with policy %q", during, tc.policy)
			}
			if tc.policy == FsyncInterval {
				deadline := time.Now().Add(5 * time.Second)
				for segSyncs.Load() == base && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if segSyncs.Load() == base {
					t.Fatal("interval policy never fsynced")
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.policy == FsyncNever && segSyncs.Load() != 0 {
				t.Fatalf("policy never fsynced %d times", segSyncs.Load())
			}
			s = openT(t, dir, Options{Fsync: tc.policy})
			defer s.Close()
			equalInts(t, "after reopen", drainAll(t, s, 100), seq(0, 20))
		})
	}
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	var syncs atomic.Int64
	slow := hooks{datasync: func(f *os.File) error {
		syncs.Add(1)
		time.Sleep(2 * time.Millisecond) // a slow disk makes batches form
		return datasync(f)
	}}
	s, err := open(t.TempDir(), Options{}, slow)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := syncs.Load()
	const producers, each = 32, 20
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := s.Append(context.Background(), results(p*each+i, 1)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	n := syncs.Load() - base
	if n >= producers*each/4 {
		t.Fatalf("%d fsyncs for %d concurrent appends: no group commit", n, producers*each)
	}
	t.Logf("%d appends from %d goroutines took %d fsyncs", producers*each, producers, n)
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []Options{{Fsync: "sometimes"}, {MaxBytes: -1}, {SegmentSize: -5}, {FsyncInterval: -time.Second}} {
		if s, err := Open(dir, o); err == nil {
			s.Close()
			t.Errorf("Open with %+v succeeded", o)
		}
	}
	s := openT(t, dir, Options{})
	if s2, err := Open(dir, Options{}); err == nil {
		s2.Close()
		t.Fatal("a second Open of the same directory succeeded")
	}
	s.Close()
	s = openT(t, dir, Options{}) // the lock is released by Close
	s.Close()

	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Open(filepath.Join(file, "spool"), Options{}); err == nil {
		t.Fatal("Open under a regular file succeeded")
	}

	// A segment from a newer format version is refused, not destroyed.
	v2 := t.TempDir()
	os.WriteFile(filepath.Join(v2, segName(1)), append([]byte(segMagic), 2, 0), 0o600)
	if _, err := Open(v2, Options{}); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("Open of a version-2 segment: %v", err)
	}
}

func TestTooLargeResult(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNever})
	defer s.Close()
	r := result(0)
	r.LongOutput = strings.Repeat("x", MaxRecordSize)
	if err := s.Append(context.Background(), []model.Result{r}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of a %d-byte result: %v", len(r.LongOutput), err)
	}
	if st := s.Stats(); st.Depth != 0 || st.Appended != 0 {
		t.Fatalf("rejected result was counted: %+v", st)
	}
	appendT(t, s, results(1, 1))
	equalInts(t, "after rejection", drainAll(t, s, 10), []int{1})
}

func TestAppendCancelledContext(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Append(ctx, results(0, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with cancelled context: %v", err)
	}
	if err := s.Append(ctx, nil); err != nil {
		t.Fatalf("empty Append: %v", err)
	}
}

func TestCursorSlots(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	appendT(t, s, results(0, 30))
	for i := 0; i < 3; i++ {
		rs, _ := s.Peek(context.Background(), 10)
		s.Commit(len(rs))
	}
	s.Close() // head at 30; the slots hold generations with heads 20 and 30

	path := filepath.Join(dir, cursorName)
	b, _ := os.ReadFile(path)
	c0, ok0 := decodeCursor(b[:cursorRecSize])
	c1, ok1 := decodeCursor(b[cursorSlotSize:])
	if !ok0 || !ok1 {
		t.Fatal("cursor slots not both valid")
	}
	newer := cursorSlotSize
	if c0.gen > c1.gen {
		newer = 0
	}
	b[newer+20] ^= 0xff // damage the newest slot: the older one is used
	os.WriteFile(path, b, 0o600)
	s = openT(t, dir, Options{})
	if d := s.Stats().Depth; d != 10 {
		t.Fatalf("depth %d after losing the newest cursor slot, want 10 (one batch redelivered)", d)
	}
	s.Close()

	os.WriteFile(path, []byte("garbage garbage garbage"), 0o600)
	var logs logBuf
	s = openT(t, dir, Options{Logger: logs.logger()})
	defer s.Close()
	if !strings.Contains(logs.String(), "cursor file is damaged") {
		t.Fatalf("damaged cursor not logged: %s", logs.String())
	}
	got := drainAll(t, s, 100)
	if len(got) == 0 || got[len(got)-1] != 29 {
		t.Fatalf("after losing the cursor: %v", got)
	}
}
