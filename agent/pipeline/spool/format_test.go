package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

var update = flag.Bool("update", false, "rewrite the golden segment file")

const goldenSegment = "../../../testdata/spool/v1.seg"

// TestGoldenSegment pins the on-disk format: spools written by an older
// build must stay readable by a newer one.
func TestGoldenSegment(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncNever})
	appendT(t, s, results(0, 2))
	appendT(t, s, results(2, 3))
	s.Close()
	written, err := os.ReadFile(filepath.Join(dir, segName(1)))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(goldenSegment, written, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(goldenSegment)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(written, golden) {
		t.Fatalf("segment format changed: wrote %d bytes, golden file has %d; bump segVersion and keep reading version 1", len(written), len(golden))
	}

	// And the golden file reads back as those results.
	rd := t.TempDir()
	os.WriteFile(filepath.Join(rd, segName(1)), golden, 0o640)
	s = openT(t, rd, Options{})
	defer s.Close()
	rs, err := s.Peek(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rs, results(0, 5)) {
		t.Fatalf("golden segment decodes to %v", rs)
	}
}

func TestFrameLayout(t *testing.T) {
	r := result(7)
	payload := r.AppendBinary(nil)
	f := make([]byte, frameHdrSize, frameHdrSize+len(payload))
	binary.LittleEndian.PutUint32(f, uint32(len(payload)))
	f = append(f, payload...)
	putFrameHeader(f, 42)
	// Independently computed: CRC-32C over length, sequence and payload.
	c := crc32.Checksum(append(append(slices4(f[0:4]), f[8:16]...), payload...), crc32.MakeTable(crc32.Castagnoli))
	if got := binary.LittleEndian.Uint32(f[4:8]); got != c {
		t.Fatalf("crc %08x, want %08x", got, c)
	}
	seq, p, size, st := parseFrame(f)
	if st != frameOK || seq != 42 || size != len(f) || !bytes.Equal(p, payload) {
		t.Fatalf("parseFrame = %d %d %v", seq, size, st)
	}
	bad := map[string]func([]byte) []byte{
		"empty":          func(b []byte) []byte { return nil },
		"header only":    func(b []byte) []byte { return b[:frameHdrSize] },
		"cut payload":    func(b []byte) []byte { return b[:len(b)-1] },
		"zero length":    func(b []byte) []byte { binary.LittleEndian.PutUint32(b, 0); return b },
		"huge length":    func(b []byte) []byte { binary.LittleEndian.PutUint32(b, MaxRecordSize+1); return b },
		"flipped crc":    func(b []byte) []byte { b[5] ^= 1; return b },
		"flipped seq":    func(b []byte) []byte { b[9] ^= 1; return b },
		"flipped length": func(b []byte) []byte { b[0] ^= 1; return b },
		"flipped data":   func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b },
		"sequence zero": func(b []byte) []byte {
			clear(b[8:16])
			binary.LittleEndian.PutUint32(b[4:], frameCRC(b))
			return b
		},
		"sequence out of range": func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[8:], maxSeqNum+1)
			binary.LittleEndian.PutUint32(b[4:], frameCRC(b))
			return b
		},
	}
	for name, mut := range bad {
		b := mut(bytes.Clone(f))
		if _, _, _, st := parseFrame(b); st == frameOK {
			t.Errorf("%s: parsed as a valid frame", name)
		}
	}
}

func slices4(b []byte) []byte { return append([]byte(nil), b...) }

func TestSegmentNames(t *testing.T) {
	if n, ok := parseSegName(segName(123)); !ok || n != 123 {
		t.Fatal(n, ok)
	}
	for _, bad := range []string{"cursor", "LOCK", "123.seg", "0000000000000000000x.seg", "00000000000000000001.seg.tmp",
		"quarantine-00000000000000000001-8.bad", "99999999999999999999.seg"} {
		if _, ok := parseSegName(bad); ok {
			t.Errorf("%q parsed as a segment name", bad)
		}
	}
}

// FuzzReadSegment feeds arbitrary bytes to the frame reader, walking them as
// recovery does. It must never panic, and every frame it accepts must carry
// a correct CRC-32C, lie inside the data, and not overlap the previous one.
func FuzzReadSegment(f *testing.F) {
	golden, _ := os.ReadFile(goldenSegment)
	f.Add(golden)
	f.Add([]byte{})
	f.Add(append([]byte(segMagic), 1, 0))
	if len(golden) > 40 {
		g := bytes.Clone(golden)
		g[40] ^= 0xff
		f.Add(g)
		f.Add(golden[:len(golden)-3])
	}
	table := crc32.MakeTable(crc32.Castagnoli)
	f.Fuzz(func(t *testing.T, data []byte) {
		it := frameIter{f: bytes.NewReader(data)}
		limit := int64(len(data))
		off, expect, prevEnd := int64(0), uint64(1), int64(0)
		for off < limit {
			seq, payload, size, st, err := it.frame(off, limit)
			if err != nil {
				t.Fatal(err)
			}
			if st != frameOK {
				q, err := it.resync(off+1, limit, expect, seqBound(expect, limit))
				if err != nil {
					t.Fatal(err)
				}
				if q < 0 {
					break
				}
				if q <= off {
					t.Fatalf("resync went backwards: %d → %d", off, q)
				}
				off = q
				continue
			}
			end := off + size
			if off < prevEnd || end > limit || size < frameHdrSize+1 {
				t.Fatalf("frame [%d,%d) overlaps %d or leaves the data (%d)", off, end, prevEnd, limit)
			}
			fr := data[off:end]
			sum := crc32.Update(crc32.Checksum(fr[0:4], table), table, fr[8:])
			if binary.LittleEndian.Uint32(fr[4:8]) != sum || !bytes.Equal(payload, fr[frameHdrSize:]) ||
				binary.LittleEndian.Uint64(fr[8:16]) != seq {
				t.Fatalf("accepted a frame at %d whose checksum does not match", off)
			}
			prevEnd, off = end, end
			expect = max(expect, seq+1)
		}
	})
}

