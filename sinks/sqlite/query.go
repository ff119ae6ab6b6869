package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/store"
)

var _ store.Store = (*Store)(nil)

func (s *Store) Checks(ctx context.Context) ([]store.CheckInfo, error) {
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT id, name, agent, type, target, tags, first_seen, last_seen, last_status, last_state_type, last_output
		FROM "check" ORDER BY name, agent`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: checks: %w", err)
	}
	defer rows.Close()
	var out []store.CheckInfo
	for rows.Next() {
		var c store.CheckInfo
		var id, tags string
		var first, last int64
		var st, stt int
		if err := rows.Scan(&id, &c.Name, &c.Agent, &c.Type, &c.Target, &tags, &first, &last, &st, &stt, &c.Output); err != nil {
			return nil, err
		}
		c.ID, _ = uuid.Parse(id)
		json.Unmarshal([]byte(tags), &c.Tags)
		c.FirstSeen, c.LastSeen, c.Time = time.Unix(0, first), time.Unix(0, last), time.Unix(0, last)
		c.Status, c.StateType = model.Status(st), model.StateType(stt)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *Store) Series(ctx context.Context, q store.SeriesQuery) (store.Series, error) {
	db, err := s.handle()
	if err != nil {
		return store.Series{}, err
	}
	res := store.ResolutionFor(q.Step)
	ser := store.Series{CheckID: q.CheckID, Metric: q.Metric, Resolution: res, Points: []store.Point{}}
	id := q.CheckID.String()
	var rows *sql.Rows
	if res == store.Raw {
		rows, err = db.QueryContext(ctx, `SELECT ts, value FROM metric_numeric WHERE check_id = ? AND name = ? AND ts BETWEEN ? AND ? ORDER BY ts`,
			id, q.Metric, q.From.UnixNano(), q.To.UnixNano())
	} else {
		table := map[store.Resolution]string{store.Roll5: "rollup_5m", store.Roll1: "rollup_1h", store.RollD: "rollup_1d"}[res]
		from := q.From.UnixNano()
		from -= from % int64(res.Bucket()) // the bucket holding From
		rows, err = db.QueryContext(ctx, `SELECT bucket, count, min, max, sum FROM `+table+` WHERE check_id = ? AND name = ? AND bucket BETWEEN ? AND ? ORDER BY bucket`,
			id, q.Metric, from, q.To.UnixNano())
	}
	if err != nil {
		return ser, fmt.Errorf("sqlite: series: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p store.Point
		var ts int64
		if res == store.Raw {
			if err := rows.Scan(&ts, &p.Value); err != nil {
				return ser, err
			}
			p.Count, p.Min, p.Max, p.Sum = 1, p.Value, p.Value, p.Value
		} else {
			if err := rows.Scan(&ts, &p.Count, &p.Min, &p.Max, &p.Sum); err != nil {
				return ser, err
			}
			p.Value = p.Sum / float64(p.Count)
		}
		p.Time = time.Unix(0, ts)
		ser.Points = append(ser.Points, p)
	}
	return ser, rows.Err()
}

func (s *Store) TextSeries(ctx context.Context, q store.SeriesQuery) ([]store.TextPoint, error) {
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT ts, value FROM metric_text WHERE check_id = ? AND name = ? AND ts BETWEEN ? AND ? ORDER BY ts`,
		q.CheckID.String(), q.Metric, q.From.UnixNano(), q.To.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("sqlite: text series: %w", err)
	}
	defer rows.Close()
	out := []store.TextPoint{}
	for rows.Next() {
		var p store.TextPoint
		var ts int64
		if err := rows.Scan(&ts, &p.Value); err != nil {
			return nil, err
		}
		p.Time = time.Unix(0, ts)
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *Store) MetricNames(ctx context.Context, checkID uuid.UUID) ([]string, error) {
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT name FROM rollup_1d WHERE check_id = ? UNION SELECT DISTINCT name FROM metric_text WHERE check_id = ?`,
		checkID.String(), checkID.String())
	if err != nil {
		return nil, fmt.Errorf("sqlite: metric names: %w", err)
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
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT ts, status, state_type, attempt, duration, output, long_output FROM status
		WHERE check_id = ? AND ts BETWEEN ? AND ? ORDER BY ts DESC LIMIT ?`, checkID.String(), from.UnixNano(), to.UnixNano(), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: history: %w", err)
	}
	defer rows.Close()
	out := []store.StatusPoint{}
	for rows.Next() {
		var p store.StatusPoint
		var ts, dur int64
		var st, stt int
		if err := rows.Scan(&ts, &st, &stt, &p.Attempt, &dur, &p.Output, &p.LongOutput); err != nil {
			return nil, err
		}
		p.Time, p.Status, p.StateType, p.Duration = time.Unix(0, ts), model.Status(st), model.StateType(stt), time.Duration(dur)
		out = append(out, p)
	}
	return out, rows.Err()
}

// sqlLimit maps "no limit" (<= 0) to SQLite's LIMIT -1.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

