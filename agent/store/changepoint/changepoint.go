// Package changepoint decides which samples of a text metric a trend store
// keeps. Text metrics are stored only when they change (as Reconnoiter
// did), so a series is a step function: each stored point holds until the
// next. Deciding "changed" from the previous stored point alone is right
// only while data arrives in order. A late sample (a spool draining after
// an outage, a batch from another agent's replay) can land before results
// whose equal values were skipped; inserting it would then change the
// value those skipped samples read back. Write restores the old value at
// the first older result after the late sample, so every result ever
// written still reads back the value it had.
//
// Both stores run it inside the transaction that already holds the
// batch's status rows, with writers of one check serialised (Postgres: the
// check row is locked by the upsert that precedes it; SQLite: one writer).
package changepoint

import (
	"context"
	"time"
)

// Sample is one value of the series written by the current batch.
type Sample struct {
	Time  time.Time
	Value string
}

// Series is one text series of a store, seen from the writing transaction.
type Series interface {
	// Head returns the latest stored value before t (nil if none) and
	// whether nothing follows t: no stored point of the series after t
	// and no result of the check after t other than the current batch's.
	Head(ctx context.Context, t time.Time) (prev *string, clear bool, err error)
	// Around returns the latest stored value before t (nil if none) and
	// the time of the first stored point after t (zero if none).
	Around(ctx context.Context, t time.Time) (prev *string, next time.Time, err error)
	// OtherResult returns the time of the first result of the check
	// strictly between after and before (before zero: unbounded) that is
	// not part of the current batch, or zero.
	OtherResult(ctx context.Context, after, before time.Time) (time.Time, error)
	// Insert stores a point (ignoring one that exists at t).
	Insert(ctx context.Context, t time.Time, v string) error
}

// Write stores the change points among samples, which must be sorted by
// time with distinct times. In-order data costs one Head query; late data
// a few queries per sample.
func Write(ctx context.Context, s Series, samples []Sample) error {
	if len(samples) == 0 {
		return nil
	}
	prev, clear, err := s.Head(ctx, samples[0].Time)
	if err != nil {
		return err
	}
	if clear {
		for _, x := range samples {
			if prev != nil && *prev == x.Value {
				continue
			}
			if err := s.Insert(ctx, x.Time, x.Value); err != nil {
				return err
			}
			v := x.Value
			prev = &v
		}
		return nil
	}
	// Late data. First, against the state before this batch, the points
	// to write: each sample, and after it the old value again at the first
	// older result that may have been a skipped sample of that value.
	type event struct {
		t time.Time
		v string
	}
	events := make([]event, 0, 2*len(samples))
	for i, x := range samples {
		old, next, err := s.Around(ctx, x.Time)
		if err != nil {
			return err
		}
		events = append(events, event{x.Time, x.Value})
		if old == nil {
			// No stored point before x: nothing after it up to the next
			// stored point can have been skipped as "unchanged".
			continue
		}
		bound := next
		if i+1 < len(samples) && (bound.IsZero() || samples[i+1].Time.Before(bound)) {
			bound = samples[i+1].Time
		}
		r, err := s.OtherResult(ctx, x.Time, bound)
		if err != nil {
			return err
		}
		if !r.IsZero() {
			events = append(events, event{r, *old})
		}
	}
	// Then write those that differ from the value in effect just before
	// them, including what this loop has written.
	for _, e := range events {
		p, _, err := s.Around(ctx, e.t)
		if err != nil {
			return err
		}
		if p != nil && *p == e.v {
			continue
		}
		if err := s.Insert(ctx, e.t, e.v); err != nil {
			return err
		}
	}
	return nil
}
