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
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store/changepoint"
)

// clean makes text storable: Postgres text cannot hold NUL and must be
// valid UTF-8. The result is kept, with the offending bytes replaced.
func clean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// cleanJSON encodes m for a jsonb column. Keys and values are cleaned
// first: jsonb rejects the \u0000 escape encoding/json writes for NUL.
func cleanJSON[V any](m map[string]V, val func(V) V) string {
	if len(m) == 0 {
		return "{}"
	}
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[clean(k)] = val(v)
	}
	b, err := json.Marshal(c)
	if err != nil { // only non-finite floats, which callers never pass
		return "{}"
	}
	return string(b)
}

func cleanTags(m map[string]string) string { return cleanJSON(m, clean) }

// pgid is a check id as pgx encodes it in binary: uuid.UUID implements
// driver.Valuer, which pgx would call to get text and parse it again.
func pgid(id uuid.UUID) [16]byte { return id }

func pgids(ids []uuid.UUID) [][16]byte {
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

type resKey struct {
	id uuid.UUID
	ts int64 // microseconds: what timestamptz keeps
}

func key(id uuid.UUID, t time.Time) resKey { return resKey{id, t.UnixMicro()} }

func micro(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }

// prepared is a batch turned into rows once, whichever write path runs.
type prepared struct {
	status []prepResult // distinct (check, µs) keys, sorted by key
	// non-finite numeric values left out (logged, never silently)
	nonFinite     int
	nonFiniteName string
}

type prepResult struct {
	r     *model.Result
	id    [16]byte // r.CheckID as pgx encodes it natively
	k     resKey
	ts    time.Time // µs precision
	row   []any     // status row
	nums  []numRow
	texts []changepoint.Sample // by metric name: names[i] ↔ texts[i]
	tname []string
	trap  []any
}

type numRow struct {
	name  string
	value float64
}

var statusCols = []string{"check_id", "ts", "status", "state_type", "attempt", "duration_ns", "output", "long_output"}

func prepare(batch []model.Result) *prepared {
	p := &prepared{status: make([]prepResult, 0, len(batch))}
	seen := make(map[resKey]bool, len(batch))
	for i := range batch {
		r := &batch[i]
		k := key(r.CheckID, r.Time)
		if seen[k] {
			continue // the same check and microsecond twice: the first wins, as on replay
		}
		seen[k] = true
		ts := micro(r.Time)
		pr := prepResult{r: r, id: pgid(r.CheckID), k: k, ts: ts,
			row: []any{pgid(r.CheckID), ts, int16(r.Status), int16(r.StateType), int32(r.Attempt), int64(r.Duration), clean(r.Output), clean(r.LongOutput)}}
		names := make(map[string]bool, len(r.Metrics))
		for j := range r.Metrics {
			m := &r.Metrics[j]
			name := clean(m.Name)
			if names[name] {
				continue // a metric name twice in one result: the first wins
			}
			names[name] = true
			if m.Value.Kind() == model.KindString {
				pr.texts = append(pr.texts, changepoint.Sample{Time: ts, Value: clean(m.Value.Str())})
				pr.tname = append(pr.tname, name)
				continue
			}
			v, _ := m.Value.Float()
			if math.IsNaN(v) || math.IsInf(v, 0) {
				p.nonFinite++
				p.nonFiniteName = r.Check + "/" + m.Name
				continue
			}
			pr.nums = append(pr.nums, numRow{name, v})
		}
		if r.Type == "snmptrap" {
			vb := map[string]any{}
			for _, m := range r.Metrics {
				if m.Value.Kind() == model.KindString {
					vb[clean(m.Name)] = clean(m.Value.Str())
				} else if f, _ := m.Value.Float(); !math.IsNaN(f) && !math.IsInf(f, 0) {
					vb[clean(m.Name)] = f
				}
			}
			b, _ := json.Marshal(vb)
			pr.trap = []any{pgid(r.CheckID), ts, clean(r.Target), clean(r.Tags["trap_oid"]), clean(r.Output), string(b)}
		}
		p.status = append(p.status, pr)
	}
	// One key order for every writer: two transactions inserting
	// overlapping keys wait for each other instead of deadlocking.
	sort.Slice(p.status, func(i, j int) bool {
		a, b := p.status[i].k, p.status[j].k
		if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
			return c < 0
		}
		return a.ts < b.ts
	})
	return p
}

