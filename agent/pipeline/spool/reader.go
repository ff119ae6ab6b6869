package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/pipeline"
)

// reader is the consumer's position in the log, ahead of the committed
// head by the results in Spool.cache.
type reader struct {
	seg        *segment
	f          *os.File // nil when the segment file vanished
	it         frameIter
	off        int64  // next byte to parse
	expect     uint64 // sequence number the next frame should carry
	hdrChecked bool
}

// entry is a result read ahead of the head, with where the head moves when
// it is committed (past any damage that follows it).
type entry struct {
	r       model.Result
	seq     uint64
	next    position
	nextSeq uint64
}

// positionReader puts the reader at the committed head: directly at the
// cursor's recorded position when the frame there is the expected one,
// otherwise at the start of the segment holding headSeq, skipping what
// was already committed.
func (s *Spool) positionReader(cursorFound bool) error {
	i := 0
	for i+1 < len(s.segs) && s.segs[i+1].first <= s.headSeq {
		i++
	}
	sg := s.segs[i]
	if err := s.openForRead(sg); err != nil {
		return err
	}
	s.head = position{seg: sg.first, off: segHdrSize}
	s.rd.off, s.rd.expect = segHdrSize, sg.first
	c := s.cur
	if cursorFound && c.headSeq == s.headSeq && c.head.seg == sg.first && s.hintValid(sg, c.head.off) {
		s.head = c.head
		s.rd.off, s.rd.expect = c.head.off, s.headSeq
		s.rd.hdrChecked = c.head.off > segHdrSize // past the header already
	}
	return nil
}

func (s *Spool) hintValid(sg *segment, off int64) bool {
	if s.rd.f == nil || off < segHdrSize || off > sg.size {
		return false
	}
	if off == sg.size {
		return sg == s.segs[len(s.segs)-1] && s.headSeq == s.tailSeq
	}
	seq, _, _, st, err := s.rd.it.frame(off, sg.size)
	return err == nil && st == frameOK && seq == s.headSeq
}

func (s *Spool) openForRead(sg *segment) error {
	if s.rd.f != nil {
		s.rd.f.Close()
	}
	s.rd = reader{seg: sg, off: segHdrSize, expect: s.rd.expect}
	f, err := os.Open(sg.path)
	if errors.Is(err, os.ErrNotExist) {
		s.log.Error("spool segment file vanished; its records are lost", "segment", sg.path)
		s.rd.hdrChecked = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("open segment for reading: %w", err)
	}
	s.rd.f, s.rd.it = f, frameIter{f: f}
	return nil
}

// Peek returns up to max results from the head without removing them,
// blocking until there is at least one, ctx is done or the spool is closed.
// Peeking again before Commit returns the same head.
func (s *Spool) Peek(ctx context.Context, max int) ([]model.Result, error) {
	if max <= 0 {
		return nil, fmt.Errorf("spool: peek: max must be positive, got %d", max)
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		s.mu.Lock()
		closed, ch := s.closed, s.notify
		s.mu.Unlock()
		if closed {
			return nil, pipeline.ErrQueueClosed
		}
		if len(s.cache) < max {
			if err := s.readMore(max - len(s.cache)); err != nil {
				return nil, fmt.Errorf("spool %s: %w", s.dir, err)
			}
		}
		if len(s.cache) > 0 {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	n := min(max, len(s.cache))
	out := make([]model.Result, n)
	for i := range out {
		out[i] = s.cache[i].r
	}
	s.lastPeek = n
	return out, nil
}

// Commit removes the first n results returned by the last Peek. The new
// head is written to the cursor file (fsynced under FsyncAlways) before
// fully consumed segments are deleted. A failure to write the cursor is
// logged, not returned: the results were delivered, and the worst outcome
// is their redelivery after a restart.
func (s *Spool) Commit(n int) error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return pipeline.ErrQueueClosed
	}
	if n < 0 || n > s.lastPeek {
		return fmt.Errorf("spool: commit %d results, but the last peek returned %d", n, s.lastPeek)
	}
	if n == 0 {
		return nil
	}
	e := s.cache[n-1]
	rest := copy(s.cache, s.cache[n:])
	clear(s.cache[rest:]) // drop references for the GC
	s.cache = s.cache[:rest]
	s.lastPeek -= n

	s.mu.Lock()
	s.head, s.headSeq = e.next, max(s.headSeq, e.nextSeq)
	s.committed += uint64(n)
	freed := s.collectLocked()
	s.broadcastLocked()
	s.mu.Unlock()

	if err := s.persistCursor(s.opts.Fsync == FsyncAlways); err != nil {
		s.log.Error("spool: cannot persist the read position; a restart may redeliver", "err", err)
	}
	if len(freed) > 0 {
		for _, sg := range freed {
			s.removeSegment(sg)
		}
		s.mu.Lock()
		s.broadcastLocked() // the space is really free now
		s.mu.Unlock()
	}
	return nil
}

