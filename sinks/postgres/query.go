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
		if err := rows.Scan(&c.ID, &c.Name, &c.Agent, &c.Type, &c.Target, &tags, &c.FirstSeen, &c.LastSeen, &st, &stt, &c.Output); err != nil {
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
			q.CheckID, q.Metric, q.From, q.To)
	} else {
		// Fold in deltas not applied yet, so a rollup is never behind the
		// raw data a reader has seen.
		if _, err := s.applyRollups(ctx); err != nil {
			return ser, err
		}
		table := map[store.Resolution]string{store.Roll5: "rollup_5m", store.Roll1: "rollup_1h", store.RollD: "rollup_1d"}[res]
		from := q.From.UTC().Truncate(res.Bucket())
		rows, err = pool.Query(ctx, `SELECT bucket, count, min, max, sum FROM `+s.sch()+`.`+table+` WHERE check_id = $1 AND name = $2 AND bucket BETWEEN $3 AND $4 ORDER BY bucket`,
			q.CheckID, q.Metric, from, q.To)
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
	if _, err := s.applyRollups(ctx); err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT DISTINCT name FROM `+s.sch()+`.rollup_1d WHERE check_id = $1
		UNION SELECT DISTINCT name FROM `+s.sch()+`.metric_text WHERE check_id = $1`, checkID)
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
		WHERE check_id = $1 AND ts BETWEEN $2 AND $3 ORDER BY ts DESC LIMIT $4`, checkID, from, to, limit)
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

// Replay streams stored results in time order, an hour at a time.
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
	var first, last *time.Time
	if err := pool.QueryRow(ctx, `SELECT min(ts), max(ts) FROM `+s.sch()+`.status WHERE ts BETWEEN $1 AND $2`, from, to).Scan(&first, &last); err != nil {
		return fmt.Errorf("postgres: replay: %w", err)
	}
	if first == nil {
		return nil
	}
	type key struct {
		id uuid.UUID
		ts int64
	}
	for lo := *first; !lo.After(*last); lo = lo.Add(time.Hour) {
		hi := lo.Add(time.Hour - time.Microsecond)
		if hi.After(*last) {
			hi = *last
		}
		metrics := map[key][]model.Metric{}
		mrows, err := pool.Query(ctx, `SELECT check_id, ts, name, value, NULL::text FROM `+s.sch()+`.metric_numeric WHERE ts BETWEEN $1 AND $2
			UNION ALL SELECT check_id, ts, name, NULL::float8, value FROM `+s.sch()+`.metric_text WHERE ts BETWEEN $1 AND $2`, lo, hi)
		if err != nil {
			return fmt.Errorf("postgres: replay metrics: %w", err)
		}
		for mrows.Next() {
			var id uuid.UUID
			var ts time.Time
			var name string
			var num *float64
			var text *string
			if err := mrows.Scan(&id, &ts, &name, &num, &text); err != nil {
				mrows.Close()
				return err
			}
			m := model.Metric{Name: name}
			if num != nil {
				m.Value = model.Float(*num)
			} else if text != nil {
				m.Value = model.String(*text)
			}
			k := key{id, ts.UnixMicro()}
			metrics[k] = append(metrics[k], m)
		}
		mrows.Close()
		rows, err := pool.Query(ctx, `SELECT check_id, ts, status, state_type, attempt, duration_ns, output, long_output FROM `+s.sch()+`.status
			WHERE ts BETWEEN $1 AND $2 ORDER BY ts, check_id`, lo, hi)
		if err != nil {
			return fmt.Errorf("postgres: replay: %w", err)
		}
		var batch []model.Result
		for rows.Next() {
			var r model.Result
			var st, stt int16
			var att int32
			var dur int64
			if err := rows.Scan(&r.CheckID, &r.Time, &st, &stt, &att, &dur, &r.Output, &r.LongOutput); err != nil {
				rows.Close()
				return err
			}
			c := info[r.CheckID]
			r.Check, r.Agent, r.Type, r.Target, r.Tags = c.Name, c.Agent, c.Type, c.Target, c.Tags
			r.Status, r.StateType, r.Attempt, r.Duration = model.Status(st), model.StateType(stt), int(att), time.Duration(dur)
			r.Metrics = metrics[key{r.CheckID, r.Time.UnixMicro()}]
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
	pool, err := s.handle()
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	for _, t := range ts {
		labels, _ := json.Marshal(t.Labels)
		b.Queue(`INSERT INTO `+s.sch()+`.alert (ts, rule, key, labels, check_id, from_state, to_state, severity, value, message)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
			t.Time, clean(t.Rule), clean(t.Key), string(labels), t.CheckID, t.From, t.To, t.Severity, t.Value, clean(t.Message))
	}
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
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
		if err := rows.Scan(&t.Time, &t.Rule, &t.Key, &labels, &t.CheckID, &t.From, &t.To, &t.Severity, &t.Value, &t.Message); err != nil {
			return nil, err
		}
		json.Unmarshal(labels, &t.Labels)
		out = append(out, t)
	}
	return out, rows.Err()
}

// prune drops whole day partitions that end before cut, and rollup and
// alert rows older than cut.
func (s *Store) prune(ctx context.Context, pool *pgxpool.Pool, cut time.Time) error {
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace
		WHERE n.nspname = $1 AND p.relname = ANY($2)`, s.settings.Schema, partitioned)
	if err != nil {
		return err
	}
	var drop []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		i := strings.LastIndexByte(name, '_')
		day, err := time.Parse("20060102", name[i+1:])
		if err == nil && !day.AddDate(0, 0, 1).After(cut) {
			drop = append(drop, name)
		}
	}
	rows.Close()
	for _, name := range drop {
		if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+s.sch()+`.`+pgx.Identifier{name}.Sanitize()); err != nil {
			return err
		}
		s.log.Info("retention: dropped partition", "partition", name)
		s.mu.Lock()
		delete(s.parts, name[strings.LastIndexByte(name, '_')+1:])
		s.mu.Unlock()
	}
	for _, q := range []string{`DELETE FROM ` + s.sch() + `.rollup_5m WHERE bucket < $1`, `DELETE FROM ` + s.sch() + `.rollup_1h WHERE bucket < $1`,
		`DELETE FROM ` + s.sch() + `.rollup_1d WHERE bucket < $1`, `DELETE FROM ` + s.sch() + `.alert WHERE ts < $1`} {
		if _, err := pool.Exec(ctx, q, cut); err != nil {
			return err
		}
	}
	return nil
}
