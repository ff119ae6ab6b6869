package alerter

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/store"
)

// Windows live in memory. After a restart, or when a reload changes a
// rule, a window would start empty and a rule over "avg of the last 10
// minutes" would judge the first samples alone. The trend store keeps every
// measurement at its original granularity, so a window the engine does not
// hold is refilled from it before its first new sample is added.

// historyLookback bounds how far back a window of the last N samples is
// looked for.
const historyLookback = 7 * 24 * time.Hour

// historyQuery asks for a series' samples before a time.
type historyQuery struct {
	CheckID  uuid.UUID
	Metric   string         // "" is the status series
	Statuses []model.Status // only results with one of these statuses (empty: all)
	From     time.Time      // inclusive
	Before   time.Time      // exclusive
	N        int            // at most the newest N
}

// historyFunc returns the samples of q, oldest first.
type historyFunc func(ctx context.Context, q historyQuery) ([]sample, error)

// refill loads the samples of in's series from before t into its window,
// which must be new.
func (e *Engine) refill(ctx context.Context, in *Instance, r *Rule, t time.Time) {
	if e.history == nil || (r.Window <= 0 && r.Samples <= 1) {
		return
	}
	q := historyQuery{CheckID: in.CheckID, Metric: in.Metric, Statuses: r.Statuses, Before: t, N: in.win.maxN,
		From: t.Add(-historyLookback)}
	if r.Window > 0 {
		q.From = t.Add(-r.Window)
	}
	samples, err := e.history(ctx, q)
	if err != nil {
		e.errors++
		e.lastErr = fmt.Sprintf("rule %s: window of %s not refilled from the trend store: %v", r.Name, in.Key, err)
		return
	}
	for _, s := range samples {
		in.win.add(s.t, s.v)
	}
	in.win.trim(t)
}

// storeHistory answers history queries from a trend store; st returns nil
// while no store is available.
func storeHistory(st func() store.Store) historyFunc {
	return func(ctx context.Context, q historyQuery) ([]sample, error) {
		s := st()
		if s == nil || q.N <= 0 {
			return nil, nil
		}
		to := q.Before.Add(-time.Nanosecond)
		// The status rows give the times (and statuses) of the newest
		// results; with a status filter, more are read to find N matches.
		limit := q.N
		if len(q.Statuses) > 0 {
			limit = maxSamples
		}
		pts, err := s.StatusHistory(ctx, q.CheckID, q.From, to, limit)
		if err != nil {
			return nil, err
		}
		times := make(map[int64]model.Status, len(pts))
		var kept []store.StatusPoint // newest first
		for _, p := range pts {
			if len(q.Statuses) > 0 && !slices.Contains(q.Statuses, p.Status) {
				continue
			}
			kept = append(kept, p)
			times[p.Time.UnixNano()] = p.Status
			if len(kept) == q.N {
				break
			}
		}
		if len(kept) == 0 {
			return nil, nil
		}
		slices.Reverse(kept)
		if q.Metric == "" {
			out := make([]sample, len(kept))
			for i, p := range kept {
				out[i] = sample{p.Time, float64(p.Status)}
			}
			return out, nil
		}
		ser, err := s.Series(ctx, store.SeriesQuery{CheckID: q.CheckID, Metric: q.Metric, From: kept[0].Time, To: to})
		if err != nil {
			return nil, err
		}
		out := make([]sample, 0, len(ser.Points))
		for _, p := range ser.Points {
			if _, ok := times[p.Time.UnixNano()]; ok || len(q.Statuses) == 0 {
				out = append(out, sample{p.Time, p.Value})
			}
		}
		if len(out) > q.N {
			out = out[len(out)-q.N:]
		}
		return out, nil
	}
}
