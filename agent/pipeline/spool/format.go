package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
)

// On-disk format, version 1 (README.md has the picture).
//
// A segment file is named after the sequence number of its first record,
// %020d.seg, and starts with an 8-byte header: "RSPOOL", version, 0. Frames
// follow back to back:
//
//	len uint32 LE | crc uint32 LE | seq uint64 LE | payload (len bytes)
//
// payload is model.Result.AppendBinary; crc is CRC-32C (Castagnoli) over
// len, seq and payload, so a damaged length or sequence number is caught as
// surely as a damaged payload. Sequence numbers are global, dense and
// increasing: they make depth a subtraction, let recovery count exactly how
// many records a damaged region held, and reject stale frames.
const (
	segMagic     = "RSPOOL"
	segVersion   = 1
	segHdrSize   = 8
	frameHdrSize = 16
	segSuffix    = ".seg"

	// MaxRecordSize bounds one encoded result. Nothing a check produces
	// comes near it; it keeps a damaged length field from making recovery
	// read or allocate gigabytes.
	MaxRecordSize = 64 << 20

	// minFrameSize is the smallest frame AppendBinary can produce (header,
	// version byte, check id, six empty strings, time, duration, status,
	// state type, attempt, two empty counts); recovery uses it to bound how
	// many records a damaged region can have held.
	minFrameSize = frameHdrSize + 1 + 16 + 6 + 1 + 1 + 2 + 1 + 2

	readChunk = 64 << 10 // the reader's buffer: small, as every sink has one

	// maxSeqNum bounds sequence numbers (a million years at a million
	// results a second) so arithmetic on them cannot overflow, whatever a
	// damaged file claims.
	maxSeqNum = 1 << 62
)

// ErrTooLarge is returned by Append for a result whose encoding exceeds
// MaxRecordSize.
var ErrTooLarge = errors.New("result too large for the spool")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// parseSegName returns the first sequence number encoded in a segment file
// name; other files in the directory (cursor, lock, quarantine) do not parse.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

func segHeader() []byte {
	return append([]byte(segMagic), segVersion, 0)
}

// checkHeader classifies a segment header: ok, damaged (bad magic, so the
// bytes are treated as corruption) or an unsupported version (a newer
// agent wrote it: refuse rather than destroy it).
func checkHeader(h []byte) (ok bool, err error) {
	if len(h) < segHdrSize || string(h[:len(segMagic)]) != segMagic {
		return false, nil
	}
	if h[len(segMagic)] != segVersion {
		return false, fmt.Errorf("unsupported segment format version %d (this build reads %d)", h[len(segMagic)], segVersion)
	}
	return true, nil
}

// frameCRC is the checksum of the frame in f (header and payload).
func frameCRC(f []byte) uint32 {
	c := crc32.Update(0, castagnoli, f[0:4])
	return crc32.Update(c, castagnoli, f[8:])
}

// putFrameHeader stamps seq and the checksum into the frame at the start of
// f, whose length field and payload are already in place.
func putFrameHeader(f []byte, seq uint64) {
	binary.LittleEndian.PutUint64(f[8:16], seq)
	binary.LittleEndian.PutUint32(f[4:8], frameCRC(f))
}

type frameStatus int

const (
	frameOK    frameStatus = iota
	frameShort             // the data ends before the frame does
	frameBad               // not a valid frame
)

