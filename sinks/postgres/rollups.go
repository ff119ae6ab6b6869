package postgres

import (
	"context"
	"fmt"
	"time"
)

// rollupApplyLimit bounds one apply transaction (after a long outage the
// backlog is folded in several steps).
const rollupApplyLimit = 200000

// applyRollups folds pending deltas into rollup_5m, rollup_1h and
// rollup_1d in one transaction that deletes exactly what it applied. Only
// one applier runs at a time per schema (advisory lock); others return at
// once. It returns the number of deltas applied.
func (s *Store) applyRollups(ctx context.Context) (int64, error) {
	pool, err := s.handle()
	if err != nil {
		return 0, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('recon-rollups-' || $1))`, s.settings.Schema).Scan(&locked); err != nil {
		return 0, err
	}
	if !locked {
		return 0, nil
	}
	sch := s.sch()
	upsert := func(table string) string {
		return ` ON CONFLICT (check_id, name, bucket) DO UPDATE SET count = ` + table + `.count + excluded.count,
			min = least(` + table + `.min, excluded.min), max = greatest(` + table + `.max, excluded.max), sum = ` + table + `.sum + excluded.sum`
	}
	var n int64
	// Rows are upserted in key order so concurrent writers of the rollup
	// tables (other schemas' appliers never touch these) cannot deadlock.
	err = tx.QueryRow(ctx, `
WITH d AS (DELETE FROM `+sch+`.rollup_pending WHERE ctid IN (SELECT ctid FROM `+sch+`.rollup_pending LIMIT `+fmt.Sprint(rollupApplyLimit)+`) RETURNING *),
a5 AS (SELECT check_id, name, bucket, sum(count)::bigint AS count, min(min) AS min, max(max) AS max, sum(sum) AS sum FROM d GROUP BY 1, 2, 3),
u5 AS (INSERT INTO `+sch+`.rollup_5m AS rollup_5m SELECT * FROM a5 ORDER BY 1, 2, 3`+upsert("rollup_5m")+` RETURNING 1),
a1 AS (SELECT check_id, name, date_trunc('hour', bucket) AS bucket, sum(count)::bigint AS count, min(min) AS min, max(max) AS max, sum(sum) AS sum FROM a5 GROUP BY 1, 2, 3),
u1 AS (INSERT INTO `+sch+`.rollup_1h AS rollup_1h SELECT * FROM a1 ORDER BY 1, 2, 3`+upsert("rollup_1h")+` RETURNING 1),
ad AS (SELECT check_id, name, date_trunc('day', bucket) AS bucket, sum(count)::bigint AS count, min(min) AS min, max(max) AS max, sum(sum) AS sum FROM a5 GROUP BY 1, 2, 3),
ud AS (INSERT INTO `+sch+`.rollup_1d AS rollup_1d SELECT * FROM ad ORDER BY 1, 2, 3`+upsert("rollup_1d")+` RETURNING 1)
SELECT (SELECT count(*) FROM d) + 0 * ((SELECT count(*) FROM u5) + (SELECT count(*) FROM u1) + (SELECT count(*) FROM ud))`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: apply rollups: %w", err)
	}
	return n, tx.Commit(ctx)
}

// background applies rollup deltas every interval and, hourly, creates
// the partitions ahead and applies the retention (only when configured),
// until ctx is done.
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
			n, err := s.applyRollups(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("postgres: rollups not applied yet; will retry", "err", err)
				}
				break
			}
			if n < rollupApplyLimit {
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