// persistCursor writes the head to the cursor file if it moved, and fsyncs
// it when sync is set. Called with rmu held.
func (s *Spool) persistCursor(sync bool) error {
	if s.cf == nil {
		return nil
	}
	s.mu.Lock()
	c := s.cur
	c.headSeq, c.head = s.headSeq, s.head
	s.mu.Unlock()
	if c.headSeq != s.cur.headSeq || c.head != s.cur.head {
		if err := writeCursor(s.cf, &c); err != nil {
			return fmt.Errorf("write cursor: %w", err)
		}
		s.cur = c
		s.cursorDirty.Store(true)
	}
	if sync && s.cursorDirty.Swap(false) {
		if err := s.io.datasync(s.cf); err != nil {
			s.cursorDirty.Store(true)
			return fmt.Errorf("fsync cursor: %w", err)
		}
	}
	return nil
}

// readMore decodes up to want more results into the cache, stopping early
// at the end of what has been written. Damage is quarantined and skipped.
func (s *Spool) readMore(want int) error {
	for added := 0; added < want; {
		s.mu.Lock()
		final := s.rd.seg != s.segs[len(s.segs)-1]
		limit, tailSeq, headSeq := s.readable, s.tailSeq, s.headSeq
		var next *segment
		if final {
			limit = s.rd.seg.size
			for _, sg := range s.segs {
				if sg.first > s.rd.seg.first {
					next = sg
					break
				}
			}
		}
		s.mu.Unlock()

		if s.rd.f == nil {
			if !final {
				return fmt.Errorf("the segment being written, %s, vanished", s.rd.seg.path)
			}
			s.rd.off = limit
		}
		if !s.rd.hdrChecked {
			if err := s.checkReadHeader(limit, final); err != nil {
				return err
			}
			continue
		}
		if s.rd.off >= limit {
			if !final || next == nil {
				return nil // caught up with the writer
			}
			if err := s.advanceSegment(next, headSeq); err != nil {
				return err
			}
			continue
		}

		off := s.rd.off
		seq, payload, size, st, err := s.rd.it.frame(off, limit)
		if err != nil {
			return fmt.Errorf("read %s at %d: %w", s.rd.seg.path, off, err)
		}
		// Even in the segment being written a short frame is damage: the
		// limit only ever advances to the end of a completed write.
		if st != frameOK || seq < s.rd.expect {
			nextSeq := tailSeq
			if next != nil {
				nextSeq = next.first
			}
			if err := s.skipDamage(off, limit, next, headSeq, nextSeq); err != nil {
				return err
			}
			continue
		}

		here := position{seg: s.rd.seg.first, off: off}
		after := position{seg: s.rd.seg.first, off: off + size}
		if from := max(s.rd.expect, headSeq); seq > from {
			s.lost(from, seq, "records missing from the spool without damaged bytes", off)
		}
		if seq > s.rd.expect {
			s.setResume(here, seq, false)
		}
		s.rd.expect = seq + 1
		s.rd.off = off + size
		if seq < headSeq {
			s.setResume(after, headSeq, false) // committed before the restart
			continue
		}
		r, err := model.DecodeBinary(payload)
		if err != nil {
			s.quarantine(off, off+size, 1, "record with a valid checksum does not decode: "+err.Error())
			s.setResume(after, seq+1, true)
			continue
		}
		s.cache = append(s.cache, entry{r: r, seq: seq, next: after, nextSeq: seq + 1})
		added++
	}
	return nil
}

