package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pageOutExecutable asks the kernel (MADV_PAGEOUT, Linux 5.4+) to reclaim
// the resident pages of the program's own read-only file mappings: its
// code and read-only data.
func pageOutExecutable() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lo, hi, ok := executableMapping(sc.Text(), exe)
		if !ok {
			continue
		}
		// By address: the mapping is not Go memory, so it is not turned
		// into a slice.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, unix.MADV_PAGEOUT); e != 0 {
			return n, fmt.Errorf("memtrim: madvise(MADV_PAGEOUT) %#x-%#x: %w", lo, hi, e)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("memtrim: read /proc/self/maps: %w", err)
	}
	return n, nil
}

// executableMapping parses a /proc/self/maps line and reports the range
// of a non-writable mapping of the file exe.
func executableMapping(line, exe string) (lo, hi uintptr, ok bool) {
	fs := strings.Fields(line)
	if len(fs) < 6 || len(fs[1]) != 4 || fs[1][1] == 'w' {
		return 0, 0, false
	}
	// A binary replaced on disk (an upgrade) shows as "path (deleted)".
	if strings.TrimSuffix(strings.Join(fs[5:], " "), " (deleted)") != exe {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(fs[0], "-")
	if !ok {
		return 0, 0, false
	}
	x, err1 := strconv.ParseUint(a, 16, 64)
	y, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil || y <= x {
		return 0, 0, false
	}
	return uintptr(x), uintptr(y), true
}
