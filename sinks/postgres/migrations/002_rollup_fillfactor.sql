-- Rollup rows are updated in place on every batch; free space in each page
-- lets Postgres do HOT updates (no index maintenance).
ALTER TABLE rollup_5m SET (fillfactor = 70);
ALTER TABLE rollup_1h SET (fillfactor = 70);
ALTER TABLE rollup_1d SET (fillfactor = 70);
