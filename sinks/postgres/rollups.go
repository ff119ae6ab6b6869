package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconmon/recon/internal/ctxsleep"
)

// Rollups are recomputed from raw rows, bucket by bucket (migration 004):
//
//   - each write transaction appends to rollup_dirty one mark per 5-minute
//     bucket it inserted numeric rows into (a handful of rows per batch,
//     not one per series);
//   - the applier picks marked buckets that are closed and have been quiet
//     for a while, recomputes rollup_5m for them from metric_numeric, then
//     the hours and days they belong to from the finer rollup, and deletes
//     the marks it saw — all in one REPEATABLE READ transaction, so a mark
//     committed after its snapshot survives and the bucket is recomputed
//     again later;
//   - readers aggregate the raw rows of marked buckets themselves (query.go).
//
// A bucket is therefore read from a rollup table only when every row
// committed into it has been folded in: exact at every moment, whatever
// was replayed or retried, with no per-series write amplification.
const (
	// rollupSettle: a bucket is recomputed once it has been closed this
	// long and no mark has arrived for as long (results of its last
	// seconds are still in flight when it closes; a replay keeps writing
	// into old buckets for a while).
	rollupSettle = time.Minute
	// rollupMaxStale: a bucket written into continuously (a skewed clock,
	// a long replay) is recomputed anyway once its oldest mark is this old,
	// so the rollup tables read directly (Grafana) stay close behind.
	rollupMaxStale = 15 * time.Minute
	// rollupApplyBuckets bounds one apply transaction (after an outage the
	// backlog is folded in several steps).
	rollupApplyBuckets = 48
	// rollupPacedBuckets bounds one transaction of the periodic applier,
	// which rests inside it: its snapshot must not stay open for minutes
	// while it catches up, or vacuum could not prune the check rows the
	// writers update thousands of times a second.
	rollupPacedBuckets = 4
	// rollupSlice is the part of a 5-minute bucket aggregated per
	// statement by the periodic applier, which rests after each.
	rollupSlice = time.Minute
)

// rollupAll makes applyRollups take every marked bucket, closed or not
// (tests, benchmarks, and an explicit flush).
var rollupAll = time.Time{}

// rollupLimit is how many buckets one apply transaction takes.
func rollupLimit(closedBy time.Time) int {
	if closedBy.IsZero() {
		return rollupApplyBuckets
	}
	return rollupPacedBuckets
}

// applyRollups recomputes up to rollupLimit(closedBy) marked buckets and
// returns how many it did. With closedBy zero it takes every marked
// bucket; otherwise those that closed rollupSettle before closedBy (the
// agents' clock, which stamps results) and have had no mark for as long
// by the database's clock (which stamps marks), or whose oldest mark has
// waited rollupMaxStale. Only one
// applier runs at a time per schema (advisory lock); others return 0 at
// once.
func (s *Store) applyRollups(ctx context.Context, closedBy time.Time) (int, error) {
	pool, err := s.handle()
	if err != nil {
		return 0, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	// A session lock taken before the transaction starts, so the
	// transaction's snapshot includes everything the previous applier
	// committed.
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('recon-rollups-' || $1))`, s.settings.Schema).Scan(&locked); err != nil {
		return 0, err
	}
	if !locked {
		return 0, nil
	}
	defer func() {
		// On a broken connection the lock goes with the session.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock(hashtext('recon-rollups-' || $1))`, s.settings.Schema); err != nil {
			conn.Conn().Close(uctx)
		}
	}()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	// Background work: one core, no JIT, so the writers keep the others.
	if _, err := tx.Exec(ctx, `SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL jit = off`); err != nil {
		return 0, err
	}
	n, err := s.recompute(ctx, tx, closedBy)
	if err != nil {
		return 0, fmt.Errorf("postgres: apply rollups: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres: apply rollups: %w", err)
	}
	return n, nil
}

