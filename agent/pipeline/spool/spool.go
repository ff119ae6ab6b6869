package spool

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/pipeline"
)

// FsyncPolicy says when appended records are forced to disk.
type FsyncPolicy string

const (
	// FsyncAlways (the default): Append returns only after its records are
	// fsynced. Survives power loss. Group commit shares one fsync among all
	// concurrent appends.
	FsyncAlways FsyncPolicy = "always"
	// FsyncInterval: Append returns once the records are written to the
	// operating system; they are fsynced every FsyncInterval. Survives a
	// process crash (kill -9), may lose the last interval on power loss.
	FsyncInterval FsyncPolicy = "interval"
	// FsyncNever leaves flushing to the operating system. Survives a
	// process crash only.
	FsyncNever FsyncPolicy = "never"
)

// Defaults for Options' zero values.
const (
	DefaultSegmentSize   = 16 << 20
	DefaultFsyncInterval = time.Second
	minSegmentSize       = 64 << 10
)

// Options configure a spool. The zero value is the safe default.
type Options struct {
	Fsync         FsyncPolicy   // "" means FsyncAlways
	FsyncInterval time.Duration // for FsyncInterval; 0 means DefaultFsyncInterval
	// MaxBytes bounds the spool's size on disk; 0 means unlimited. When an
	// append would exceed it, Append blocks until the consumer commits and
	// segments are freed (backpressure, counted in BlockedWaits). Nothing is
	// ever dropped. A batch is always admitted into an empty spool.
	MaxBytes int64
	// SegmentSize is the size at which the spool starts a new segment file
	// (0 means DefaultSegmentSize). Space is freed a segment at a time, so
	// with MaxBytes set it is lowered to MaxBytes/4 (at least 64 KiB).
	SegmentSize int64
	Logger      *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	switch o.Fsync {
	case "":
		o.Fsync = FsyncAlways
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		return o, fmt.Errorf("unknown fsync policy %q (want always, interval or never)", o.Fsync)
	}
	if o.FsyncInterval < 0 || o.MaxBytes < 0 || o.SegmentSize < 0 {
		return o, errors.New("negative fsync interval, max bytes or segment size")
	}
	if o.FsyncInterval == 0 {
		o.FsyncInterval = DefaultFsyncInterval
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxBytes > 0 && o.SegmentSize > o.MaxBytes/4 {
		o.SegmentSize = o.MaxBytes / 4
	}
	o.SegmentSize = max(o.SegmentSize, minSegmentSize)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

type segment struct {
	first uint64 // sequence number of its first record (also its name)
	path  string
	size  int64 // bytes on disk; grows only for the tail, under Spool.mu
}

// batch is what one group commit writes: the frames of every Append that
// arrived while the previous write was in progress.
type batch struct {
	buf  []byte // frames with length and payload; seq and crc stamped by the flusher
	n    int
	done chan struct{}
	err  error // valid once done is closed
}

// Spool is a durable, disk-backed pipeline.Queue: a log of segment files
// with one CRC-checked frame per result and a persisted read cursor.
// Append may be called from any number of goroutines; Peek and Commit are
// meant for the one consumer draining the spool.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File

	mu           sync.Mutex
	notify       chan struct{} // closed and replaced whenever waiters should look again
	closed       bool
	segs         []*segment // oldest first; the last one is written to
	tailSeq      uint64     // sequence number the next appended record gets
	headSeq      uint64     // first sequence number not committed
	head         position   // where the frame of headSeq starts (or will)
	readable     int64      // bytes of the tail segment the consumer may read
	diskBytes    int64
	pending      *batch
	pendingBytes int64 // enqueued but not yet on disk (including the batch being written)
	appended     uint64
	committed    uint64
	blockedWaits uint64
	corrupt      uint64

	// Owned by the flusher goroutine (and by Open/Close while it is not running).
	wf          *os.File
	wOff        int64
	needTrunc   bool // a failed write may have left bytes after wOff
	noSpace     bool // the last write failed for lack of space (ENOSPC)
	dirty       bool // written since the last fsync (interval policy)
	kick        chan struct{}
	quit        chan struct{}
	flusherDone chan struct{}

	// Consumer side, guarded by rmu.
	rmu         sync.Mutex
	rd          reader
	cache       []entry // read ahead of the head, decoded, in order
	lastPeek    int
	cf          *os.File // cursor file
	cur         cursorState
	cursorDirty atomic.Bool // written since the last fsync (interval policy)

	bufPool sync.Pool
	io      hooks
}

// hooks are the file operations the write path uses; tests replace them to
// inject faults (ENOSPC) and count fsyncs.
type hooks struct {
	writeAt  func(f *os.File, b []byte, off int64) (int, error)
	datasync func(f *os.File) error
}

func (h *hooks) fill() {
	if h.writeAt == nil {
		h.writeAt = func(f *os.File, b []byte, off int64) (int, error) { return f.WriteAt(b, off) }
	}
	if h.datasync == nil {
		h.datasync = datasync
	}
}

var _ pipeline.Queue = (*Spool)(nil)

// Open opens the spool in dir, creating it if needed, and recovers it after
// a crash: a torn record at the end of the newest segment (never
// acknowledged) is truncated, damaged records elsewhere are quarantined as
// the consumer reaches them. It starts one background goroutine, the
// flusher, which Close stops.
func Open(dir string, opts Options) (*Spool, error) {
	return open(dir, opts, hooks{})
}

func open(dir string, opts Options, h hooks) (*Spool, error) {
	h.fill()
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{
		dir: dir, opts: opts, log: opts.Logger.With("spool", dir), lock: lock,
		notify: make(chan struct{}), kick: make(chan struct{}, 1),
		quit: make(chan struct{}), flusherDone: make(chan struct{}), io: h,
	}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	go s.flusher()
	return s, nil
}

func (s *Spool) syncing() bool { return s.opts.Fsync != FsyncNever }

// load reads the directory and the cursor, repairs the tail and positions
// the reader. Nothing else runs yet.
func (s *Spool) load() error {
	cf, err := os.OpenFile(filepath.Join(s.dir, cursorName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open cursor: %w", err)
	}
	s.cf = cf
	cur, found, damaged, err := readCursor(cf)
	if err != nil {
		return fmt.Errorf("read cursor: %w", err)
	}
	if damaged {
		s.log.Warn("spool cursor file is damaged; redelivering from the oldest segment (at-least-once)")
	}
	s.cur = cur

	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		first, ok := parseSegName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if first == 0 || first > maxSeqNum {
			return fmt.Errorf("segment file %s: sequence number out of range", e.Name())
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		s.segs = append(s.segs, &segment{first: first, path: filepath.Join(s.dir, e.Name()), size: info.Size()})
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return cmp.Compare(a.first, b.first) })
	for _, sg := range s.segs {
		if err := checkVersion(sg.path); err != nil {
			return err
		}
	}

	headSeq := cur.headSeq
	if len(s.segs) == 0 {
		first := max(headSeq, 1)
		if err := s.createTail(first); err != nil {
			return err
		}
		s.tailSeq, s.headSeq = first, first
	} else {
		if err := s.recoverTail(); err != nil {
			return err
		}
		if headSeq < s.segs[0].first {
			if found && headSeq > 0 {
				s.log.Info("spool cursor is older than the oldest segment; starting at the oldest segment",
					"cursor", headSeq, "oldest", s.segs[0].first)
			}
			headSeq = s.segs[0].first
		}
		if headSeq > s.tailSeq {
			// Only possible when the cursor reached disk and data did not
			// (fsync never/interval and a power loss): the records the
			// cursor passed were delivered, so continue numbering after it.
			s.log.Warn("spool cursor is ahead of the stored records; continuing after the cursor",
				"cursor", headSeq, "stored_up_to", s.tailSeq)
			if err := s.wf.Close(); err != nil {
				return err
			}
			s.wf = nil
			if err := s.createTail(headSeq); err != nil {
				return err
			}
			s.tailSeq = headSeq
		}
		s.headSeq = headSeq
	}
	s.readable = s.wOff
	s.diskBytes = 0
	for _, sg := range s.segs {
		s.diskBytes += sg.size
	}
	for _, sg := range s.collectLocked() {
		s.removeSegment(sg)
	}
	return s.positionReader(found)
}

func checkVersion(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := readHeader(f)
	if err != nil {
		return fmt.Errorf("read header of %s: %w", path, err)
	}
	if _, err := checkHeader(h); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// createTail creates a new, empty segment for records from first on and
// makes it the tail. Used by Open and by the flusher (roll).
func (s *Spool) createTail(first uint64) error {
	path := filepath.Join(s.dir, segName(first))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	_, err = s.io.writeAt(f, segHeader(), 0)
	if err == nil && s.syncing() {
		err = s.io.datasync(f)
		if err == nil {
			err = syncDir(s.dir)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create segment %s: %w", path, err)
	}
	s.mu.Lock()
	s.segs = append(s.segs, &segment{first: first, path: path, size: segHdrSize})
	s.diskBytes += segHdrSize
	s.readable = segHdrSize
	s.mu.Unlock()
	s.wf, s.wOff = f, segHdrSize
	return nil
}

// recoverTail scans the newest segment, which a crash may have left with a
// partial record at its end, and truncates that record: it was never
// acknowledged. Damage followed by valid records is not a torn write; it is
// left for the reader, which quarantines it.
func (s *Spool) recoverTail() error {
	tail := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(tail.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open tail segment: %w", err)
	}
	s.wf = f
	if tail.size < segHdrSize {
		// Crashed while creating it: nothing can have been acknowledged.
		if tail.size > 0 {
			s.log.Warn("spool segment header incomplete; rewriting it", "segment", tail.path, "bytes", tail.size)
		}
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.WriteAt(segHeader(), 0); err != nil {
			return fmt.Errorf("rewrite header of %s: %w", tail.path, err)
		}
		if s.syncing() {
			if err := s.io.datasync(f); err != nil {
				return err
			}
		}
		tail.size = segHdrSize
	}
	it := frameIter{f: f}
	off, expect := int64(segHdrSize), tail.first
	for off < tail.size {
		seq, _, size, st, err := it.frame(off, tail.size)
		if err != nil {
			return fmt.Errorf("scan %s: %w", tail.path, err)
		}
		if st == frameOK && seq >= expect {
			off, expect = off+size, seq+1
			continue
		}
		q, err := it.resync(off+1, tail.size, expect, seqBound(expect, tail.size))
		if err != nil {
			return fmt.Errorf("scan %s: %w", tail.path, err)
		}
		if q >= 0 {
			s.log.Warn("spool segment damaged before its last record; the reader will quarantine the damage",
				"segment", tail.path, "offset", off, "bytes", q-off)
			off = q
			continue
		}
		s.log.Warn("spool: truncating a partial record at the end of the newest segment (a crash interrupted its write; it was never acknowledged)",
			"segment", tail.path, "offset", off, "bytes", tail.size-off)
		if err := f.Truncate(off); err != nil {
			return fmt.Errorf("truncate torn tail of %s: %w", tail.path, err)
		}
		if s.syncing() {
			if err := s.io.datasync(f); err != nil {
				return err
			}
		}
		tail.size = off
	}
	s.wOff = tail.size
	s.tailSeq = expect
	return nil
}

// collectLocked removes the segments whose records are all committed from
// the list and returns them for deletion. The tail is never removed.
func (s *Spool) collectLocked() []*segment {
	i := 0
	for i < len(s.segs)-1 && s.segs[i+1].first <= s.headSeq {
		i++
	}
	if i == 0 {
		return nil
	}
	gone := slices.Clone(s.segs[:i])
	s.segs = slices.Delete(s.segs, 0, i)
	for _, sg := range gone {
		s.diskBytes -= sg.size
	}
	return gone
}

func (s *Spool) removeSegment(sg *segment) {
	if err := os.Remove(sg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		// Its records are committed; Open removes it next time.
		s.log.Error("spool: remove consumed segment", "segment", sg.path, "err", err)
	}
}

func (s *Spool) broadcastLocked() {
	close(s.notify)
	s.notify = make(chan struct{})
}

// Append stores rs at the tail. It returns nil once they are stored as the
// fsync policy promises (fsynced, by default). Appends running at the same
// time share one write and one fsync (group commit); the results of one
// call stay contiguous and in order. When MaxBytes is reached Append waits
// for the consumer (or ctx). If ctx ends after the results were handed to
// the writer, they may still be stored: the caller retries and at-least-once
// delivery absorbs the duplicate. Disk errors (ENOSPC) are returned; the
// spool stays consistent and accepts appends again once space returns.
func (s *Spool) Append(ctx context.Context, rs []model.Result) error {
	if len(rs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("spool: append: %w", err)
	}
	bp := s.getBuf()
	buf := (*bp)[:0]
	var zero [frameHdrSize]byte
	for i := range rs {
		start := len(buf)
		buf = append(buf, zero[:]...)
		buf = rs[i].AppendBinary(buf)
		n := len(buf) - start - frameHdrSize
		if n > MaxRecordSize {
			s.putBuf(bp, buf)
			return fmt.Errorf("spool: append result of check %q: %d bytes: %w: %w", rs[i].Check, n, ErrTooLarge, pipeline.ErrPermanent)
		}
		binary.LittleEndian.PutUint32(buf[start:], uint32(n))
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.putBuf(bp, buf)
		return pipeline.ErrQueueClosed
	}
	if s.opts.MaxBytes > 0 {
		waited := false
		for !s.fitsLocked(int64(len(buf))) {
			if !waited {
				s.blockedWaits++
				waited = true
			}
			ch := s.notify
			s.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				s.putBuf(bp, buf)
				return fmt.Errorf("spool: append waiting for space (%d bytes max): %w", s.opts.MaxBytes, ctx.Err())
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				s.putBuf(bp, buf)
				return pipeline.ErrQueueClosed
			}
		}
	}
	b := s.pending
	if b == nil {
		b = &batch{done: make(chan struct{})}
		if p, ok := s.bufPool.Get().(*[]byte); ok {
			b.buf = (*p)[:0]
		}
		s.pending = b
	}
	b.buf = append(b.buf, buf...)
	b.n += len(rs)
	s.pendingBytes += int64(len(buf))
	s.mu.Unlock()
	s.putBuf(bp, buf)

	select {
	case s.kick <- struct{}{}:
	default: // the flusher is already due to look
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return fmt.Errorf("spool: append (results may still be stored): %w", ctx.Err())
	}
}

// fitsLocked reports whether n more bytes may be enqueued under MaxBytes.
// An empty spool always admits: its tail is rolled over (and the consumed
// segment freed) before the write, so a batch bigger than the limit cannot
// wait forever.
func (s *Spool) fitsLocked(n int64) bool {
	if s.headSeq == s.tailSeq && s.pendingBytes == 0 {
		return true
	}
	return s.diskBytes+s.pendingBytes+n <= s.opts.MaxBytes
}

func (s *Spool) getBuf() *[]byte {
	if p, ok := s.bufPool.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 4096)
	return &b
}

func (s *Spool) putBuf(p *[]byte, b []byte) {
	if cap(b) > 4<<20 {
		return // do not pin a huge buffer
	}
	*p = b[:0]
	s.bufPool.Put(p)
}

// flusher is the one goroutine that writes: it takes everything enqueued
// since its last write and writes it with one write and one fsync.
func (s *Spool) flusher() {
	defer close(s.flusherDone)
	var tick <-chan time.Time
	if s.opts.Fsync == FsyncInterval {
		t := time.NewTicker(s.opts.FsyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.kick:
			s.flushAll()
		case <-tick:
			s.syncDirty()
		case <-s.quit:
			s.flushAll()
			return
		}
	}
}

func (s *Spool) flushAll() {
	for {
		s.mu.Lock()
		b := s.pending
		s.pending = nil
		roll := false
		if b != nil {
			roll = s.rollDueLocked(int64(len(b.buf)))
		}
		s.mu.Unlock()
		if b == nil {
			return
		}
		s.writeBatch(b, roll)
	}
}

// rollDueLocked decides whether the next write of n bytes goes to a new
// segment: when the tail would outgrow SegmentSize, or when every record in
// it is committed and it is big enough to be worth freeing (or space is
// short), so a consumer that keeps up keeps the spool small.
func (s *Spool) rollDueLocked(n int64) bool {
	if s.wOff <= segHdrSize {
		return false
	}
	if s.wOff+n > s.opts.SegmentSize {
		return true
	}
	if s.headSeq == s.tailSeq {
		// Drained: start a fresh segment so the consumed one can go. On a
		// full disk this is the only way the spool can free space.
		return s.wOff >= s.opts.SegmentSize/16 || s.noSpace ||
			(s.opts.MaxBytes > 0 && s.diskBytes+s.pendingBytes > s.opts.MaxBytes)
	}
	return false
}

func (s *Spool) writeBatch(b *batch, roll bool) {
	err := s.prepareTail(roll)
	var freed []*segment
	s.mu.Lock()
	first := s.tailSeq
	s.mu.Unlock()
	if err == nil {
		stampFrames(b.buf, first)
		err = s.write(b.buf)
	}
	s.mu.Lock()
	s.pendingBytes -= int64(len(b.buf))
	if err == nil {
		s.wOff += int64(len(b.buf))
		s.segs[len(s.segs)-1].size = s.wOff
		s.readable = s.wOff
		s.diskBytes += int64(len(b.buf))
		s.tailSeq += uint64(b.n)
		s.appended += uint64(b.n)
	}
	if roll {
		freed = s.collectLocked()
	}
	s.broadcastLocked()
	s.mu.Unlock()
	b.err = err
	close(b.done)
	for _, sg := range freed {
		s.removeSegment(sg)
	}
	if cap(b.buf) <= 4<<20 {
		p := b.buf[:0]
		s.bufPool.Put(&p)
	}
}

// stampFrames assigns consecutive sequence numbers from first to the frames
// in buf and computes their checksums.
func stampFrames(buf []byte, first uint64) {
	seq := first
	for off := 0; off < len(buf); {
		size := frameHdrSize + int(binary.LittleEndian.Uint32(buf[off:]))
		putFrameHeader(buf[off:off+size], seq)
		off += size
		seq++
	}
}

// prepareTail undoes what a failed write may have left and rolls over to a
// new segment when asked.
func (s *Spool) prepareTail(roll bool) error {
	if s.needTrunc {
		if err := s.wf.Truncate(s.wOff); err != nil {
			return fmt.Errorf("spool: remove the remains of a failed write from %s: %w", s.wf.Name(), err)
		}
		s.needTrunc = false
	}
	if !roll {
		return nil
	}
	if s.dirty {
		if err := s.io.datasync(s.wf); err != nil {
			return fmt.Errorf("spool: fsync %s: %w", s.wf.Name(), err)
		}
		s.dirty = false
	}
	old := s.wf
	s.mu.Lock()
	first := s.tailSeq
	drained := s.headSeq == s.tailSeq
	s.mu.Unlock()
	if s.noSpace && drained {
		// The disk is full and every record of the segment is consumed:
		// give its space back before creating the next segment, which
		// may not fit otherwise. Nothing reads those bytes again (the
		// reader is at the end), and a crash before the new segment
		// exists leaves an empty tail that Open continues after.
		if err := old.Truncate(segHdrSize); err != nil {
			s.log.Warn("spool: cannot shrink the consumed segment on a full disk", "segment", old.Name(), "err", err)
		}
	}
	if err := s.createTail(first); err != nil {
		s.wf = old
		return fmt.Errorf("spool: %w", err)
	}
	if err := old.Close(); err != nil {
		s.log.Warn("spool: close full segment", "segment", old.Name(), "err", err)
	}
	return nil
}

// write appends buf to the tail segment and, for FsyncAlways, fsyncs it. On
// failure (ENOSPC, EIO) it cuts the segment back to where it was, so no
// partial frame stays behind and the next write starts clean.
func (s *Spool) write(buf []byte) error {
	_, err := s.io.writeAt(s.wf, buf, s.wOff)
	if err == nil {
		switch s.opts.Fsync {
		case FsyncAlways:
			err = s.io.datasync(s.wf)
		case FsyncInterval:
			s.dirty = true
		}
	}
	if err == nil {
		s.noSpace = false
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) {
		s.noSpace = true
	}
	if terr := s.wf.Truncate(s.wOff); terr != nil {
		s.needTrunc = true
		s.log.Error("spool: cannot remove the remains of a failed write; retrying before the next one",
			"segment", s.wf.Name(), "err", terr)
	}
	return fmt.Errorf("spool: write %d bytes to %s: %w", len(buf), s.wf.Name(), err)
}

// syncDirty fsyncs what the interval policy has written since the last
// tick: the tail segment and the cursor.
func (s *Spool) syncDirty() {
	if s.dirty {
		if err := s.io.datasync(s.wf); err != nil {
			s.log.Error("spool: periodic fsync", "segment", s.wf.Name(), "err", err)
		} else {
			s.dirty = false
		}
	}
	if s.cursorDirty.Swap(false) {
		if err := s.io.datasync(s.cf); err != nil {
			s.cursorDirty.Store(true)
			s.log.Error("spool: periodic fsync of the cursor", "err", err)
		}
	}
}

// Stats reports depth and counters.
func (s *Spool) Stats() pipeline.QueueStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return pipeline.QueueStats{
		Depth:        int64(s.tailSeq - s.headSeq),
		Bytes:        s.diskBytes,
		Appended:     s.appended,
		Committed:    s.committed,
		BlockedWaits: s.blockedWaits,
		Corrupt:      s.corrupt,
	}
}

// Dir returns the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Close writes what is enqueued, persists the cursor, releases the files and
// the directory lock. Blocked Peek and Append calls return
// pipeline.ErrQueueClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.broadcastLocked()
	s.mu.Unlock()
	close(s.quit)
	<-s.flusherDone

	var errs []error
	if s.opts.Fsync == FsyncInterval && s.dirty {
		if err := s.io.datasync(s.wf); err != nil {
			errs = append(errs, fmt.Errorf("spool: fsync %s: %w", s.wf.Name(), err))
		}
	}
	s.rmu.Lock()
	if err := s.persistCursor(s.opts.Fsync != FsyncNever); err != nil {
		errs = append(errs, err)
	}
	s.rmu.Unlock()
	s.closeFiles()
	return errors.Join(errs...)
}

func (s *Spool) closeFiles() {
	for _, f := range []*os.File{s.wf, s.rd.f, s.cf, s.lock} {
		if f != nil {
			f.Close()
		}
	}
	s.wf, s.rd.f, s.cf, s.lock = nil, nil, nil, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
