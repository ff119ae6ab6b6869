package memtrim

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestExecutableMapping(t *testing.T) {
	const exe = "/usr/bin/recon"
	for _, c := range []struct {
		line   string
		lo, hi uintptr
		ok     bool
	}{
		{"00400000-00ffd000 r-xp 00000000 fe:00 9994294    /usr/bin/recon", 0x400000, 0xffd000, true},
		{"00ffd000-01cd9000 r--p 00bfd000 fe:00 9994294    /usr/bin/recon", 0xffd000, 0x1cd9000, true},
		{"00ffd000-01cd9000 r--p 00bfd000 fe:00 9994294    /usr/bin/recon (deleted)", 0xffd000, 0x1cd9000, true},
		{"01cd9000-01d9a000 rw-p 018d9000 fe:00 9994294    /usr/bin/recon", 0, 0, false}, // data: written to
		{"7f76015be000-7f7601a00000 rw-p 00000000 00:00 0", 0, 0, false},                 // anonymous
		{"7f7648491000-7f76484f1000 r-xp 00000000 fe:00 12  /usr/lib/libc.so.6", 0, 0, false},
		{"00400000-00ffd000 r-xp 00000000 fe:00 9994294    /usr/bin/recon2", 0, 0, false},
		{"00400000 r-xp 00000000 fe:00 9994294 /usr/bin/recon", 0, 0, false},
		{"00ffd000-00400000 r-xp 00000000 fe:00 9994294 /usr/bin/recon", 0, 0, false},
		{"zz-00400000 r-xp 00000000 fe:00 9994294 /usr/bin/recon", 0, 0, false},
		{"00400000-00ffd000 r 00000000 fe:00 9994294 /usr/bin/recon", 0, 0, false},
		{"", 0, 0, false},
	} {
		lo, hi, ok := executableMapping(c.line, exe)
		if lo != c.lo || hi != c.hi || ok != c.ok {
			t.Errorf("%q: %#x-%#x %v, want %#x-%#x %v", c.line, lo, hi, ok, c.lo, c.hi, c.ok)
		}
	}
}

// exeRSS sums the resident kB of this test binary's own mappings.
func exeRSS(t *testing.T) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kb, mine := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if fs := strings.Fields(l); len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":") {
			mine = len(fs) >= 6 && strings.TrimSuffix(strings.Join(fs[5:], " "), " (deleted)") == exe
			continue
		}
		if v, ok := strings.CutPrefix(l, "Rss:"); ok && mine {
			n, err := strconv.Atoi(strings.Fields(v)[0])
			if err != nil {
				t.Fatal(err)
			}
			kb += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return kb
}

// TestStartupPagesOut: the executable's read-only pages leave the
// resident set (the few this test runs afterwards come back).
func TestStartupPagesOut(t *testing.T) {
	before := exeRSS(t)
	n, err := Startup()
	if err != nil {
		t.Fatalf("Startup: %v (MADV_PAGEOUT needs Linux 5.4 or later)", err)
	}
	after := exeRSS(t)
	t.Logf("%d mappings paged out; executable resident %d kB → %d kB", n, before, after)
	if n < 2 {
		t.Errorf("%d mappings paged out, want the code and the read-only data", n)
	}
	if after > before/2 {
		t.Errorf("executable resident %d kB → %d kB: not paged out", before, after)
	}
}

// FuzzExecutableMapping: any line gives a clean answer and never a range
// that is empty or reversed.
func FuzzExecutableMapping(f *testing.F) {
	f.Add("00400000-00ffd000 r-xp 00000000 fe:00 9994294    /usr/bin/recon")
	f.Add("00ffd000-01cd9000 r--p 00bfd000 fe:00 9994294    /usr/bin/recon (deleted)")
	f.Add("ffffffffffffffff-0 r-xp 0 0 0 /usr/bin/recon")
	f.Fuzz(func(t *testing.T, line string) {
		if lo, hi, ok := executableMapping(line, "/usr/bin/recon"); ok && hi <= lo {
			t.Errorf("%q: range %#x-%#x", line, lo, hi)
		}
	})
}
