-- recon trend store, schema version 1. Every table of measurements is
-- range-partitioned by day on ts (partitions are created by recon ahead of
-- time and on demand). Timestamps are timestamptz (microseconds) so
-- Grafana's PostgreSQL data source can graph them directly.
CREATE TABLE IF NOT EXISTS "check" (
	id uuid PRIMARY KEY,
	name text NOT NULL,
	agent text NOT NULL DEFAULT '',
	type text NOT NULL DEFAULT '',
	target text NOT NULL DEFAULT '',
	tags jsonb NOT NULL DEFAULT '{}',
	first_seen timestamptz NOT NULL,
	last_seen timestamptz NOT NULL,
	last_status smallint NOT NULL DEFAULT 3,
	last_state_type smallint NOT NULL DEFAULT 0,
	last_output text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS check_name ON "check" (name);

CREATE TABLE IF NOT EXISTS status (
	check_id uuid NOT NULL,
	ts timestamptz NOT NULL,
	status smallint NOT NULL,
	state_type smallint NOT NULL,
	attempt integer NOT NULL,
	duration_ns bigint NOT NULL,
	output text NOT NULL,
	long_output text NOT NULL,
	PRIMARY KEY (check_id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX IF NOT EXISTS status_ts ON status (ts);

CREATE TABLE IF NOT EXISTS metric_numeric (
	check_id uuid NOT NULL,
	name text NOT NULL,
	ts timestamptz NOT NULL,
	value double precision NOT NULL,
	PRIMARY KEY (check_id, name, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE IF NOT EXISTS metric_text (
	check_id uuid NOT NULL,
	name text NOT NULL,
	ts timestamptz NOT NULL,
	value text NOT NULL,
	PRIMARY KEY (check_id, name, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE IF NOT EXISTS trap (
	check_id uuid NOT NULL,
	ts timestamptz NOT NULL,
	source text NOT NULL,
	trap_oid text NOT NULL,
	name text NOT NULL,
	varbinds jsonb NOT NULL,
	PRIMARY KEY (check_id, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE IF NOT EXISTS rollup_5m (check_id uuid NOT NULL, name text NOT NULL, bucket timestamptz NOT NULL,
	count bigint NOT NULL, min double precision NOT NULL, max double precision NOT NULL, sum double precision NOT NULL,
	PRIMARY KEY (check_id, name, bucket));
CREATE TABLE IF NOT EXISTS rollup_1h (LIKE rollup_5m INCLUDING ALL);
CREATE TABLE IF NOT EXISTS rollup_1d (LIKE rollup_5m INCLUDING ALL);

CREATE TABLE IF NOT EXISTS alert (
	ts timestamptz NOT NULL,
	rule text NOT NULL,
	key text NOT NULL,
	labels jsonb NOT NULL,
	check_id uuid NOT NULL,
	from_state text NOT NULL,
	to_state text NOT NULL,
	severity text NOT NULL,
	value double precision NOT NULL,
	message text NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS alert_identity ON alert (key, ts, from_state, to_state, md5(message));
CREATE INDEX IF NOT EXISTS alert_ts ON alert (ts);
