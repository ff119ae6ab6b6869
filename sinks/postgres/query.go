package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store"
)

var _ store.Store = (*Store)(nil)

func (s *Store) sch() string { return pgx.Identifier{s.settings.Schema}.Sanitize() }

func (s *Store) Checks(ctx context.Context) ([]store.CheckInfo, error) {
	pool, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT id, name, agent, type, target, tags, first_seen, last_seen, last_status, last_state_type, last_output
		FROM `+s.sch()+`."check" ORDER BY name, agent`)
	if err != nil {
		return nil, fmt.Errorf("postgres: checks: %w", err)
	}
	defer rows.Close()
	var out []store.CheckInfo
	for rows.Next() {
		var c store.CheckInfo
		var tags []byte
		var st, stt int16
		if err := rows.Scan((*[16]byte)(&c.ID), &c.Name, &c.Agent, &c.Type, &c.Target, &tags, &c.FirstSeen, &c.LastSeen, &st, &stt, &c.Output); err != nil {
			return nil, err
		}
		json.Unmarshal(tags, &c.Tags)
		c.Time, c.Status, c.StateType = c.LastSeen, model.Status(st), model.StateType(stt)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *Store) Series(ctx context.Context, q store.SeriesQuery) (store.Series, error) {
	pool, err := s.handle()
	if err != nil {
		return store.Series{}, err
	}
	res := store.ResolutionFor(q.Step)
	ser := store.Series{CheckID: q.CheckID, Metric: q.Metric, Resolution: res, Points: []store.Point{}}
	var rows pgx.Rows
	if res == store.Raw {
		rows, err = pool.Query(ctx, `SELECT ts, value FROM `+s.sch()+`.metric_numeric WHERE check_id = $1 AND name = $2 AND ts BETWEEN $3 AND $4 ORDER BY ts`,
			pgid(q.CheckID), q.Metric, q.From, q.To)
	} else {
		rows, err = pool.Query(ctx, seriesRollupSQL(s.sch(), res), pgid(q.CheckID), q.Metric, q.From.UTC().Truncate(res.Bucket()), q.To)
	}
	if err != nil {
		return ser, fmt.Errorf("postgres: series: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p store.Point
		if res == store.Raw {
			if err := rows.Scan(&p.Time, &p.Value); err != nil {
				return ser, err
			}
			p.Count, p.Min, p.Max, p.Sum = 1, p.Value, p.Value, p.Value
		} else {
			if err := rows.Scan(&p.Time, &p.Count, &p.Min, &p.Max, &p.Sum); err != nil {
				return ser, err
			}
			p.Value = p.Sum / float64(p.Count)
		}
		ser.Points = append(ser.Points, p)
	}
	return ser, rows.Err()
}

func (s *Store) TextSeries(ctx context.Context, q store.SeriesQuery) ([]store.TextPoint, error) {
	pool, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT ts, value FROM `+s.sch()+`.metric_text WHERE check_id = $1 AND name = $2 AND ts BETWEEN $3 AND $4 ORDER BY ts`,
		q.CheckID, q.Metric, q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("postgres: text series: %w", err)
	}
	defer rows.Close()
	out := []store.TextPoint{}
	for rows.Next() {
		var p store.TextPoint
		if err := rows.Scan(&p.Time, &p.Value); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *Store) MetricNames(ctx context.Context, checkID uuid.UUID) ([]string, error) {
	pool, err := s.handle()
	if err != nil {
		return nil, err
	}
	// Every numeric series has a daily rollup or raw rows in a bucket not
	// rolled up yet.
	sch := s.sch()
	rows, err := pool.Query(ctx, `SELECT name FROM `+sch+`.rollup_1d WHERE check_id = $1
		UNION SELECT x.name FROM (SELECT DISTINCT bucket AS b FROM `+sch+`.rollup_dirty) m
			JOIN LATERAL (SELECT DISTINCT name FROM `+sch+`.metric_numeric WHERE check_id = $1 AND ts >= m.b AND ts < m.b + interval '5 minutes') x ON true
		UNION SELECT name FROM `+sch+`.metric_text WHERE check_id = $1`, pgid(checkID))
	if err != nil {
		return nil, fmt.Errorf("postgres: metric names: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out, rows.Err()
}

func (s *Store) StatusHistory(ctx context.Context, checkID uuid.UUID, from, to time.Time, limit int) ([]store.StatusPoint, error) {
	pool, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT ts, status, state_type, attempt, duration_ns, output, long_output FROM `+s.sch()+`.status
		WHERE check_id = $1 AND ts BETWEEN $2 AND $3 ORDER BY ts DESC LIMIT $4`, checkID, from, to, nullLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: history: %w", err)
	}
	defer rows.Close()
	out := []store.StatusPoint{}
	for rows.Next() {
		var p store.StatusPoint
		var st, stt int16
		var att int32
		var dur int64
		if err := rows.Scan(&p.Time, &st, &stt, &att, &dur, &p.Output, &p.LongOutput); err != nil {
			return nil, err
		}
		p.Status, p.StateType, p.Attempt, p.Duration = model.Status(st), model.StateType(stt), int(att), time.Duration(dur)
		out = append(out, p)
	}
	return out, rows.Err()
}

func nullLimit(limit int) *int64 {
	if limit <= 0 {
		return nil // LIMIT NULL: no limit
	}
	l := int64(limit)
	return &l
}

func (s *Store) Traps(ctx context.Context, from, to time.Time, limit int) ([]store.Trap, error) {
	pool, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT ts, check_id, source, trap_oid, name, varbinds FROM `+s.sch()+`.trap
		WHERE ts BETWEEN $1 AND $2 ORDER BY ts DESC, check_id LIMIT $3`, from, to, nullLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: traps: %w", err)
	}
	defer rows.Close()
	out := []store.Trap{}
	for rows.Next() {
		var t store.Trap
		var vb []byte
		if err := rows.Scan(&t.Time, (*[16]byte)(&t.CheckID), &t.Source, &t.OID, &t.Name, &vb); err != nil {
			return nil, fmt.Errorf("postgres: traps: %w", err)
		}
		if err := json.Unmarshal(vb, &t.Varbinds); err != nil {
			return nil, fmt.Errorf("postgres: trap varbinds: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// replayPage is how many results Replay reads per query.
const replayPage = 5000

// Replay streams stored results in (time, check) order, a page at a time
// (keyset pagination: long empty stretches cost nothing).
func (s *Store) Replay(ctx context.Context, from, to time.Time, fn func(model.Result) error) error {
	pool, err := s.handle()
	if err != nil {
		return err
	}
	checks, err := s.Checks(ctx)
	if err != nil {
		return err
	}
	info := map[uuid.UUID]store.CheckInfo{}
	for _, c := range checks {
		info[c.ID] = c
	}
	lastTs, lastID := from, uuid.Nil
	first := true
	for {
		rows, err := pool.Query(ctx, `SELECT check_id, ts, status, state_type, attempt, duration_ns, output, long_output FROM `+s.sch()+`.status
			WHERE ts >= $1 AND ts <= $2 AND ($3 OR (ts, check_id) > ($1, $4)) ORDER BY ts, check_id LIMIT $5`, lastTs, to, first, lastID, replayPage)
		if err != nil {
			return fmt.Errorf("postgres: replay: %w", err)
		}
		var page []model.Result
		for rows.Next() {
			var r model.Result
			var st, stt int16
			var att int32
			var dur int64
			if err := rows.Scan((*[16]byte)(&r.CheckID), &r.Time, &st, &stt, &att, &dur, &r.Output, &r.LongOutput); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: replay: %w", err)
			}
			c := info[r.CheckID]
			r.Check, r.Agent, r.Type, r.Target, r.Tags = c.Name, c.Agent, c.Type, c.Target, c.Tags
			r.Status, r.StateType, r.Attempt, r.Duration = model.Status(st), model.StateType(stt), int(att), time.Duration(dur)
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: replay: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		if err := s.replayMetrics(ctx, pool, page); err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < replayPage {
			return nil
		}
		last := page[len(page)-1]
		lastTs, lastID, first = last.Time, last.CheckID, false
	}
}

// replayMetrics attaches the numeric and text metrics of a page of
// results (sorted by time), by name.
func (s *Store) replayMetrics(ctx context.Context, pool *pgxpool.Pool, page []model.Result) error {
	idx := make(map[resKey]int, len(page))
	for i := range page {
		idx[key(page[i].CheckID, page[i].Time)] = i
	}
	lo, hi := page[0].Time, page[len(page)-1].Time
	rows, err := pool.Query(ctx, `SELECT check_id, ts, name, value, NULL::text FROM `+s.sch()+`.metric_numeric WHERE ts BETWEEN $1 AND $2
		UNION ALL SELECT check_id, ts, name, NULL::float8, value FROM `+s.sch()+`.metric_text WHERE ts BETWEEN $1 AND $2`, lo, hi)
	if err != nil {
		return fmt.Errorf("postgres: replay metrics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id [16]byte
		var ts time.Time
		var name string
		var num *float64
		var text *string
		if err := rows.Scan(&id, &ts, &name, &num, &text); err != nil {
			return fmt.Errorf("postgres: replay metrics: %w", err)
		}
		i, ok := idx[key(id, ts)]
		if !ok {
			continue // a result at the page's edge time that belongs to the next page
		}
		m := model.Metric{Name: name}
		if num != nil {
			m.Value = model.Float(*num)
		} else if text != nil {
			m.Value = model.String(*text)
		}
		page[i].Metrics = append(page[i].Metrics, m)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: replay metrics: %w", err)
	}
	for i := range page {
		ms := page[i].Metrics
		sort.Slice(ms, func(a, b int) bool { return ms[a].Name < ms[b].Name })
	}
	return nil
}

func (s *Store) WriteAlerts(ctx context.Context, ts []store.AlertTransition) error {
	if len(ts) == 0 {
		return nil
	}
	pool, err := s.handle()
	if err != nil {
		return err
	}
	n := len(ts)
	times, rules, keys, labels, states, tos, sevs, msgs := make([]time.Time, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ids, vals := make([]uuid.UUID, n), make([]float64, n)
	for i, t := range ts {
		times[i], rules[i], keys[i], labels[i] = micro(t.Time), clean(t.Rule), clean(t.Key), cleanTags(t.Labels)
		ids[i], states[i], tos[i], sevs[i], vals[i], msgs[i] = t.CheckID, clean(t.From), clean(t.To), clean(t.Severity), t.Value, clean(t.Message)
	}
	_, err = pool.Exec(ctx, `INSERT INTO `+s.sch()+`.alert (ts, rule, key, labels, check_id, from_state, to_state, severity, value, message)
		SELECT ts, rule, key, labels::jsonb, check_id, f, t, sev, v, msg FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::uuid[],
			$6::text[], $7::text[], $8::text[], $9::float8[], $10::text[]) AS x(ts, rule, key, labels, check_id, f, t, sev, v, msg)
		ON CONFLICT DO NOTHING`, times, rules, keys, labels, pgids(ids), states, tos, sevs, vals, msgs)
	if err != nil {
		if permanent(err) {
			return sink.Permanent(fmt.Errorf("postgres: alerts: %w", err))
		}
		return fmt.Errorf("postgres: alerts: %w", err)
	}
	return nil
}

func (s *Store) Alerts(ctx context.Context, from, to time.Time) ([]store.AlertTransition, error) {
	pool, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT ts, rule, key, labels, check_id, from_state, to_state, severity, value, message FROM `+s.sch()+`.alert
		WHERE ts BETWEEN $1 AND $2 ORDER BY ts, key`, from, to)
	if err != nil {
		return nil, fmt.Errorf("postgres: alerts: %w", err)
	}
	defer rows.Close()
	var out []store.AlertTransition
	for rows.Next() {
		var t store.AlertTransition
		var labels []byte
		if err := rows.Scan(&t.Time, &t.Rule, &t.Key, &labels, (*[16]byte)(&t.CheckID), &t.From, &t.To, &t.Severity, &t.Value, &t.Message); err != nil {
			return nil, err
		}
		json.Unmarshal(labels, &t.Labels)
		out = append(out, t)
	}
	return out, rows.Err()
}

// Prune drops the day partitions of the raw tables (status, metrics,
// traps) whose whole day lies before cut and returns their names. Rollups
// and alert transitions are kept: they are small and are what long-range
// graphs read. WriteBatch never calls it; the background housekeeping does,
// only when a retention is configured.
func (s *Store) Prune(ctx context.Context, cut time.Time) ([]string, error) {
	pool, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace
		WHERE n.nspname = $1 AND p.relname = ANY($2) ORDER BY 1`, s.settings.Schema, partitioned)
	if err != nil {
		return nil, fmt.Errorf("postgres: retention: %w", err)
	}
	var drop []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: retention: %w", err)
		}
		i := strings.LastIndexByte(name, '_')
		day, err := time.Parse("20060102", name[i+1:])
		if err == nil && !day.AddDate(0, 0, 1).After(cut) {
			drop = append(drop, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: retention: %w", err)
	}
	if len(drop) == 0 {
		return nil, nil
	}
	// Recorded before anything goes: the buckets of these days are never
	// recomputed from what is left of their raw rows (rollups.go).
	if _, err := pool.Exec(ctx, `INSERT INTO `+s.sch()+`.raw_pruned (before) VALUES ($1)`, cut.UTC().Truncate(24*time.Hour)); err != nil {
		return nil, fmt.Errorf("postgres: retention: %w", err)
	}
	var dropped []string
	for _, name := range drop {
		if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+s.sch()+`.`+pgx.Identifier{name}.Sanitize()); err != nil {
			return dropped, fmt.Errorf("postgres: retention: drop %s: %w", name, err)
		}
		dropped = append(dropped, name)
		s.log.Info("postgres: retention: dropped partition", "partition", name)
		s.mu.Lock()
		delete(s.parts, name[strings.LastIndexByte(name, '_')+1:])
		s.mu.Unlock()
	}
	return dropped, nil
}

// seriesRollupSQL reads one series at a rollup resolution in one statement
// (one snapshot), exactly at every moment (rollups.go):
//
//   - buckets of the resolution with no marked 5-minute bucket inside come
//     from the rollup table;
//   - in the others, unmarked 5-minute buckets come from rollup_5m and
//     marked ones from the raw rows (the primary key finds this series'
//     rows of one bucket).
//
// Reads never write, so they work on a read-only replica too.
// $1 check, $2 metric, $3 first bucket, $4 end of the range.
func seriesRollupSQL(sch string, res store.Resolution) string {
	table, unit, width := "rollup_5m", "", "5 minutes"
	switch res {
	case store.Roll1:
		table, unit, width = "rollup_1h", "hour", "1 hour"
	case store.RollD:
		table, unit, width = "rollup_1d", "day", "1 day" // the session is in UTC
	}
	trunc := func(x string) string {
		if unit == "" {
			return x
		}
		return "date_trunc('" + unit + "', " + x + ")"
	}
	q := `WITH m AS (SELECT DISTINCT bucket AS b FROM ` + sch + `.rollup_dirty
		WHERE bucket >= $3 AND bucket < $4::timestamptz + interval '` + width + `' AND ` + trunc("bucket") + ` BETWEEN $3 AND $4),
	mp AS (SELECT DISTINCT ` + trunc("b") + ` AS p FROM m)
SELECT b, sum(count)::bigint, min(min), max(max), sum(sum) FROM (
	SELECT bucket AS b, count, min, max, sum FROM ` + sch + `.` + table + `
		WHERE check_id = $1 AND name = $2 AND bucket BETWEEN $3 AND $4 AND bucket NOT IN (SELECT p FROM mp)
	UNION ALL
	SELECT ` + trunc("x.b") + `, x.count, x.min, x.max, x.sum FROM m JOIN LATERAL (
		SELECT m.b, count(*) AS count, min(value) AS min, max(value) AS max, sum(value) AS sum FROM ` + sch + `.metric_numeric
		WHERE check_id = $1 AND name = $2 AND ts >= m.b AND ts < m.b + interval '5 minutes' HAVING count(*) > 0) x ON true`
	if unit != "" {
		q += `
	UNION ALL
	SELECT mp.p, r.count, r.min, r.max, r.sum FROM mp JOIN ` + sch + `.rollup_5m r
		ON r.check_id = $1 AND r.name = $2 AND r.bucket >= mp.p AND r.bucket < mp.p + interval '` + width + `'
		WHERE r.bucket NOT IN (SELECT b FROM m)`
	}
	return q + `
) x GROUP BY b ORDER BY b`
}
