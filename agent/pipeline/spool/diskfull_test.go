package spool

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestWriteFailureKeepsSpoolConsistent injects ENOSPC (after a partial
// write) and EIO from fsync into the write path.
func TestWriteFailureKeepsSpoolConsistent(t *testing.T) {
	var full, syncFails atomic.Bool
	h := hooks{
		writeAt: func(f *os.File, b []byte, off int64) (int, error) {
			if full.Load() && len(b) > 1 {
				n, _ := f.WriteAt(b[:len(b)/2], off) // the disk took half of it
				return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
			}
			return f.WriteAt(b, off)
		},
		datasync: func(f *os.File) error {
			if syncFails.Load() {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: syscall.EIO}
			}
			return datasync(f)
		},
	}
	dir := t.TempDir()
	s, err := open(dir, Options{}, h)
	if err != nil {
		t.Fatal(err)
	}
	appendT(t, s, results(0, 10))
	before := s.Stats()
	seg := segFiles(t, dir)[0]
	size := func() int64 { fi, _ := os.Stat(seg); return fi.Size() }
	sizeBefore := size()

	full.Store(true)
	for i := 0; i < 3; i++ {
		err := s.Append(context.Background(), results(100, 5))
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Append on a full disk: %v", err)
		}
	}
	if st := s.Stats(); st != before {
		t.Fatalf("failed appends changed the stats: %+v → %+v", before, st)
	}
	if size() != sizeBefore {
		t.Fatalf("segment is %d bytes after failed writes, was %d: partial frames left behind", size(), sizeBefore)
	}
	full.Store(false)
	syncFails.Store(true)
	if err := s.Append(context.Background(), results(200, 2)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append with failing fsync: %v", err)
	}
	if size() != sizeBefore {
		t.Fatal("a write whose fsync failed was left in the segment")
	}
	syncFails.Store(false)
	appendT(t, s, results(10, 5)) // space is back
	equalInts(t, "after recovering", drainAll(t, s, 4), seq(0, 15))
	s.Close()

	s = openT(t, dir, Options{})
	defer s.Close()
	if st := s.Stats(); st.Depth != 0 || st.Corrupt != 0 {
		t.Fatalf("reopened after disk errors: %+v", st)
	}
}