func (s *Store) Traps(ctx context.Context, from, to time.Time, limit int) ([]store.Trap, error) {
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT ts, check_id, source, trap_oid, name, varbinds FROM trap
		WHERE ts BETWEEN ? AND ? ORDER BY ts DESC, check_id LIMIT ?`, from.UnixNano(), to.UnixNano(), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: traps: %w", err)
	}
	defer rows.Close()
	out := []store.Trap{}
	for rows.Next() {
		var t store.Trap
		var ts int64
		var id, vb string
		if err := rows.Scan(&ts, &id, &t.Source, &t.OID, &t.Name, &vb); err != nil {
			return nil, fmt.Errorf("sqlite: traps: %w", err)
		}
		t.Time = time.Unix(0, ts)
		if t.CheckID, err = uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("sqlite: trap check id %q: %w", id, err)
		}
		if err := json.Unmarshal([]byte(vb), &t.Varbinds); err != nil {
			return nil, fmt.Errorf("sqlite: trap varbinds: %w", err)
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
	db, err := s.handle()
	if err != nil {
		return err
	}
	checks, err := s.Checks(ctx)
	if err != nil {
		return err
	}
	info := map[string]store.CheckInfo{}
	for _, c := range checks {
		info[c.ID.String()] = c
	}
	lastTs, lastID, first := from.UnixNano(), "", true
	for {
		rows, err := db.QueryContext(ctx, `SELECT check_id, ts, status, state_type, attempt, duration, output, long_output FROM status
			WHERE ts >= ? AND ts <= ? AND (? OR ts > ? OR check_id > ?) ORDER BY ts, check_id LIMIT ?`,
			lastTs, to.UnixNano(), first, lastTs, lastID, replayPage)
		if err != nil {
			return fmt.Errorf("sqlite: replay: %w", err)
		}
		var page []model.Result
		var ids []string
		for rows.Next() {
			var id string
			var ts, dur int64
			var st, stt int
			var r model.Result
			if err := rows.Scan(&id, &ts, &st, &stt, &r.Attempt, &dur, &r.Output, &r.LongOutput); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: replay: %w", err)
			}
			r.CheckID, _ = uuid.Parse(id)
			c := info[id]
			r.Check, r.Agent, r.Type, r.Target, r.Tags = c.Name, c.Agent, c.Type, c.Target, c.Tags
			r.Time, r.Status, r.StateType, r.Duration = time.Unix(0, ts), model.Status(st), model.StateType(stt), time.Duration(dur)
			page = append(page, r)
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlite: replay: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		if err := replayMetrics(ctx, db, page, ids); err != nil {
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
		lastTs, lastID, first = page[len(page)-1].Time.UnixNano(), ids[len(ids)-1], false
	}
}

// replayMetrics attaches the numeric and text metrics of a page of
// results (sorted by time), by name.
func replayMetrics(ctx context.Context, db *sql.DB, page []model.Result, ids []string) error {
	type key struct {
		id string
		ts int64
	}
	idx := make(map[key]int, len(page))
	for i := range page {
		idx[key{ids[i], page[i].Time.UnixNano()}] = i
	}
	lo, hi := page[0].Time.UnixNano(), page[len(page)-1].Time.UnixNano()
	rows, err := db.QueryContext(ctx, `SELECT check_id, ts, name, value, NULL FROM metric_numeric WHERE ts BETWEEN ? AND ?
		UNION ALL SELECT check_id, ts, name, NULL, value FROM metric_text WHERE ts BETWEEN ? AND ?`, lo, hi, lo, hi)
	if err != nil {
		return fmt.Errorf("sqlite: replay metrics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, name string
		var ts int64
		var num sql.NullFloat64
		var text sql.NullString
		if err := rows.Scan(&id, &ts, &name, &num, &text); err != nil {
			return fmt.Errorf("sqlite: replay metrics: %w", err)
		}
		i, ok := idx[key{id, ts}]
		if !ok {
			continue // a result at the page's edge time that belongs to the next page
		}
		m := model.Metric{Name: name}
		if num.Valid {
			m.Value = model.Float(num.Float64)
		} else {
			m.Value = model.String(text.String)
		}
		page[i].Metrics = append(page[i].Metrics, m)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: replay metrics: %w", err)
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
	s.wmu.Lock()
	defer s.wmu.Unlock()
	db, err := s.handle()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: alerts: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO alert VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqlite: alerts: %w", err)
	}
	defer stmt.Close()
	for _, t := range ts {
		var v any = t.Value
		if math.IsNaN(t.Value) {
			v = nil // SQLite has no NaN; NULL reads back as NaN
		}
		if _, err := stmt.ExecContext(ctx, t.Time.UnixNano(), clean(t.Rule), clean(t.Key), cleanTags(t.Labels), t.CheckID.String(),
			clean(t.From), clean(t.To), clean(t.Severity), v, clean(t.Message)); err != nil {
			return fmt.Errorf("sqlite: alert: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: alerts: %w", err)
	}
	return nil
}

func (s *Store) Alerts(ctx context.Context, from, to time.Time) ([]store.AlertTransition, error) {
	db, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT ts, rule, key, labels, check_id, from_state, to_state, severity, value, message FROM alert
		WHERE ts BETWEEN ? AND ? ORDER BY ts, key`, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("sqlite: alerts: %w", err)
	}
	defer rows.Close()
	var out []store.AlertTransition
	for rows.Next() {
		var t store.AlertTransition
		var ts int64
		var labels, id string
		var v sql.NullFloat64
		if err := rows.Scan(&ts, &t.Rule, &t.Key, &labels, &id, &t.From, &t.To, &t.Severity, &v, &t.Message); err != nil {
			return nil, fmt.Errorf("sqlite: alerts: %w", err)
		}
		t.Value = v.Float64
		if !v.Valid {
			t.Value = math.NaN()
		}
		t.Time = time.Unix(0, ts)
		t.CheckID, _ = uuid.Parse(id)
		json.Unmarshal([]byte(labels), &t.Labels)
		out = append(out, t)
	}
	return out, rows.Err()
}
