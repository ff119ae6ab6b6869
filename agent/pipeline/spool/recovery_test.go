package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTornTail cuts the newest segment at many byte offsets, as a crash in
// the middle of a write does, and checks that Open keeps exactly the
// complete records before the cut, truncates the rest, logs it, and that
// the spool then works normally.
func TestTornTail(t *testing.T) {
	src := t.TempDir()
	s := openT(t, src, Options{Fsync: FsyncNever})
	const n = 60
	for i := 0; i < n; i += 3 {
		appendT(t, s, results(i, 3))
	}
	s.Close()
	path := segFiles(t, src)[0]
	orig, _ := os.ReadFile(path)
	offs := frameOffsets(t, path)
	ends := append(slices.Clone(offs[1:]), int64(len(orig)))

	cuts := []int64{0, 1, segHdrSize - 1, segHdrSize, int64(len(orig)) - 1}
	for _, o := range offs {
		cuts = append(cuts, o, o+1, o+frameHdrSize-1, o+frameHdrSize, o+frameHdrSize+1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 60; i++ {
		cuts = append(cuts, rng.Int64N(int64(len(orig))))
	}
	for _, cut := range cuts {
		dir := t.TempDir()
		seg := filepath.Join(dir, filepath.Base(path))
		os.WriteFile(seg, orig[:cut], 0o640)
		var logs logBuf
		s := openT(t, dir, Options{Fsync: FsyncNever, Logger: logs.logger()})
		whole := 0
		for _, e := range ends {
			if e <= cut {
				whole++
			}
		}
		if st := s.Stats(); st.Depth != int64(whole) || st.Corrupt != 0 {
			t.Fatalf("cut at %d: stats %+v, want depth %d", cut, st, whole)
		}
		atBoundary := cut <= segHdrSize || slices.Contains(ends, cut)
		if logged := strings.Contains(logs.String(), "truncating a partial record"); logged == atBoundary && cut > segHdrSize {
			t.Fatalf("cut at %d (boundary %v): truncation logged %v: %s", cut, atBoundary, logged, logs.String())
		}
		appendT(t, s, results(1000, 1))
		got := drainAll(t, s, 7)
		equalInts(t, "after torn tail", got, append(seq(0, whole), 1000))
		if st := s.Stats(); st.Corrupt != 0 {
			t.Fatalf("cut at %d: corrupt %d", cut, st.Corrupt)
		}
		s.Close()
		if q := quarantineFiles(t, dir); len(q) != 0 {
			t.Fatalf("cut at %d: a torn tail was quarantined: %v", cut, q)
		}
		s = openT(t, dir, Options{Fsync: FsyncNever})
		if st := s.Stats(); st.Depth != 0 {
			t.Fatalf("cut at %d: depth %d after draining and reopening", cut, st.Depth)
		}
		s.Close()
	}
}

// corruptFixture is a spool of n results in two segments, closed.
type corruptFixture struct {
	dir        string
	segs       []string
	offs, ends [][]int64 // frame offsets and ends per segment
	firsts     []int     // result number of each segment's first record
}

func newCorruptFixture(t *testing.T, n int) corruptFixture {
	t.Helper()
	f := corruptFixture{dir: t.TempDir()}
	s := openT(t, f.dir, Options{Fsync: FsyncNever, SegmentSize: 64 << 10})
	for i := 0; i < n; i++ {
		appendT(t, s, results(i, 1))
	}
	s.Close()
	f.segs = segFiles(t, f.dir)
	if len(f.segs) != 2 {
		t.Fatalf("fixture has %d segments, want 2", len(f.segs))
	}
	first := 0
	for _, p := range f.segs {
		offs := frameOffsets(t, p)
		fi, _ := os.Stat(p)
		f.offs = append(f.offs, offs)
		f.ends = append(f.ends, append(slices.Clone(offs[1:]), fi.Size()))
		f.firsts = append(f.firsts, first)
		first += len(offs)
	}
	return f
}

func (f corruptFixture) mutate(t *testing.T, seg int, fn func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(f.segs[seg])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.segs[seg], fn(b), 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptionIsQuarantinedAndCounted(t *testing.T) {
	const n = 800
	type damage struct {
		seg   int
		lost  []int // result numbers the damage destroys
		apply func(f corruptFixture, b []byte) []byte
	}
	flip := func(seg, rec int, at int64) damage {
		return damage{seg: seg, apply: func(f corruptFixture, b []byte) []byte {
			b[f.offs[seg][rec]+at] ^= 0x5a
			return b
		}}
	}
	cases := map[string]func(f corruptFixture) damage{
		"payload byte in the first segment": func(f corruptFixture) damage {
			d := flip(0, 100, frameHdrSize+20)
			d.lost = []int{100}
			return d
		},
		"length field": func(f corruptFixture) damage {
			d := flip(0, 200, 1)
			d.lost = []int{200}
			return d
		},
		"checksum field": func(f corruptFixture) damage {
			d := flip(0, 201, 5)
			d.lost = []int{201}
			return d
		},
		"sequence field": func(f corruptFixture) damage {
			d := flip(0, 202, 9)
			d.lost = []int{202}
			return d
		},
		"three consecutive records": func(f corruptFixture) damage {
			return damage{seg: 0, lost: []int{300, 301, 302}, apply: func(f corruptFixture, b []byte) []byte {
				for r := 300; r <= 302; r++ {
					b[f.offs[0][r]+frameHdrSize+3] ^= 0xff
				}
				return b
			}}
		},
		"last record of a full segment": func(f corruptFixture) damage {
			last := len(f.offs[0]) - 1
			d := flip(0, last, frameHdrSize+2)
			d.lost = []int{last}
			return d
		},
		"middle of the segment being written": func(f corruptFixture) damage {
			d := flip(1, 10, frameHdrSize+5)
			d.lost = []int{f.firsts[1] + 10}
			return d
		},
		"length field in the segment being written": func(f corruptFixture) damage {
			// A length pointing past the written data must not look like a
			// frame still being written (the reader would wait forever).
			d := flip(1, 20, 2)
			d.lost = []int{f.firsts[1] + 20}
			return d
		},
		"zeroed 4 KiB block": func(f corruptFixture) damage {
			from, to := int64(8192), int64(12288)
			var lost []int
			for r := range f.offs[0] {
				if f.offs[0][r] < to && f.ends[0][r] > from {
					lost = append(lost, r)
				}
			}
			return damage{seg: 0, lost: lost, apply: func(f corruptFixture, b []byte) []byte {
				clear(b[from:to])
				return b
			}}
		},
		"valid checksum, payload does not decode": func(f corruptFixture) damage {
			return damage{seg: 0, lost: []int{50}, apply: func(f corruptFixture, b []byte) []byte {
				o := f.offs[0][50]
				b[o+frameHdrSize] = 99 // unknown codec version
				putFrameHeader(b[o:f.ends[0][50]], binary.LittleEndian.Uint64(b[o+8:]))
				return b
			}}
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			f := newCorruptFixture(t, n)
			d := mk(f)
			var before []byte
			f.mutate(t, d.seg, func(b []byte) []byte {
				b = d.apply(f, b)
				before = slices.Clone(b)
				return b
			})
			var logs logBuf
			s := openT(t, f.dir, Options{Logger: logs.logger(), SegmentSize: 64 << 10})
			got := drainAll(t, s, 50)
			var want []int
			for i := 0; i < n; i++ {
				if !slices.Contains(d.lost, i) {
					want = append(want, i)
				}
			}
			equalInts(t, "results around the damage", got, want)
			st := s.Stats()
			if st.Corrupt != uint64(len(d.lost)) {
				t.Fatalf("Corrupt = %d, want %d", st.Corrupt, len(d.lost))
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "quarantine") {
				t.Fatalf("damage not logged as an error: %s", logs.String())
			}
			s.Close()
			q := quarantineFiles(t, f.dir)
			if len(q) != 1 {
				t.Fatalf("quarantine files: %v", q)
			}
			// The quarantined bytes are exactly the damaged records' bytes.
			first, last := d.lost[0]-f.firsts[d.seg], d.lost[len(d.lost)-1]-f.firsts[d.seg]
			qb, _ := os.ReadFile(q[0])
			if !bytes.Equal(qb, before[f.offs[d.seg][first]:f.ends[d.seg][last]]) {
				t.Fatalf("quarantine holds %d bytes, not the damaged records' %d", len(qb), f.ends[d.seg][last]-f.offs[d.seg][first])
			}
			// Reopening does not meet the same damage again.
			s = openT(t, f.dir, Options{SegmentSize: 64 << 10})
			defer s.Close()
			if st := s.Stats(); st.Depth != 0 || st.Corrupt != 0 {
				t.Fatalf("after draining and reopening: %+v", st)
			}
		})
	}
}

func TestDamagedSegmentHeader(t *testing.T) {
	f := newCorruptFixture(t, 800)
	f.mutate(t, 0, func(b []byte) []byte { copy(b, "XXXXXX"); return b })
	var logs logBuf
	s := openT(t, f.dir, Options{Logger: logs.logger()})
	defer s.Close()
	equalInts(t, "behind a damaged header", drainAll(t, s, 100), seq(0, 800))
	if st := s.Stats(); st.Corrupt != 0 {
		t.Fatalf("a damaged header lost records: %+v", st)
	}
	if !strings.Contains(logs.String(), "damaged segment header") {
		t.Fatalf("not logged: %s", logs.String())
	}
	if q := quarantineFiles(t, f.dir); len(q) != 1 {
		t.Fatalf("quarantine files: %v", q)
	}
}

func TestDamageInCommittedRecordsIsIgnored(t *testing.T) {
	f := newCorruptFixture(t, 800)
	s := openT(t, f.dir, Options{})
	for committed := 0; committed < 200; {
		rs, _ := s.Peek(context.Background(), 50)
		s.Commit(len(rs))
		committed += len(rs)
	}
	s.Close()
	f.mutate(t, 0, func(b []byte) []byte { b[f.offs[0][100]+20] ^= 1; return b })
	s = openT(t, f.dir, Options{})
	defer s.Close()
	equalInts(t, "after committed damage", drainAll(t, s, 100), seq(200, 800))
	if st := s.Stats(); st.Corrupt != 0 {
		t.Fatalf("damage in committed records counted: %+v", st)
	}
}

// TestDamageFoundAfterCursorLoss: with the cursor gone the reader
// scans from the oldest segment; damage there is counted once.
func TestDamageFoundAfterCursorLoss(t *testing.T) {
	f := newCorruptFixture(t, 800)
	f.mutate(t, 0, func(b []byte) []byte { b[f.offs[0][10]+20] ^= 1; return b })
	os.Remove(filepath.Join(f.dir, cursorName))
	s := openT(t, f.dir, Options{})
	defer s.Close()
	got := drainAll(t, s, 100)
	equalInts(t, "without a cursor", got, slices.Delete(seq(0, 800), 10, 11))
	if st := s.Stats(); st.Corrupt != 1 {
		t.Fatalf("corrupt = %d", st.Corrupt)
	}
}

// A torn final frame in the newest segment is indistinguishable from damage
// to the last record; it is truncated (and logged), never left half-read.
func TestDamagedLastRecordIsTreatedAsTorn(t *testing.T) {
	f := newCorruptFixture(t, 800)
	last := len(f.offs[1]) - 1
	f.mutate(t, 1, func(b []byte) []byte { b[f.offs[1][last]+20] ^= 1; return b })
	var logs logBuf
	s := openT(t, f.dir, Options{Logger: logs.logger()})
	defer s.Close()
	equalInts(t, "damaged last record", drainAll(t, s, 100), seq(0, 799))
	if !strings.Contains(logs.String(), "truncating a partial record") {
		t.Fatalf("not logged: %s", logs.String())
	}
}