// parseFrame parses the frame at the start of b. size is the frame's full
// size when the header's length is plausible (also for frameShort).
func parseFrame(b []byte) (seq uint64, payload []byte, size int, st frameStatus) {
	if len(b) < frameHdrSize {
		return 0, nil, 0, frameShort
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > MaxRecordSize {
		return 0, nil, 0, frameBad
	}
	size = frameHdrSize + int(n)
	if len(b) < size {
		return 0, nil, size, frameShort
	}
	if binary.LittleEndian.Uint32(b[4:8]) != frameCRC(b[:size]) {
		return 0, nil, size, frameBad
	}
	seq = binary.LittleEndian.Uint64(b[8:16])
	if seq == 0 || seq > maxSeqNum {
		return 0, nil, size, frameBad
	}
	return seq, b[frameHdrSize:size], size, frameOK
}

// frameIter reads the frames of one segment file through a small window,
// so reading a large spool needs little memory. It never reads at or past
// the limit its caller gives, which for the segment being written is the
// end of the last completed write.
type frameIter struct {
	f   io.ReaderAt
	buf []byte
	off int64 // file offset of buf[0]
}

// window returns the bytes from off up to at least off+n (fewer only when
// limit comes first), reading from the file when the buffer does not hold
// them. The slice is valid until the next call.
func (it *frameIter) window(off int64, n int, limit int64) ([]byte, error) {
	want := min(int64(n), limit-off)
	if want <= 0 {
		return nil, nil
	}
	end := it.off + int64(len(it.buf))
	if off >= it.off && off+want <= end {
		return it.buf[off-it.off : min(end, limit)-it.off], nil
	}
	size := min(max(want, readChunk), limit-off)
	if int64(cap(it.buf)) < size || (cap(it.buf) > 4*readChunk && size <= readChunk) {
		it.buf = make([]byte, size) // grow for a big frame, shrink back after it
	}
	it.buf = it.buf[:size]
	got, err := it.f.ReadAt(it.buf, off)
	it.off, it.buf = off, it.buf[:got]
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return it.buf, nil // short only if the file is shorter than limit claims
}

// frame parses the frame at off.
func (it *frameIter) frame(off, limit int64) (seq uint64, payload []byte, size int64, st frameStatus, err error) {
	hdr, err := it.window(off, frameHdrSize, limit)
	if err != nil {
		return 0, nil, 0, frameBad, err
	}
	seq, payload, n, st := parseFrame(hdr)
	if st != frameShort || n == 0 {
		return seq, payload, int64(n), st, nil // decided, or the header itself is cut short
	}
	if off+int64(n) > limit {
		return 0, nil, int64(n), frameShort, nil
	}
	b, err := it.window(off, n, limit)
	if err != nil {
		return 0, nil, 0, frameBad, err
	}
	seq, payload, n, st = parseFrame(b)
	return seq, payload, int64(n), st, nil
}

// resync finds the first valid frame at or after from (and before limit)
// whose sequence number lies in [minSeq, maxSeq]; -1 if there is none. The
// sequence window is a cheap filter that makes a chance match of a 32-bit
// checksum in damaged bytes practically impossible and keeps the scan
// linear: only candidates that pass it are checksummed.
func (it *frameIter) resync(from, limit int64, minSeq, maxSeq uint64) (int64, error) {
	p := from
	for p+frameHdrSize <= limit {
		w, err := it.window(p, readChunk, limit)
		if err != nil {
			return -1, err
		}
		if len(w) < frameHdrSize {
			return -1, nil
		}
		next := p + int64(len(w)-frameHdrSize+1)
		for i := 0; i+frameHdrSize <= len(w); i++ {
			seq := binary.LittleEndian.Uint64(w[i+8:])
			if seq < minSeq || seq > maxSeq {
				continue
			}
			n := binary.LittleEndian.Uint32(w[i:])
			cand := p + int64(i)
			if n == 0 || n > MaxRecordSize || cand+frameHdrSize+int64(n) > limit {
				continue
			}
			_, _, _, st, err := it.frame(cand, limit)
			if err != nil {
				return -1, err
			}
			if st == frameOK {
				return cand, nil
			}
			next = cand + 1 // the window moved: continue after the candidate
			break
		}
		p = next
	}
	return -1, nil
}

// seqBound is the highest sequence number a valid frame can carry after a
// damaged region starting at expect in a segment of size bytes: every
// record needs at least minFrameSize bytes.
func seqBound(expect uint64, size int64) uint64 {
	return expect + uint64(max(size, 0))/minFrameSize + 1
}

// readHeader reads a segment's header bytes (fewer if the file is short).
func readHeader(f *os.File) ([]byte, error) {
	h := make([]byte, segHdrSize)
	n, err := f.ReadAt(h, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return h[:n], nil
}
