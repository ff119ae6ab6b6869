//go:build linux

package spool

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/reconmon/recon/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestDiskFullOnRealFilesystem fills a real 1 MiB tmpfs: Append must fail
// with ENOSPC, keep every acknowledged result, and work again once the
// consumer has freed space.
func TestDiskFullOnRealFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.MissingPeer(t, "root, to mount a 1 MiB tmpfs for a real ENOSPC")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		testutil.MissingPeer(t, "mount a tmpfs (needs CAP_SYS_ADMIN): %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)

	s := openT(t, dir, Options{SegmentSize: 64 << 10})
	acked := 0
	var fullErr error
	for acked < 100000 {
		if err := s.Append(context.Background(), results(acked, 1)); err != nil {
			fullErr = err
			break
		}
		acked++
	}
	if !errors.Is(fullErr, syscall.ENOSPC) {
		t.Fatalf("after %d results: %v, want ENOSPC", acked, fullErr)
	}
	for i := 0; i < 3; i++ { // still full, still consistent
		if err := s.Append(context.Background(), results(acked, 1)); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("second append on a full disk: %v", err)
		}
	}
	if st := s.Stats(); st.Depth != int64(acked) {
		t.Fatalf("depth %d, acknowledged %d", st.Depth, acked)
	}
	t.Logf("disk full after %d results (%d bytes)", acked, s.Stats().Bytes)

	got := drainAll(t, s, 500) // frees the segments
	next := acked
	for i := 0; i < 1000; i++ {
		if err := s.Append(context.Background(), results(next, 1)); err != nil {
			t.Fatalf("append after space was freed: %v", err)
		}
		next++
	}
	s.Close()
	s = openT(t, dir, Options{SegmentSize: 64 << 10})
	defer s.Close()
	got = append(got, drainAll(t, s, 500)...)
	equalInts(t, "every acknowledged result", got, seq(0, next))
	if st := s.Stats(); st.Corrupt != 0 {
		t.Fatalf("corrupt after disk full: %+v", st)
	}
}