// WriteBatch stores a batch in one transaction, idempotently:
//
//   - fast path: status, metric and trap rows are COPYed straight into
//     their tables. A result already stored (a replay after a crash, a
//     retried batch) makes the COPY fail on the status key, and the
//     transaction is redone on the staged path;
//   - staged path: rows are COPYed into temporary staging tables and moved
//     with INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING, so only
//     the results (and metric rows) actually inserted go further;
//
// and in both, the rollup buckets of exactly the rows inserted are marked
// for recomputation, text metrics are stored on change
// (package changepoint) and the check rows are upserted.
func (s *Store) WriteBatch(ctx context.Context, batch []model.Result) error {
	if len(batch) == 0 {
		return nil
	}
	pool, err := s.handle()
	if err != nil {
		return err
	}
	p := prepare(batch)
	if p.nonFinite > 0 {
		s.log.Warn("postgres: non-finite metric values (NaN, Inf) are not stored as points", "count", p.nonFinite, "example", p.nonFiniteName)
	}
	days := batchDays(batch)
	shards := p.split(s.settings.WriteConns)
	for attempt := 0; ; attempt++ {
		if err := s.ensurePartitions(ctx, days); err != nil {
			return err
		}
		err = s.writeShards(ctx, pool, shards)
		// A partition dropped behind our back (another agent's retention,
		// an operator): forget what we knew and create it again.
		if attempt == 0 && isCode(err, "23514") {
			s.forgetPartitions(days)
			continue
		}
		break
	}
	if err != nil {
		if permanent(err) {
			return sink.Permanent(fmt.Errorf("postgres: %w", err))
		}
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// batchDays lists the days present in the batch (not every day between
// its oldest and newest result: a straggler from years ago must not create
// thousands of empty partitions).
func batchDays(batch []model.Result) []time.Time {
	seen := map[time.Time]bool{}
	var days []time.Time
	for i := range batch {
		d := batch[i].Time.UTC()
		d = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
		if !seen[d] {
			seen[d] = true
			days = append(days, d)
		}
	}
	return days
}

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// minShard is the fewest results worth a transaction of their own: below
// it, a second commit costs more than the parallelism saves.
const minShard = 250

// split divides a large batch into at most n shards of whole checks
// (status is sorted by check id), written concurrently on n connections.
// One Postgres backend is single-threaded: at 10,000 results/s it is
// busy most of the time, and a burst of steal or a slow commit leaves it
// behind. Checks never straddle shards, so shards take no common row
// locks and text change points stay serialised per check.
func (p *prepared) split(n int) []*prepared {
	n = min(n, len(p.status)/minShard)
	if n <= 1 {
		return []*prepared{p}
	}
	out := make([]*prepared, 0, n)
	start := 0
	for i := 1; i <= n && start < len(p.status); i++ {
		end := len(p.status) * i / n
		for end < len(p.status) && end > start && p.status[end].k.id == p.status[end-1].k.id {
			end++
		}
		if end > start {
			out = append(out, &prepared{status: p.status[start:end]})
			start = end
		}
	}
	return out
}

// writeShards writes every shard, each in its own transaction, and
// returns their errors joined. A shard that committed before another
// failed is a replay when the core retries the batch: the staged path
// inserts nothing twice.
func (s *Store) writeShards(ctx context.Context, pool *pgxpool.Pool, shards []*prepared) error {
	if len(shards) == 1 {
		return s.writeShard(ctx, pool, shards[0])
	}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		wg.Go(func() { errs[i] = s.writeShard(ctx, pool, sh) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Store) writeShard(ctx context.Context, pool *pgxpool.Pool, p *prepared) error {
	err := s.tryWrite(ctx, pool, p, true)
	if isCode(err, "23505") {
		err = s.tryWrite(ctx, pool, p, false)
	}
	return err
}

func (s *Store) tryWrite(ctx context.Context, pool *pgxpool.Pool, p *prepared, fast bool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := s.write(ctx, tx, p, fast); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *Store) write(ctx context.Context, tx pgx.Tx, p *prepared, fast bool) error {
	sch := s.sch()
	var fresh []*prepResult
	if fast {
		i := -1
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.settings.Schema, "status"}, statusCols, pgx.CopyFromFunc(func() ([]any, error) {
			if i++; i < len(p.status) {
				return p.status[i].row, nil
			}
			return nil, nil
		})); err != nil {
			return fmt.Errorf("copy status: %w", err)
		}
		fresh = make([]*prepResult, len(p.status))
		for i := range p.status {
			fresh[i] = &p.status[i]
		}
	} else {
		byKey := make(map[resKey]*prepResult, len(p.status))
		rows := make([][]any, len(p.status))
		for i := range p.status {
			byKey[p.status[i].k] = &p.status[i]
			rows[i] = p.status[i].row
		}
		if err := stage(ctx, tx, "recon_stage_status", sch+".status", statusCols, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		inserted, err := tx.Query(ctx, `INSERT INTO `+sch+`.status SELECT * FROM recon_stage_status ORDER BY check_id, ts ON CONFLICT DO NOTHING RETURNING check_id, ts`)
		if err != nil {
			return fmt.Errorf("insert status: %w", err)
		}
		for inserted.Next() {
			var id [16]byte
			var ts time.Time
			if err := inserted.Scan(&id, &ts); err != nil {
				inserted.Close()
				return fmt.Errorf("insert status: %w", err)
			}
			if pr := byKey[key(id, ts)]; pr != nil {
				fresh = append(fresh, pr)
			}
		}
		inserted.Close()
		if err := inserted.Err(); err != nil {
			return fmt.Errorf("insert status: %w", err)
		}
	}
	// Upserting the check rows locks them until commit, which serialises
	// the writers of one check from here on (text change points need it).
	if err := s.upsertChecks(ctx, tx, sch, p); err != nil {
		return err
	}
	if len(fresh) == 0 {
		return nil // the whole batch was a replay
	}
	if err := s.writeNumeric(ctx, tx, fresh, fast); err != nil {
		return err
	}
	if err := s.writeTraps(ctx, tx, fresh, fast); err != nil {
		return err
	}
	return s.writeTexts(ctx, tx, fresh)
}

// stage creates (once per connection) a temporary staging table shaped
// like table and COPYs rows into it; ON COMMIT DELETE ROWS empties it.
func stage(ctx context.Context, tx pgx.Tx, name, like string, cols []string, rows pgx.CopyFromSource) error {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS `+name+` (LIKE `+like+`) ON COMMIT DELETE ROWS`); err != nil {
		return fmt.Errorf("staging table %s: %w", name, err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{name}, cols, rows); err != nil {
		return fmt.Errorf("copy into %s: %w", name, err)
	}
	return nil
}

var numCols = []string{"check_id", "name", "ts", "value"}

// writeNumeric stores the numeric metrics of fresh results and marks the
// 5-minute buckets of exactly the inserted rows for recomputation
// (rollups.go).
func (s *Store) writeNumeric(ctx context.Context, tx pgx.Tx, fresh []*prepResult, fast bool) error {
	i, j := 0, -1
	row := make([]any, 4)
	src := pgx.CopyFromFunc(func() ([]any, error) {
		for i < len(fresh) {
			if j++; j < len(fresh[i].nums) {
				n := &fresh[i].nums[j]
				row[0], row[1], row[2], row[3] = fresh[i].id, n.name, fresh[i].ts, n.value
				return row, nil
			}
			i, j = i+1, -1
		}
		return nil, nil
	})
	if !fast {
		// Only rows that do not exist yet mark their bucket.
		if err := stage(ctx, tx, "recon_stage_numeric", s.sch()+".metric_numeric", numCols, src); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `WITH ins AS (INSERT INTO `+s.sch()+`.metric_numeric SELECT * FROM recon_stage_numeric ON CONFLICT DO NOTHING RETURNING ts)
			INSERT INTO `+s.sch()+`.rollup_dirty (bucket) SELECT DISTINCT date_bin('5 minutes', ts, '2000-01-01 00:00:00+00') FROM ins`)
		if err != nil {
			return fmt.Errorf("insert metrics: %w", err)
		}
		return nil
	}
	var buckets []time.Time
	seen := map[time.Time]bool{}
	for _, pr := range fresh {
		if len(pr.nums) == 0 {
			continue
		}
		if b := pr.ts.Truncate(5 * time.Minute); !seen[b] {
			seen[b] = true
			buckets = append(buckets, b)
		}
	}
	if len(buckets) == 0 {
		return nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.settings.Schema, "metric_numeric"}, numCols, src); err != nil {
		return fmt.Errorf("copy metrics: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+s.sch()+`.rollup_dirty (bucket) SELECT unnest($1::timestamptz[])`, buckets); err != nil {
		return fmt.Errorf("rollup marks: %w", err)
	}
	return nil
}

var trapCols = []string{"check_id", "ts", "source", "trap_oid", "name", "varbinds"}

func (s *Store) writeTraps(ctx context.Context, tx pgx.Tx, fresh []*prepResult, fast bool) error {
	var rows [][]any
	for _, pr := range fresh {
		if pr.trap != nil {
			rows = append(rows, pr.trap)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if fast {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.settings.Schema, "trap"}, trapCols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy traps: %w", err)
		}
		return nil
	}
	if err := stage(ctx, tx, "recon_stage_trap", s.sch()+".trap", trapCols, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+s.sch()+`.trap SELECT * FROM recon_stage_trap ON CONFLICT DO NOTHING`); err != nil {
		return fmt.Errorf("insert traps: %w", err)
	}
	return nil
}

// writeTexts stores the change points of the fresh results' text metrics.
// The first question for every series (is the batch simply newer than
// everything stored?) is asked in one pipelined round trip; only late data
// needs more queries.
func (s *Store) writeTexts(ctx context.Context, tx pgx.Tx, fresh []*prepResult) error {
	type seriesKey struct {
		id   uuid.UUID
		name string
	}
	series := map[seriesKey][]changepoint.Sample{}
	batchTimes := map[uuid.UUID][]time.Time{}
	var order []seriesKey
	for _, pr := range fresh {
		batchTimes[pr.r.CheckID] = append(batchTimes[pr.r.CheckID], pr.ts)
		for i, x := range pr.texts {
			k := seriesKey{pr.r.CheckID, pr.tname[i]}
			if series[k] == nil {
				order = append(order, k)
			}
			series[k] = append(series[k], x)
		}
	}
	if len(order) == 0 {
		return nil
	}
	sch := s.sch()
	heads := &pgx.Batch{}
	for _, k := range order {
		xs := series[k]
		sort.Slice(xs, func(i, j int) bool { return xs[i].Time.Before(xs[j].Time) })
		heads.Queue(`SELECT (SELECT value FROM `+sch+`.metric_text WHERE check_id = $1 AND name = $2 AND ts < $3 ORDER BY ts DESC LIMIT 1),
			NOT EXISTS (SELECT 1 FROM `+sch+`.metric_text WHERE check_id = $1 AND name = $2 AND ts > $3)
			AND NOT EXISTS (SELECT 1 FROM `+sch+`.status WHERE check_id = $1 AND ts > $3 AND ts <> ALL($4))`,
			pgid(k.id), k.name, xs[0].Time, batchTimes[k.id])
	}
	type head struct {
		prev  *string
		clear bool
	}
	res := make([]head, len(order))
	br := tx.SendBatch(ctx, heads)
	for i := range order {
		if err := br.QueryRow().Scan(&res[i].prev, &res[i].clear); err != nil {
			br.Close()
			return fmt.Errorf("text metrics: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("text metrics: %w", err)
	}
	w := &textWriter{tx: tx, sch: sch}
	for i, k := range order {
		ts := &textSeries{w: w, id: k.id, name: k.name, head: res[i].prev, clear: res[i].clear, batch: batchTimes[k.id]}
		if err := changepoint.Write(ctx, ts, series[k]); err != nil {
			return fmt.Errorf("text metric %s: %w", k.name, err)
		}
	}
	return w.flush(ctx)
}

// textWriter buffers text points and inserts them together; a query of
// the late-data path flushes first, so it sees what was written before.
type textWriter struct {
	tx    pgx.Tx
	sch   string
	ids   [][16]byte
	names []string
	times []time.Time
	vals  []string
}

func (w *textWriter) flush(ctx context.Context) error {
	if len(w.ids) == 0 {
		return nil
	}
	_, err := w.tx.Exec(ctx, `INSERT INTO `+w.sch+`.metric_text (check_id, name, ts, value)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[]) ON CONFLICT DO NOTHING`, w.ids, w.names, w.times, w.vals)
	if err != nil {
		return fmt.Errorf("insert text metrics: %w", err)
	}
	w.ids, w.names, w.times, w.vals = w.ids[:0], w.names[:0], w.times[:0], w.vals[:0]
	return nil
}

// textSeries is one series for changepoint.Write.
type textSeries struct {
	w     *textWriter
	id    uuid.UUID
	name  string
	head  *string
	clear bool
	batch []time.Time
}

func (t *textSeries) Head(context.Context, time.Time) (*string, bool, error) {
	return t.head, t.clear, nil
}

func (t *textSeries) Around(ctx context.Context, at time.Time) (*string, time.Time, error) {
	if err := t.w.flush(ctx); err != nil {
		return nil, time.Time{}, err
	}
	var prev *string
	var next *time.Time
	err := t.w.tx.QueryRow(ctx, `SELECT (SELECT value FROM `+t.w.sch+`.metric_text WHERE check_id = $1 AND name = $2 AND ts < $3 ORDER BY ts DESC LIMIT 1),
		(SELECT min(ts) FROM `+t.w.sch+`.metric_text WHERE check_id = $1 AND name = $2 AND ts > $3)`, pgid(t.id), t.name, at).Scan(&prev, &next)
	if err != nil || next == nil {
		return prev, time.Time{}, err
	}
	return prev, *next, nil
}

func (t *textSeries) OtherResult(ctx context.Context, after, before time.Time) (time.Time, error) {
	var r *time.Time
	err := t.w.tx.QueryRow(ctx, `SELECT min(ts) FROM `+t.w.sch+`.status WHERE check_id = $1 AND ts > $2
		AND ($3::timestamptz IS NULL OR ts < $3) AND ts <> ALL($4)`, pgid(t.id), after, nullTime(before), t.batch).Scan(&r)
	if err != nil || r == nil {
		return time.Time{}, err
	}
	return *r, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (t *textSeries) Insert(_ context.Context, at time.Time, v string) error {
	w := t.w
	w.ids, w.names, w.times, w.vals = append(w.ids, pgid(t.id)), append(w.names, t.name), append(w.times, at), append(w.vals, v)
	return nil
}

// upsertChecks records every check of the batch with its newest result.
func (s *Store) upsertChecks(ctx context.Context, tx pgx.Tx, sch string, p *prepared) error {
	var ids []uuid.UUID
	latest := map[uuid.UUID]*prepResult{}
	first := map[uuid.UUID]time.Time{}
	for i := range p.status { // sorted by check id: rows are locked in one order
		pr := &p.status[i]
		id := pr.r.CheckID
		if l, ok := latest[id]; !ok {
			ids = append(ids, id)
			latest[id], first[id] = pr, pr.ts
		} else if pr.ts.After(l.ts) {
			latest[id] = pr
		}
	}
	n := len(ids)
	names, agents, types, targets, tags, outputs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	firsts, lasts := make([]time.Time, n), make([]time.Time, n)
	sts, stts := make([]int16, n), make([]int16, n)
	for i, id := range ids {
		pr := latest[id]
		r := pr.r
		names[i], agents[i], types[i], targets[i] = clean(r.Check), clean(r.Agent), clean(r.Type), clean(r.Target)
		tags[i], outputs[i] = cleanTags(r.Tags), clean(r.Output)
		firsts[i], lasts[i] = first[id], pr.ts
		sts[i], stts[i] = int16(r.Status), int16(r.StateType)
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+sch+`."check" AS c (id, name, agent, type, target, tags, first_seen, last_seen, last_status, last_state_type, last_output)
		SELECT id, name, agent, type, target, tags::jsonb, f, l, st, stt, o FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::timestamptz[], $8::timestamptz[], $9::int2[], $10::int2[], $11::text[]) AS x(id, name, agent, type, target, tags, f, l, st, stt, o)
		ON CONFLICT (id) DO UPDATE SET
			name = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.name ELSE c.name END,
			agent = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.agent ELSE c.agent END,
			type = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.type ELSE c.type END,
			target = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.target ELSE c.target END,
			tags = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.tags ELSE c.tags END,
			last_status = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.last_status ELSE c.last_status END,
			last_state_type = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.last_state_type ELSE c.last_state_type END,
			last_output = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.last_output ELSE c.last_output END,
			first_seen = least(c.first_seen, excluded.first_seen),
			last_seen = greatest(c.last_seen, excluded.last_seen)`,
		pgids(ids), names, agents, types, targets, tags, firsts, lasts, sts, stts, outputs)
	if err != nil {
		return fmt.Errorf("upsert checks: %w", err)
	}
	return nil
}
