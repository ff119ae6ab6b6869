package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
)

// The cursor file holds the committed read position: the first sequence
// number not yet committed and where its frame starts. It is overwritten in
// place (one small pwrite per Commit, no rename, no directory sync) in two
// slots used alternately, each with a generation number and a checksum, so
// a write torn by a crash leaves the other slot intact. Losing the newest
// slot only means redelivering one batch, which at-least-once allows.
const (
	cursorName     = "cursor"
	cursorMagic    = "RSPC"
	cursorVersion  = 1
	cursorRecSize  = 44
	cursorSlotSize = 512 // slots in different sectors
)

// position is a place in the log: a segment (named by its first sequence
// number) and a byte offset in it.
type position struct {
	seg uint64
	off int64
}

type cursorState struct {
	gen     uint64
	headSeq uint64
	head    position
}

func (c cursorState) encode() []byte {
	b := make([]byte, cursorRecSize)
	copy(b, cursorMagic)
	b[4] = cursorVersion
	binary.LittleEndian.PutUint64(b[8:], c.gen)
	binary.LittleEndian.PutUint64(b[16:], c.headSeq)
	binary.LittleEndian.PutUint64(b[24:], c.head.seg)
	binary.LittleEndian.PutUint64(b[32:], uint64(c.head.off))
	binary.LittleEndian.PutUint32(b[40:], crc32.Checksum(b[:40], castagnoli))
	return b
}

func decodeCursor(b []byte) (cursorState, bool) {
	if len(b) < cursorRecSize || string(b[:4]) != cursorMagic || b[4] != cursorVersion ||
		binary.LittleEndian.Uint32(b[40:]) != crc32.Checksum(b[:40], castagnoli) {
		return cursorState{}, false
	}
	off := binary.LittleEndian.Uint64(b[32:])
	if off > 1<<62 || binary.LittleEndian.Uint64(b[16:]) > maxSeqNum {
		return cursorState{}, false
	}
	return cursorState{
		gen:     binary.LittleEndian.Uint64(b[8:]),
		headSeq: binary.LittleEndian.Uint64(b[16:]),
		head:    position{seg: binary.LittleEndian.Uint64(b[24:]), off: int64(off)},
	}, true
}

// readCursor returns the newest valid slot. found is false for a missing or
// empty file; damaged is true when the file has bytes but no valid slot.
func readCursor(f *os.File) (c cursorState, found, damaged bool, err error) {
	b := make([]byte, 2*cursorSlotSize)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return c, false, false, err
	}
	b = b[:n]
	for slot := 0; slot < 2; slot++ {
		start := slot * cursorSlotSize
		if start >= len(b) {
			break
		}
		if s, ok := decodeCursor(b[start:]); ok && (!found || s.gen > c.gen) {
			c, found = s, true
		}
	}
	return c, found, !found && n > 0, nil
}

// writeCursor writes c (with the next generation) into the slot the
// previous write did not use.
func writeCursor(f *os.File, c *cursorState) error {
	c.gen++
	_, err := f.WriteAt(c.encode(), int64(c.gen%2)*cursorSlotSize)
	return err
}