// skipDamage handles bytes at off that are not the expected frame: it
// finds the next valid frame, quarantines the bytes in between (unless all
// the records they held were already committed) and counts the records
// they held, which the sequence numbers tell exactly.
func (s *Spool) skipDamage(off, limit int64, next *segment, headSeq, nextSeq uint64) error {
	maxSeq := seqBound(s.rd.expect, limit)
	if next != nil {
		maxSeq = min(maxSeq, next.first-1)
	}
	q, err := s.rd.it.resync(off+1, limit, s.rd.expect, maxSeq)
	if err != nil {
		return fmt.Errorf("scan %s after damage at %d: %w", s.rd.seg.path, off, err)
	}
	end := limit
	if q >= 0 {
		end = q
		if seq, _, _, _, err := s.rd.it.frame(q, limit); err == nil {
			nextSeq = seq
		}
	}
	from := max(s.rd.expect, headSeq)
	if nextSeq > from {
		s.quarantine(off, end, nextSeq-from, "damaged bytes (checksum, length or sequence mismatch)")
	} else {
		s.log.Warn("spool: damaged bytes in already-committed records; skipped",
			"segment", s.rd.seg.path, "offset", off, "bytes", end-off)
	}
	s.rd.off = end
	s.rd.expect = max(s.rd.expect, nextSeq)
	s.setResume(position{seg: s.rd.seg.first, off: end}, nextSeq, nextSeq > from)
	return nil
}

// checkReadHeader validates the header of the segment the reader just
// entered; a damaged header is quarantined and reading continues after it.
func (s *Spool) checkReadHeader(limit int64, final bool) error {
	h, err := s.rd.it.window(0, segHdrSize, limit)
	if err != nil {
		return fmt.Errorf("read header of %s: %w", s.rd.seg.path, err)
	}
	if len(h) < segHdrSize && !final {
		return nil
	}
	s.rd.hdrChecked = true
	if ok, err := checkHeader(h); ok || err != nil {
		return err
	}
	end := min(int64(segHdrSize), limit)
	s.quarantine(0, end, 0, "damaged segment header")
	s.rd.off = max(s.rd.off, end)
	return nil
}

// advanceSegment moves the reader to the next segment, counting records
// that should have been between the two.
func (s *Spool) advanceSegment(next *segment, headSeq uint64) error {
	if from := max(s.rd.expect, headSeq); next.first > from {
		s.lost(from, next.first, "records missing at the end of a segment", s.rd.off)
	}
	s.rd.expect = max(s.rd.expect, next.first)
	if err := s.openForRead(next); err != nil {
		return err
	}
	s.setResume(position{seg: next.first, off: segHdrSize}, next.first, false)
	return nil
}

// setResume records that reading resumes at p with sequence number seq:
// the last read-ahead result then commits the head to there, or, with
// nothing read ahead, the head moves at once (persisted when persist is
// set, so a restart does not meet the same damage again).
func (s *Spool) setResume(p position, seq uint64, persist bool) {
	if n := len(s.cache); n > 0 {
		s.cache[n-1].next = p
		s.cache[n-1].nextSeq = max(s.cache[n-1].nextSeq, seq)
		return
	}
	s.mu.Lock()
	s.head = p
	if seq > s.headSeq {
		s.headSeq = seq
		s.broadcastLocked()
	}
	s.mu.Unlock()
	if persist {
		if err := s.persistCursor(s.opts.Fsync == FsyncAlways); err != nil {
			s.log.Error("spool: cannot persist the read position", "err", err)
		}
	}
}

// lost counts and logs records whose sequence numbers are missing.
func (s *Spool) lost(from, to uint64, why string, off int64) {
	s.mu.Lock()
	s.corrupt += to - from
	s.mu.Unlock()
	s.log.Error("spool: "+why, "segment", s.rd.seg.path, "offset", off, "first_seq", from, "records", to-from)
}

// quarantine copies the damaged bytes [from, to) of the current segment to
// a file of their own in the spool directory, counts the records they held
// and logs it. The segment itself is deleted once consumed.
func (s *Spool) quarantine(from, to int64, records uint64, why string) {
	name := filepath.Join(s.dir, fmt.Sprintf("quarantine-%020d-%d.bad", s.rd.seg.first, from))
	err := s.copyOut(from, to, name)
	s.mu.Lock()
	s.corrupt += records
	s.mu.Unlock()
	if err != nil {
		s.log.Error("spool: damaged bytes found; copying them to quarantine failed", "segment", s.rd.seg.path,
			"offset", from, "bytes", to-from, "records", records, "reason", why, "err", err)
		return
	}
	s.log.Error("spool: damaged bytes moved to quarantine", "segment", s.rd.seg.path, "offset", from,
		"bytes", to-from, "records", records, "reason", why, "file", name)
}

func (s *Spool) copyOut(from, to int64, name string) error {
	if s.rd.f == nil {
		return errors.New("segment file vanished")
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, io.NewSectionReader(s.rd.f, from, to-from))
	if err == nil && s.syncing() {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && s.syncing() {
		err = syncDir(s.dir)
	}
	return err
}
