package pipeline

import (
	"context"
	"errors"
	"sync"

	"github.com/reconmon/recon/agent/model"
)

// ErrQueueClosed is returned by a Queue's methods after Close.
var ErrQueueClosed = errors.New("queue closed")

// ErrPermanent marks an Append error that retrying cannot fix (the result
// itself is unacceptable to the queue); the pipeline dead-letters such
// results instead of retrying forever.
var ErrPermanent = errors.New("permanent queue error")

// MemQueue is a volatile, unbounded-unless-limited Queue for one-shot runs
// and tests. It does not survive a restart; agents use the spool.
type MemQueue struct {
	mu        sync.Mutex
	cond      *sync.Cond
	items     []model.Result
	limit     int
	closed    bool
	appended  uint64
	committed uint64
	waits     uint64
}

// NewMemQueue returns a queue holding at most limit results (0 = no limit).
func NewMemQueue(limit int) *MemQueue {
	q := &MemQueue{limit: limit}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// wait blocks on the condition until woken or ctx is done.
func (q *MemQueue) wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.cond.Wait()
	return ctx.Err()
}

func (q *MemQueue) Append(ctx context.Context, rs []model.Result) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	waited := false
	for !q.closed && q.limit > 0 && len(q.items)+len(rs) > q.limit && len(q.items) > 0 {
		if !waited {
			q.waits++
			waited = true
		}
		if err := q.wait(ctx); err != nil {
			return err
		}
	}
	if q.closed {
		return ErrQueueClosed
	}
	q.items = append(q.items, rs...)
	q.appended += uint64(len(rs))
	q.cond.Broadcast()
	return nil
}

func (q *MemQueue) Peek(ctx context.Context, max int) ([]model.Result, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		if err := q.wait(ctx); err != nil {
			return nil, err
		}
	}
	if q.closed {
		return nil, ErrQueueClosed
	}
	n := min(max, len(q.items))
	return append([]model.Result(nil), q.items[:n]...), nil
}

func (q *MemQueue) Commit(n int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n > len(q.items) {
		return errors.New("commit beyond queued results")
	}
	q.items = q.items[n:]
	q.committed += uint64(n)
	q.cond.Broadcast()
	return nil
}

func (q *MemQueue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return QueueStats{Depth: int64(len(q.items)), Appended: q.appended, Committed: q.committed, BlockedWaits: q.waits}
}

func (q *MemQueue) Close() error {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	return nil
}
