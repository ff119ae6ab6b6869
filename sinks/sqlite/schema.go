package sqlite

// migrations[i] takes the schema from version i to i+1; they run in one
// transaction at Connect. Timestamps are Unix nanoseconds (INTEGER);
// rollup buckets are the bucket start in nanoseconds (UTC).
var migrations = []string{
	`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS "check" (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	agent TEXT NOT NULL DEFAULT '',
	type TEXT NOT NULL DEFAULT '',
	target TEXT NOT NULL DEFAULT '',
	tags TEXT NOT NULL DEFAULT '{}',
	first_seen INTEGER NOT NULL,
	last_seen INTEGER NOT NULL,
	last_status INTEGER NOT NULL DEFAULT 3,
	last_state_type INTEGER NOT NULL DEFAULT 0,
	last_output TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS status (
	check_id TEXT NOT NULL,
	ts INTEGER NOT NULL,
	status INTEGER NOT NULL,
	state_type INTEGER NOT NULL,
	attempt INTEGER NOT NULL,
	duration INTEGER NOT NULL,
	output TEXT NOT NULL,
	long_output TEXT NOT NULL,
	PRIMARY KEY (check_id, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS status_ts ON status (ts);
CREATE TABLE IF NOT EXISTS metric_numeric (
	check_id TEXT NOT NULL,
	name TEXT NOT NULL,
	ts INTEGER NOT NULL,
	value REAL NOT NULL,
	PRIMARY KEY (check_id, name, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metric_numeric_ts ON metric_numeric (ts);
CREATE TABLE IF NOT EXISTS metric_text (
	check_id TEXT NOT NULL,
	name TEXT NOT NULL,
	ts INTEGER NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (check_id, name, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metric_text_ts ON metric_text (ts);
CREATE TABLE IF NOT EXISTS rollup_5m (check_id TEXT NOT NULL, name TEXT NOT NULL, bucket INTEGER NOT NULL,
	count INTEGER NOT NULL, min REAL NOT NULL, max REAL NOT NULL, sum REAL NOT NULL, PRIMARY KEY (check_id, name, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1h (check_id TEXT NOT NULL, name TEXT NOT NULL, bucket INTEGER NOT NULL,
	count INTEGER NOT NULL, min REAL NOT NULL, max REAL NOT NULL, sum REAL NOT NULL, PRIMARY KEY (check_id, name, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1d (check_id TEXT NOT NULL, name TEXT NOT NULL, bucket INTEGER NOT NULL,
	count INTEGER NOT NULL, min REAL NOT NULL, max REAL NOT NULL, sum REAL NOT NULL, PRIMARY KEY (check_id, name, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trap (
	check_id TEXT NOT NULL,
	ts INTEGER NOT NULL,
	source TEXT NOT NULL,
	trap_oid TEXT NOT NULL,
	name TEXT NOT NULL,
	varbinds TEXT NOT NULL,
	PRIMARY KEY (check_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert (
	ts INTEGER NOT NULL,
	rule TEXT NOT NULL,
	key TEXT NOT NULL,
	labels TEXT NOT NULL,
	check_id TEXT NOT NULL,
	from_state TEXT NOT NULL,
	to_state TEXT NOT NULL,
	severity TEXT NOT NULL,
	value REAL NOT NULL,
	message TEXT NOT NULL,
	PRIMARY KEY (key, ts, from_state, to_state, message)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_ts ON alert (ts);`,
	// 2: an alert's value may be NaN (an empty window), which SQLite
	// stores as NULL.
	`CREATE TABLE alert_v2 (
	ts INTEGER NOT NULL,
	rule TEXT NOT NULL,
	key TEXT NOT NULL,
	labels TEXT NOT NULL,
	check_id TEXT NOT NULL,
	from_state TEXT NOT NULL,
	to_state TEXT NOT NULL,
	severity TEXT NOT NULL,
	value REAL,
	message TEXT NOT NULL,
	PRIMARY KEY (key, ts, from_state, to_state, message)
) WITHOUT ROWID;
INSERT INTO alert_v2 SELECT * FROM alert;
DROP TABLE alert;
ALTER TABLE alert_v2 RENAME TO alert;
CREATE INDEX alert_ts ON alert (ts);`,
}