// FuzzOpen uses arbitrary bytes as a spool's only segment and as its
// cursor file. Open must not panic, and every result it delivers must be
// the decoding of a frame with a correct checksum somewhere in those bytes;
// afterwards the spool must work normally.
func FuzzOpen(f *testing.F) {
	golden, _ := os.ReadFile(goldenSegment)
	cur := cursorState{gen: 1, headSeq: 3, head: position{seg: 1, off: segHdrSize}}.encode()
	f.Add(golden, []byte(nil))
	f.Add(golden, cur)
	f.Add([]byte{}, cur)
	f.Add([]byte(segMagic), []byte("RSPC"))
	if len(golden) > 100 {
		g := bytes.Clone(golden)
		g[100] ^= 0x10
		f.Add(g, []byte(nil))
		f.Add(golden[:90], cur)
		f.Add(append(bytes.Clone(golden), golden[segHdrSize:]...), []byte(nil)) // stale duplicates
	}
	f.Fuzz(func(t *testing.T, data, cursor []byte) {
		// Oracle: every checksum-valid, decodable frame at any offset.
		var valid []model.Result
		for off := 0; off+frameHdrSize <= len(data); off++ {
			if _, p, _, st := parseFrame(data[off:]); st == frameOK {
				if r, err := model.DecodeBinary(p); err == nil {
					valid = append(valid, r)
				}
			}
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, segName(1)), data, 0o640)
		if cursor != nil {
			os.WriteFile(filepath.Join(dir, cursorName), cursor, 0o640)
		}
		s, err := Open(dir, Options{Fsync: FsyncNever, Logger: discard()})
		if err != nil {
			if len(data) >= segHdrSize && string(data[:len(segMagic)]) == segMagic && data[len(segMagic)] != segVersion {
				return // a segment from another format version is refused
			}
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		for waits := 0; s.Stats().Depth > 0; {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
			rs, err := s.Peek(ctx, 100)
			cancel()
			if err != nil {
				// Depth can count records that turn out to be lost; reading
				// past them corrects it. A reader that stays stuck is a bug.
				if waits++; waits > 200 {
					t.Fatalf("reader stuck with depth %d: %v", s.Stats().Depth, err)
				}
				continue
			}
			for _, r := range rs {
				found := false
				for _, v := range valid {
					if reflect.DeepEqual(r, v) {
						found = true
						break
					}
				}
				if !found {
					t.Fatalf("delivered a result that no valid frame holds: %+v", r)
				}
			}
			if err := s.Commit(len(rs)); err != nil {
				t.Fatal(err)
			}
		}
		want := result(77)
		if err := s.Append(context.Background(), []model.Result{want}); err != nil {
			t.Fatalf("Append after recovery: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rs, err := s.Peek(ctx, 10)
		if err != nil || len(rs) != 1 || !reflect.DeepEqual(rs[0], want) {
			t.Fatalf("after recovery Peek = %v, %v", rs, err)
		}
	})
}

func TestCursorDecodeRejectsBadInput(t *testing.T) {
	good := cursorState{gen: 7, headSeq: 99, head: position{seg: 50, off: 1234}}
	b := good.encode()
	if c, ok := decodeCursor(b); !ok || c != good {
		t.Fatalf("round trip: %+v %v", c, ok)
	}
	bad := map[string]func([]byte) []byte{
		"empty":        func(b []byte) []byte { return nil },
		"short":        func(b []byte) []byte { return b[:cursorRecSize-1] },
		"magic":        func(b []byte) []byte { b[0] = 'X'; return b },
		"version":      func(b []byte) []byte { b[4] = 2; return b },
		"crc":          func(b []byte) []byte { b[41] ^= 1; return b },
		"flipped head": func(b []byte) []byte { b[17] ^= 1; return b },
		"offset out of range": func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[32:], 1<<63)
			binary.LittleEndian.PutUint32(b[40:], crc32.Checksum(b[:40], castagnoli))
			return b
		},
		"sequence out of range": func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[16:], maxSeqNum+1)
			binary.LittleEndian.PutUint32(b[40:], crc32.Checksum(b[:40], castagnoli))
			return b
		},
	}
	for name, mut := range bad {
		if _, ok := decodeCursor(mut(bytes.Clone(b))); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}
