package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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
		WHERE check_id = ? AND ts BETWEEN ? AND ? ORDER BY ts DESC LIMIT ?`, checkID.String(), from.UnixNano(), to.UnixNano(), limit)
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

// Replay streams stored results in time order, an hour of data at a time,
// with their numeric and text metrics.
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
	// Skip empty stretches: start at the first stored result.
	var first, last sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT min(ts), max(ts) FROM status WHERE ts BETWEEN ? AND ?`,
		from.UnixNano(), to.UnixNano()).Scan(&first, &last); err != nil {
		return fmt.Errorf("sqlite: replay: %w", err)
	}
	if !first.Valid {
		return nil
	}
	const chunk = int64(time.Hour)
	for lo := first.Int64; lo <= last.Int64; lo += chunk {
		hi := min(lo+chunk-1, last.Int64)
		type key struct {
			id string
			ts int64
		}
		metrics := map[key][]model.Metric{}
		mrows, err := db.QueryContext(ctx, `SELECT check_id, ts, name, value, NULL FROM metric_numeric WHERE ts BETWEEN ? AND ?
			UNION ALL SELECT check_id, ts, name, NULL, value FROM metric_text WHERE ts BETWEEN ? AND ?`, lo, hi, lo, hi)
		if err != nil {
			return fmt.Errorf("sqlite: replay metrics: %w", err)
		}
		for mrows.Next() {
			var id, name string
			var ts int64
			var num sql.NullFloat64
			var text sql.NullString
			if err := mrows.Scan(&id, &ts, &name, &num, &text); err != nil {
				mrows.Close()
				return err
			}
			m := model.Metric{Name: name}
			if num.Valid {
				m.Value = model.Float(num.Float64)
			} else {
				m.Value = model.String(text.String)
			}
			metrics[key{id, ts}] = append(metrics[key{id, ts}], m)
		}
		mrows.Close()
		rows, err := db.QueryContext(ctx, `SELECT check_id, ts, status, state_type, attempt, duration, output, long_output FROM status
			WHERE ts BETWEEN ? AND ? ORDER BY ts, check_id`, lo, hi)
		if err != nil {
			return fmt.Errorf("sqlite: replay: %w", err)
		}
		var batch []model.Result
		for rows.Next() {
			var id string
			var ts, dur int64
			var st, stt int
			var r model.Result
			if err := rows.Scan(&id, &ts, &st, &stt, &r.Attempt, &dur, &r.Output, &r.LongOutput); err != nil {
				rows.Close()
				return err
			}
			r.CheckID, _ = uuid.Parse(id)
			c := info[id]
			r.Check, r.Agent, r.Type, r.Target, r.Tags = c.Name, c.Agent, c.Type, c.Target, c.Tags
			r.Time, r.Status, r.StateType, r.Duration = time.Unix(0, ts), model.Status(st), model.StateType(stt), time.Duration(dur)
			r.Metrics = metrics[key{id, ts}]
			sort.Slice(r.Metrics, func(i, j int) bool { return r.Metrics[i].Name < r.Metrics[j].Name })
			batch = append(batch, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
		for _, r := range batch {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) WriteAlerts(ctx context.Context, ts []store.AlertTransition) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return fmt.Errorf("sqlite: not connected")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO alert VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, t := range ts {
		labels, _ := json.Marshal(t.Labels)
		if _, err := stmt.ExecContext(ctx, t.Time.UnixNano(), t.Rule, t.Key, string(labels), t.CheckID.String(), t.From, t.To,
			t.Severity, t.Value, clean(t.Message)); err != nil {
			return fmt.Errorf("sqlite: alert: %w", err)
		}
	}
	return tx.Commit()
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
		if err := rows.Scan(&ts, &t.Rule, &t.Key, &labels, &id, &t.From, &t.To, &t.Severity, &t.Value, &t.Message); err != nil {
			return nil, err
		}
		t.Time = time.Unix(0, ts)
		t.CheckID, _ = uuid.Parse(id)
		json.Unmarshal([]byte(labels), &t.Labels)
		out = append(out, t)
	}
	return out, rows.Err()
}