func (s *Store) recompute(ctx context.Context, tx pgx.Tx, closedBy time.Time) (int, error) {
	sch := s.sch()
	var buckets []time.Time
	var err error
	if closedBy.IsZero() {
		err = queryTimes(ctx, tx, &buckets, `SELECT DISTINCT bucket FROM `+sch+`.rollup_dirty ORDER BY 1 LIMIT $1`, rollupLimit(closedBy))
	} else {
		err = queryTimes(ctx, tx, &buckets, `SELECT bucket FROM `+sch+`.rollup_dirty GROUP BY bucket
			HAVING bucket + interval '5 minutes' <= $1::timestamptz - $2::interval
				AND (max(marked_at) <= now() - $2::interval OR min(marked_at) <= now() - $3::interval)
			ORDER BY 1 LIMIT $4`, closedBy, rollupSettle, rollupMaxStale, rollupLimit(closedBy))
	}
	if err != nil || len(buckets) == 0 {
		return 0, err
	}
	// Marks of these buckets visible to this snapshot: exactly the rows
	// the recomputation below sees.
	if _, err := tx.Exec(ctx, `DELETE FROM `+sch+`.rollup_dirty WHERE bucket = ANY($1)`, buckets); err != nil {
		return 0, err
	}
	// Days whose raw partitions a retention dropped keep their rollups.
	var prunedBefore *time.Time
	if err := tx.QueryRow(ctx, `SELECT max(before) FROM `+sch+`.raw_pruned`).Scan(&prunedBefore); err != nil {
		return 0, err
	}
	var live []time.Time
	for _, b := range buckets {
		if prunedBefore == nil || !b.Before(*prunedBefore) {
			live = append(live, b)
		}
	}
	if len(live) == 0 {
		return len(buckets), nil
	}
	// 5-minute buckets from raw rows, a slice of the bucket per statement
	// (each reads one time range of one partition: BRIN on ts), partial
	// aggregates kept in a temporary table. Aggregating a busy bucket
	// takes seconds of a core; the periodic applier rests as long as each
	// slice took, so the writers never lose a core for long (a flush
	// does not rest).
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS recon_rollup_part (check_id uuid, name text, count bigint, min float8, max float8, sum float8) ON COMMIT DELETE ROWS`); err != nil {
		return 0, err
	}
	for _, b := range live {
		if _, err := tx.Exec(ctx, `TRUNCATE recon_rollup_part`); err != nil {
			return 0, err
		}
		for sl := b; sl.Before(b.Add(5 * time.Minute)); sl = sl.Add(rollupSlice) {
			start := time.Now()
			if _, err := tx.Exec(ctx, `INSERT INTO recon_rollup_part SELECT check_id, name, count(*), min(value), max(value), sum(value)
				FROM `+sch+`.metric_numeric WHERE ts >= $1::timestamptz AND ts < $2::timestamptz GROUP BY check_id, name`, sl, sl.Add(rollupSlice)); err != nil {
				return 0, err
			}
			if !closedBy.IsZero() && !ctxsleep.Sleep(ctx, time.Since(start)) {
				return 0, ctx.Err()
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+sch+`.rollup_5m WHERE bucket = $1`, b); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+sch+`.rollup_5m SELECT check_id, name, $1::timestamptz, sum(count)::bigint, min(min), max(max), sum(sum)
			FROM recon_rollup_part GROUP BY check_id, name`, b); err != nil {
			return 0, err
		}
	}
	// Hours from 5-minute buckets, days from hours; a later statement in
	// this transaction sees what the earlier ones wrote.
	for _, lvl := range []struct {
		table, from, unit string
	}{{"rollup_1h", "rollup_5m", "hour"}, {"rollup_1d", "rollup_1h", "day"}} {
		if _, err := tx.Exec(ctx, `WITH p AS (SELECT DISTINCT date_trunc('`+lvl.unit+`', b) AS p FROM unnest($1::timestamptz[]) AS b)
			DELETE FROM `+sch+`.`+lvl.table+` WHERE bucket IN (SELECT p FROM p)`, live); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `WITH p AS (SELECT DISTINCT date_trunc('`+lvl.unit+`', b) AS p FROM unnest($1::timestamptz[]) AS b)
			INSERT INTO `+sch+`.`+lvl.table+` SELECT r.check_id, r.name, p.p, sum(r.count)::bigint, min(r.min), max(r.max), sum(r.sum)
			FROM p JOIN `+sch+`.`+lvl.from+` r ON r.bucket >= p.p AND r.bucket < p.p + interval '1 `+lvl.unit+`'
			GROUP BY r.check_id, r.name, p.p`, live); err != nil {
			return 0, err
		}
	}
	return len(buckets), nil
}

func queryTimes(ctx context.Context, tx pgx.Tx, out *[]time.Time, sql string, args ...any) error {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	ts, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	*out = ts
	return err
}

// flushRollups recomputes every marked bucket, closed or not.
func (s *Store) flushRollups(ctx context.Context) error {
	for {
		n, err := s.applyRollups(ctx, rollupAll)
		if err != nil {
			return err
		}
		if n < rollupLimit(rollupAll) {
			return nil
		}
	}
}

// background recomputes the rollups of settled buckets every interval
// and, hourly, creates the partitions ahead and applies the retention
// (only when configured), until ctx is done.
func (s *Store) background(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastHousekeeping time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := s.applyRollups(ctx, time.Now())
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
					s.log.Warn("postgres: rollups not recomputed yet; will retry", "err", err)
				}
				break
			}
			if n < rollupLimit(time.Now()) {
				break
			}
		}
		if time.Since(lastHousekeeping) >= time.Hour {
			if err := s.housekeeping(ctx); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("postgres: housekeeping failed; will retry", "err", err)
				}
				continue
			}
			lastHousekeeping = time.Now()
		}
	}
}

// housekeeping keeps PartitionAhead days of partitions ready and drops
// partitions older than the retention, if one is configured.
func (s *Store) housekeeping(ctx context.Context) error {
	now := time.Now().UTC()
	if err := s.ensurePartitions(ctx, dayRange(now, now.AddDate(0, 0, s.settings.PartitionAhead))); err != nil {
		return err
	}
	if s.settings.Retention <= 0 {
		return nil // the default: raw data is kept forever
	}
	_, err := s.Prune(ctx, now.Add(-s.settings.Retention.D()))
	return err
}
