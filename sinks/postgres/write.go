package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

// clean makes text storable: Postgres text cannot hold NUL and must be
// valid UTF-8. The result is kept, with the offending bytes replaced.
func clean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

type rollKey struct {
	id     uuid.UUID
	name   string
	bucket time.Time
}

type agg struct {
	count         int64
	min, max, sum float64
}

// WriteBatch stores a batch in one transaction:
//  1. status rows go through a temporary table and INSERT … ON CONFLICT DO
//     NOTHING RETURNING, which tells which results are new (a replayed
//     result's status row exists already);
//  2. the numeric metrics of the new results are COPYed straight into
//     metric_numeric (they cannot exist yet: they are written in the same
//     transaction as their status row);
//  3. rollups are aggregated here from exactly those rows and upserted;
//  4. text metrics are stored when they differ from the previous value;
//  5. checks are upserted, traps copied.
func (s *Store) WriteBatch(ctx context.Context, batch []model.Result) error {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	pool := s.pool
	if pool == nil {
		s.mu.Unlock()
		return fmt.Errorf("postgres: not connected")
	}
	// Partitions for the days present in the batch (not the whole range
	// between its oldest and newest result: a late straggler from years ago
	// must not create thousands of empty partitions).
	seenDay := map[string]bool{}
	var days []time.Time
	for i := range batch {
		d := batch[i].Time.UTC()
		d = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
		if k := d.Format("20060102"); !seenDay[k] {
			seenDay[k] = true
			days = append(days, d)
		}
	}
	err := s.ensurePartitionsLocked(ctx, days)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// Fast path: COPY the status rows straight in. It fails with a unique
	// violation only when some result is already stored (a replay after a
	// crash or a retried batch); then the transaction is redone through a
	// staging table that keeps exactly the new results.
	err = s.tryWrite(ctx, pool, batch, true)
	if isUniqueViolation(err) {
		err = s.tryWrite(ctx, pool, batch, false)
	}
	if err != nil {
		if permanent(err) {
			return sink.Permanent(fmt.Errorf("postgres: %w", err))
		}
		return fmt.Errorf("postgres: %w", err)
	}
	s.maybePrune(ctx)
	return nil
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func (s *Store) tryWrite(ctx context.Context, pool *pgxpool.Pool, batch []model.Result, fast bool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := s.write(ctx, tx, batch, fast); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

type resKey struct {
	id uuid.UUID
	ts int64 // microseconds: what timestamptz keeps
}

func key(id uuid.UUID, t time.Time) resKey { return resKey{id, t.UnixMicro()} }

func (s *Store) write(ctx context.Context, tx pgx.Tx, batch []model.Result, fast bool) error {
	sch := pgx.Identifier{s.settings.Schema}.Sanitize()
	// Results of the same check and microsecond would collide on the key;
	// the first wins, as it would on replay.
	seen := map[resKey]bool{}
	rows := make([][]any, 0, len(batch))
	for i := range batch {
		r := &batch[i]
		k := key(r.CheckID, r.Time)
		if seen[k] {
			continue
		}
		seen[k] = true
		rows = append(rows, []any{r.CheckID, r.Time, int16(r.Status), int16(r.StateType), int32(r.Attempt), int64(r.Duration),
			clean(r.Output), clean(r.LongOutput)})
	}
	statusCols := []string{"check_id", "ts", "status", "state_type", "attempt", "duration_ns", "output", "long_output"}
	fresh := map[resKey]bool{}
	if fast {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.settings.Schema, "status"}, statusCols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy status: %w", err)
		}
		for k := range seen {
			fresh[k] = true
		}
	} else {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS recon_stage_status (LIKE `+sch+`.status) ON COMMIT DELETE ROWS`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"recon_stage_status"}, statusCols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy status: %w", err)
		}
		inserted, err := tx.Query(ctx, `INSERT INTO `+sch+`.status SELECT * FROM recon_stage_status ON CONFLICT DO NOTHING RETURNING check_id, ts`)
		if err != nil {
			return fmt.Errorf("insert status: %w", err)
		}
		for inserted.Next() {
			var id uuid.UUID
			var ts time.Time
			if err := inserted.Scan(&id, &ts); err != nil {
				inserted.Close()
				return err
			}
			fresh[key(id, ts)] = true
		}
		inserted.Close()
		if err := inserted.Err(); err != nil {
			return fmt.Errorf("insert status: %w", err)
		}
	}
	if err := s.upsertChecks(ctx, tx, sch, batch); err != nil {
		return err
	}
	if len(fresh) == 0 {
		return nil // all replays
	}
	var traps [][]any
	type numRow struct {
		id    uuid.UUID
		name  string
		ts    time.Time
		value float64
	}
	nums := make([]numRow, 0, len(batch)*4)
	type textRow struct {
		id    uuid.UUID
		name  string
		ts    time.Time
		value string
	}
	var texts []textRow
	rolls := map[rollKey]*agg{}
	for i := range batch {
		r := &batch[i]
		k := key(r.CheckID, r.Time)
		if !fresh[k] {
			continue
		}
		delete(fresh, k) // duplicates within the batch write once
		names := map[string]bool{}
		for j := range r.Metrics {
			m := &r.Metrics[j]
			name := clean(m.Name)
			if names[name] {
				continue // a metric name twice in one result: first wins
			}
			names[name] = true
			if m.Value.Kind() == model.KindString {
				texts = append(texts, textRow{r.CheckID, name, r.Time, clean(m.Value.Str())})
				continue
			}
			v, _ := m.Value.Float()
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			nums = append(nums, numRow{r.CheckID, name, r.Time, v})
			rk := rollKey{r.CheckID, name, r.Time.UTC().Truncate(5 * time.Minute)}
			if a := rolls[rk]; a == nil {
				rolls[rk] = &agg{count: 1, min: v, max: v, sum: v}
			} else {
				a.count++
				a.min, a.max, a.sum = math.Min(a.min, v), math.Max(a.max, v), a.sum+v
			}
		}
		if r.Type == "snmptrap" {
			vb := map[string]any{}
			for _, m := range r.Metrics {
				if m.Value.Kind() == model.KindString {
					vb[m.Name] = clean(m.Value.Str())
				} else if f, _ := m.Value.Float(); !math.IsNaN(f) && !math.IsInf(f, 0) {
					vb[m.Name] = f
				}
			}
			b, _ := json.Marshal(vb)
			traps = append(traps, []any{r.CheckID, r.Time, clean(r.Target), clean(r.Tags["trap_oid"]), clean(r.Output), string(b)})
		}
	}
	if len(nums) > 0 {
		i := -1
		row := make([]any, 4)
		src := pgx.CopyFromFunc(func() ([]any, error) {
			i++
			if i >= len(nums) {
				return nil, nil
			}
			n := &nums[i]
			row[0], row[1], row[2], row[3] = n.id, n.name, n.ts, n.value
			return row, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.settings.Schema, "metric_numeric"}, []string{"check_id", "name", "ts", "value"}, src); err != nil {
			return fmt.Errorf("copy metrics: %w", err)
		}
	}
	if len(rolls) > 0 {
		// 5-minute deltas of exactly the inserted rows, folded into the
		// rollup tables by applyRollups.
		var pend [][]any
		for k, a := range rolls {
			pend = append(pend, []any{k.id, k.name, k.bucket, a.count, a.min, a.max, a.sum})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.settings.Schema, "rollup_pending"},
			[]string{"check_id", "name", "bucket", "count", "min", "max", "sum"}, pgx.CopyFromRows(pend)); err != nil {
			return fmt.Errorf("rollup deltas: %w", err)
		}
	}
	if len(texts) > 0 {
		sort.Slice(texts, func(i, j int) bool {
			a, b := texts[i], texts[j]
			if a.id != b.id {
				return bytes.Compare(a.id[:], b.id[:]) < 0
			}
			if a.name != b.name {
				return a.name < b.name
			}
			return a.ts.Before(b.ts)
		})
		var rows [][]any
		for i, t := range texts {
			var prev *string
			if i > 0 && texts[i-1].id == t.id && texts[i-1].name == t.name {
				prev = &texts[i-1].value
			} else {
				var p string
				err := tx.QueryRow(ctx, `SELECT value FROM `+sch+`.metric_text WHERE check_id = $1 AND name = $2 AND ts < $3 ORDER BY ts DESC LIMIT 1`,
					t.id, t.name, t.ts).Scan(&p)
				if err == nil {
					prev = &p
				} else if err != pgx.ErrNoRows {
					return fmt.Errorf("previous text value: %w", err)
				}
			}
			if prev != nil && *prev == t.value {
				continue
			}
			rows = append(rows, []any{t.id, t.name, t.ts, t.value})
		}
		if len(rows) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.settings.Schema, "metric_text"}, []string{"check_id", "name", "ts", "value"},
				pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("copy text metrics: %w", err)
			}
		}
	}
	if len(traps) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.settings.Schema, "trap"}, []string{"check_id", "ts", "source", "trap_oid", "name", "varbinds"},
			pgx.CopyFromRows(traps)); err != nil {
			return fmt.Errorf("copy traps: %w", err)
		}
	}
	return nil
}

func (s *Store) upsertChecks(ctx context.Context, tx pgx.Tx, sch string, batch []model.Result) error {
	latest := map[uuid.UUID]*model.Result{}
	first := map[uuid.UUID]time.Time{}
	for i := range batch {
		r := &batch[i]
		if l, ok := latest[r.CheckID]; !ok || r.Time.After(l.Time) {
			latest[r.CheckID] = r
		}
		if f, ok := first[r.CheckID]; !ok || r.Time.Before(f) {
			first[r.CheckID] = r.Time
		}
	}
	ids := make([]uuid.UUID, 0, len(latest))
	for id := range latest {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	var names, agents, types, targets, tags, outputs []string
	var firsts, lasts []time.Time
	var sts, stts []int16
	for _, id := range ids {
		r := latest[id]
		tb, _ := json.Marshal(r.Tags)
		if r.Tags == nil {
			tb = []byte("{}")
		}
		names, agents, types, targets = append(names, clean(r.Check)), append(agents, clean(r.Agent)), append(types, r.Type), append(targets, clean(r.Target))
		tags, outputs = append(tags, clean(string(tb))), append(outputs, clean(r.Output))
		firsts, lasts = append(firsts, first[id]), append(lasts, r.Time)
		sts, stts = append(sts, int16(r.Status)), append(stts, int16(r.StateType))
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+sch+`."check" AS c (id, name, agent, type, target, tags, first_seen, last_seen, last_status, last_state_type, last_output)
		SELECT id, name, agent, type, target, tags::jsonb, f, l, st, stt, o FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::timestamptz[], $8::timestamptz[], $9::int2[], $10::int2[], $11::text[]) AS x(id, name, agent, type, target, tags, f, l, st, stt, o)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, agent = excluded.agent, type = excluded.type, target = excluded.target,
			tags = excluded.tags, first_seen = least(c.first_seen, excluded.first_seen),
			last_status = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.last_status ELSE c.last_status END,
			last_state_type = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.last_state_type ELSE c.last_state_type END,
			last_output = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.last_output ELSE c.last_output END,
			last_seen = greatest(c.last_seen, excluded.last_seen)`,
		ids, names, agents, types, targets, tags, firsts, lasts, sts, stts, outputs)
	if err != nil {
		return fmt.Errorf("upsert checks: %w", err)
	}
	return nil
}

// maybePrune drops day partitions older than the retention, at most hourly
// and only when a retention is configured: by default nothing is deleted.
func (s *Store) maybePrune(ctx context.Context) {
	if s.settings.Retention <= 0 {
		return
	}
	s.mu.Lock()
	if time.Since(s.lastPrune) < time.Hour {
		s.mu.Unlock()
		return
	}
	s.lastPrune = time.Now()
	pool := s.pool
	s.mu.Unlock()
	if err := s.prune(ctx, pool, time.Now().Add(-s.settings.Retention.D())); err != nil {
		s.log.Warn("retention: prune failed", "err", err)
	}
}
