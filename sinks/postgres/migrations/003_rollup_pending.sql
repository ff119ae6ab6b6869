-- Rollup deltas: each write transaction appends the 5-minute aggregates of
-- the rows it inserted here (append-only, no index, cheap); a background
-- applier folds them into rollup_5m, rollup_1h and rollup_1d in one
-- transaction that deletes what it applied. Rollups stay exact (every
-- delta is applied exactly once) and the write path stays close to a
-- plain COPY.
CREATE TABLE IF NOT EXISTS rollup_pending (
	check_id uuid NOT NULL,
	name text NOT NULL,
	bucket timestamptz NOT NULL,
	count bigint NOT NULL,
	min double precision NOT NULL,
	max double precision NOT NULL,
	sum double precision NOT NULL
);
