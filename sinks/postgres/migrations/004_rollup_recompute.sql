-- Rollups are recomputed from the raw rows once a 5-minute bucket has
-- closed, instead of folding a delta row per series and batch (which wrote
-- more tuples than the measurements themselves at 10,000 results/s).
--
-- Every write transaction appends one mark per 5-minute bucket it wrote
-- numeric rows into; the applier recomputes a marked bucket (and its hour
-- and day) and deletes exactly the marks it saw, in one transaction.
-- Readers treat a marked bucket as not rolled up yet and aggregate its raw
-- rows instead, so queries stay exact at every moment.

-- Fold the deltas still pending (exact) before the table goes.
WITH d AS (DELETE FROM rollup_pending RETURNING *),
a5 AS (SELECT check_id, name, bucket, sum(count)::bigint AS count, min(min) AS min, max(max) AS max, sum(sum) AS sum FROM d GROUP BY 1, 2, 3),
u5 AS (INSERT INTO rollup_5m AS r SELECT * FROM a5 ORDER BY 1, 2, 3 ON CONFLICT (check_id, name, bucket) DO UPDATE SET count = r.count + excluded.count,
	min = least(r.min, excluded.min), max = greatest(r.max, excluded.max), sum = r.sum + excluded.sum RETURNING 1),
a1 AS (SELECT check_id, name, date_trunc('hour', bucket) AS bucket, sum(count)::bigint AS count, min(min) AS min, max(max) AS max, sum(sum) AS sum FROM a5 GROUP BY 1, 2, 3),
u1 AS (INSERT INTO rollup_1h AS r SELECT * FROM a1 ORDER BY 1, 2, 3 ON CONFLICT (check_id, name, bucket) DO UPDATE SET count = r.count + excluded.count,
	min = least(r.min, excluded.min), max = greatest(r.max, excluded.max), sum = r.sum + excluded.sum RETURNING 1),
ad AS (SELECT check_id, name, date_trunc('day', bucket) AS bucket, sum(count)::bigint AS count, min(min) AS min, max(max) AS max, sum(sum) AS sum FROM a5 GROUP BY 1, 2, 3),
ud AS (INSERT INTO rollup_1d AS r SELECT * FROM ad ORDER BY 1, 2, 3 ON CONFLICT (check_id, name, bucket) DO UPDATE SET count = r.count + excluded.count,
	min = least(r.min, excluded.min), max = greatest(r.max, excluded.max), sum = r.sum + excluded.sum RETURNING 1)
SELECT (SELECT count(*) FROM u5) + (SELECT count(*) FROM u1) + (SELECT count(*) FROM ud);
DROP TABLE rollup_pending;

CREATE TABLE IF NOT EXISTS rollup_dirty (
	bucket timestamptz NOT NULL, -- a 5-minute bucket with rows not rolled up yet
	marked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rollup_dirty_bucket ON rollup_dirty (bucket);

-- Raw rows of one bucket are found by time; rows arrive in time order, so
-- a BRIN index is small and costs the writers next to nothing.
CREATE INDEX IF NOT EXISTS metric_numeric_ts ON metric_numeric USING brin (ts) WITH (autosummarize = on);
-- Hours and days are recomputed from the finer rollup by bucket.
CREATE INDEX IF NOT EXISTS rollup_5m_bucket ON rollup_5m (bucket);
CREATE INDEX IF NOT EXISTS rollup_1h_bucket ON rollup_1h (bucket);
CREATE INDEX IF NOT EXISTS rollup_1d_bucket ON rollup_1d (bucket);

-- Raw days dropped by a configured retention: their rollups are final
-- (late data landing there again is kept raw until the next prune, but
-- cannot be recomputed into a bucket whose other rows are gone).
CREATE TABLE IF NOT EXISTS raw_pruned (before timestamptz NOT NULL);
