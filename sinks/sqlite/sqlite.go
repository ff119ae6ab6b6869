// Package sqlite is the embedded default trend store (modernc.org/sqlite,
// no cgo): every result's status, every numeric metric at full resolution,
// text metrics on change, 5m/1h/1d rollups maintained incrementally, traps
// and alert transitions, in one file under data_dir. It implements both the
// sink (writes) and store.Store (queries).
//
// Durability: WAL mode with synchronous=FULL. The pipeline deletes a batch
// from the sink's spool as soon as WriteBatch returns, so the commit must
// be on disk by then: with synchronous=NORMAL a power loss may roll back
// the last commits of a WAL database, and those results would exist
// nowhere. FULL costs one fsync of the WAL per batch, which batching makes
// cheap. busy_timeout lets another process (sqlite3 on the file, a backup)
// hold a lock briefly without failing a write.
//
// Idempotency: the status row's primary key (check, time) gates the whole
// result, so a replayed batch leaves one copy; rollups are aggregated from
// the metric rows actually inserted (INSERT OR IGNORE + changes()), so a
// replay never counts twice.
//
// Retention (only when configured) deletes raw rows (status, metrics,
// traps); rollups and alerts are kept for long-range graphs.
//
// Concurrency: one writer at a time (SQLite has one), readers in parallel
// with it (WAL): the API never waits for a batch to commit.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store/changepoint"
)

// Settings are the keys of a sink with type = "sqlite".
type Settings struct {
	// Path of the database file (default recon.db in data_dir; relative paths are relative to data_dir).
	Path string `toml:"path"`
	// Retention deletes data older than this (default 0: keep everything forever).
	Retention config.Duration `toml:"retention"`
}

// Type is the sqlite sink type.
type Type struct{}

func (Type) NewSettings() any { return &Settings{} }

// New resolves the path; nothing is opened.
func (Type) New(spec *sink.Spec, env sink.Env) (sink.Sink, error) {
	st, _ := spec.Settings.(*Settings)
	if st == nil {
		st = &Settings{}
	}
	if st.Retention < 0 {
		return nil, fmt.Errorf("retention %s: must not be negative", st.Retention.D())
	}
	path := st.Path
	if path == "" {
		path = "recon.db"
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(env.DataDir, path)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Store{path: path, retention: st.Retention.D(), log: log}, nil
}

// Open opens (creating and migrating) a store directly, for tools and tests.
func Open(ctx context.Context, path string) (*Store, error) {
	s := &Store{path: path, log: slog.Default()}
	if err := s.Connect(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Store is the SQLite trend store.
type Store struct {
	path      string
	retention time.Duration
	log       *slog.Logger

	wmu       sync.Mutex // one writer at a time; readers never take it
	lastPrune time.Time  // under wmu

	mu sync.RWMutex // guards db
	db *sql.DB
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// dsn builds the driver's connection string; the path is escaped so that
// '?' or '#' in a directory name cannot be read as parameters.
func dsn(path string) string {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "cache_size(-16384)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	// Writers take the lock up front (no upgrade deadlocks); a page cache
	// of 16 MiB keeps a batch's index pages in memory instead of spilling
	// them to the WAL mid-transaction.
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Connect opens the database and applies migrations.
func (s *Store) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o750); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(s.path))
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	// A few connections: one writer and concurrent readers (API, UI);
	// each may cache up to 16 MiB of pages (cache_size), filled only as
	// queries touch them.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return fmt.Errorf("sqlite: %s: %w", s.path, err)
	}
	s.db = db
	return nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var v int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this recon (%d): upgrade recon", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
		return err
	}
	return tx.Commit()
}

// Close closes the database (after the write in progress, if any).
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

func (s *Store) handle() (*sql.DB, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, errors.New("sqlite: not connected")
	}
	return s.db, nil
}

var rollups = []struct {
	table  string
	bucket int64
}{{"rollup_5m", int64(5 * time.Minute)}, {"rollup_1h", int64(time.Hour)}, {"rollup_1d", int64(24 * time.Hour)}}

// floorTo is the start of the bucket holding ts (also before 1970).
func floorTo(ts, bucket int64) int64 { return ts - ((ts%bucket)+bucket)%bucket }

// clean makes text storable and readable everywhere: NUL bytes (which C
// tools such as sqlite3 treat as the end of a string) and invalid UTF-8
// become U+FFFD, as in the Postgres store. The result is kept.
func clean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func cleanTags(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[clean(k)] = clean(v)
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// WriteBatch stores a batch in one transaction.
func (s *Store) WriteBatch(ctx context.Context, batch []model.Result) error {
	if len(batch) == 0 {
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
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	w, err := newWriter(ctx, tx)
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.write(ctx, batch); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	if w.nonFinite > 0 {
		s.log.Warn("sqlite: non-finite metric values (NaN, Inf) are not stored as points", "count", w.nonFinite, "example", w.nonFiniteName)
	}
	if s.retention > 0 && time.Since(s.lastPrune) > time.Hour {
		s.lastPrune = time.Now()
		if err := s.prune(ctx, db, time.Now().Add(-s.retention)); err != nil {
			s.log.Warn("sqlite: retention: prune failed; will retry", "err", err)
			s.lastPrune = time.Time{}
		}
	}
	return nil
}

type writer struct {
	tx                                       *sql.Tx
	check, status, num, text, trap, lastText *sql.Stmt
	nextText, otherResult                    *sql.Stmt
	roll                                     []*sql.Stmt
	nonFinite                                int
	nonFiniteName                            string
}

func newWriter(ctx context.Context, tx *sql.Tx) (*writer, error) {
	w := &writer{tx: tx}
	var err error
	p := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = tx.PrepareContext(ctx, q)
		return st
	}
	w.check = p(`INSERT INTO "check" (id, name, agent, type, target, tags, first_seen, last_seen, last_status, last_state_type, last_output)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
		name = CASE WHEN excluded.last_seen >= last_seen THEN excluded.name ELSE name END,
		agent = CASE WHEN excluded.last_seen >= last_seen THEN excluded.agent ELSE agent END,
		type = CASE WHEN excluded.last_seen >= last_seen THEN excluded.type ELSE type END,
		target = CASE WHEN excluded.last_seen >= last_seen THEN excluded.target ELSE target END,
		tags = CASE WHEN excluded.last_seen >= last_seen THEN excluded.tags ELSE tags END,
		last_status = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_status ELSE last_status END,
		last_state_type = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_state_type ELSE last_state_type END,
		last_output = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_output ELSE last_output END,
		first_seen = min(first_seen, excluded.first_seen),
		last_seen = max(last_seen, excluded.last_seen)`)
	w.status = p(`INSERT OR IGNORE INTO status VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	w.num = p(`INSERT OR IGNORE INTO metric_numeric VALUES (?, ?, ?, ?)`)
	w.text = p(`INSERT OR IGNORE INTO metric_text VALUES (?, ?, ?, ?)`)
	w.lastText = p(`SELECT value FROM metric_text WHERE check_id = ? AND name = ? AND ts < ? ORDER BY ts DESC LIMIT 1`)
	w.nextText = p(`SELECT min(ts) FROM metric_text WHERE check_id = ? AND name = ? AND ts > ?`)
	w.otherResult = p(`SELECT ts FROM status WHERE check_id = ? AND ts > ? AND ts < ? ORDER BY ts`)
	w.trap = p(`INSERT OR IGNORE INTO trap VALUES (?, ?, ?, ?, ?, ?)`)
	for _, r := range rollups {
		w.roll = append(w.roll, p(`INSERT INTO `+r.table+` VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (check_id, name, bucket) DO UPDATE SET count = count + excluded.count,
			min = min(min, excluded.min), max = max(max, excluded.max), sum = sum + excluded.sum`))
	}
	if err != nil {
		w.close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	return w, nil
}

func (w *writer) close() {
	for _, st := range append([]*sql.Stmt{w.check, w.status, w.num, w.text, w.lastText, w.nextText, w.otherResult, w.trap}, w.roll...) {
		if st != nil {
			st.Close()
		}
	}
}

type rollKey struct {
	id     string
	name   string
	bucket int64 // 5-minute bucket start, ns
}

type agg struct {
	count         int64
	min, max, sum float64
}

type seriesKey struct{ id, name string }

func (w *writer) write(ctx context.Context, batch []model.Result) error {
	rolls := map[rollKey]*agg{}
	texts := map[seriesKey][]changepoint.Sample{}
	fresh := map[string]map[int64]bool{} // check → times of results inserted by this batch
	latest := map[uuid.UUID]*model.Result{}
	first := map[uuid.UUID]int64{}
	for i := range batch {
		r := &batch[i]
		id := r.CheckID.String()
		ts := r.Time.UnixNano()
		if l, ok := latest[r.CheckID]; !ok || r.Time.After(l.Time) {
			latest[r.CheckID] = r
		}
		if f, ok := first[r.CheckID]; !ok || ts < f {
			first[r.CheckID] = ts
		}
		res, err := w.status.ExecContext(ctx, id, ts, int(r.Status), int(r.StateType), r.Attempt, int64(r.Duration), clean(r.Output), clean(r.LongOutput))
		if err != nil {
			return fmt.Errorf("status of %s: %w", r.Check, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // already stored: a replay (or the same key twice in the batch)
		}
		if fresh[id] == nil {
			fresh[id] = map[int64]bool{}
		}
		fresh[id][ts] = true
		names := make(map[string]bool, len(r.Metrics))
		for j := range r.Metrics {
			m := &r.Metrics[j]
			name := clean(m.Name)
			if names[name] {
				continue // a metric name twice in one result: the first wins
			}
			names[name] = true
			if m.Value.Kind() == model.KindString {
				k := seriesKey{id, name}
				texts[k] = append(texts[k], changepoint.Sample{Time: r.Time, Value: clean(m.Value.Str())})
				continue
			}
			v, _ := m.Value.Float()
			if math.IsNaN(v) || math.IsInf(v, 0) {
				w.nonFinite++
				w.nonFiniteName = r.Check + "/" + m.Name
				continue
			}
			res, err := w.num.ExecContext(ctx, id, name, ts, v)
			if err != nil {
				return fmt.Errorf("metric %s of %s: %w", name, r.Check, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // the row existed: it is in the rollups already
			}
			rk := rollKey{id, name, floorTo(ts, rollups[0].bucket)}
			if a := rolls[rk]; a == nil {
				rolls[rk] = &agg{count: 1, min: v, max: v, sum: v}
			} else {
				a.count++
				a.min, a.max, a.sum = math.Min(a.min, v), math.Max(a.max, v), a.sum+v
			}
		}
		if r.Type == "snmptrap" {
			if err := w.writeTrap(ctx, r); err != nil {
				return err
			}
		}
	}
	for id, r := range latest {
		if _, err := w.check.ExecContext(ctx, id.String(), clean(r.Check), clean(r.Agent), clean(r.Type), clean(r.Target), cleanTags(r.Tags),
			first[id], r.Time.UnixNano(), int(r.Status), int(r.StateType), clean(r.Output)); err != nil {
			return fmt.Errorf("check %s: %w", r.Check, err)
		}
	}
	if err := w.writeRollups(ctx, rolls); err != nil {
		return err
	}
	for k, xs := range texts {
		sort.Slice(xs, func(i, j int) bool { return xs[i].Time.Before(xs[j].Time) })
		if err := changepoint.Write(ctx, &textSeries{w: w, key: k, batch: fresh[k.id]}, xs); err != nil {
			return fmt.Errorf("text metric %s: %w", k.name, err)
		}
	}
	return nil
}

// writeRollups adds the batch's 5-minute aggregates to all three rollup
// tables (1h and 1d fold the 5-minute ones).
func (w *writer) writeRollups(ctx context.Context, rolls map[rollKey]*agg) error {
	for j, ro := range rollups {
		level := rolls
		if j > 0 {
			level = map[rollKey]*agg{}
			for k, a := range rolls {
				k.bucket = floorTo(k.bucket, ro.bucket)
				if b := level[k]; b == nil {
					c := *a
					level[k] = &c
				} else {
					b.count += a.count
					b.min, b.max, b.sum = math.Min(b.min, a.min), math.Max(b.max, a.max), b.sum+a.sum
				}
			}
		}
		for k, a := range level {
			if _, err := w.roll[j].ExecContext(ctx, k.id, k.name, k.bucket, a.count, a.min, a.max, a.sum); err != nil {
				return fmt.Errorf("%s: %w", ro.table, err)
			}
		}
	}
	return nil
}

func (w *writer) writeTrap(ctx context.Context, r *model.Result) error {
	vb := map[string]any{}
	for _, m := range r.Metrics {
		if m.Value.Kind() == model.KindString {
			vb[clean(m.Name)] = clean(m.Value.Str())
		} else if f, _ := m.Value.Float(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			vb[clean(m.Name)] = f
		}
	}
	b, _ := json.Marshal(vb)
	if _, err := w.trap.ExecContext(ctx, r.CheckID.String(), r.Time.UnixNano(), clean(r.Target), clean(r.Tags["trap_oid"]), clean(r.Output), string(b)); err != nil {
		return fmt.Errorf("trap: %w", err)
	}
	return nil
}

// textSeries is one series for changepoint.Write; SQLite's single writer
// serialises everything.
type textSeries struct {
	w     *writer
	key   seriesKey
	batch map[int64]bool
}

func (t *textSeries) Head(ctx context.Context, at time.Time) (*string, bool, error) {
	prev, next, err := t.Around(ctx, at)
	if err != nil || !next.IsZero() {
		return prev, false, err
	}
	other, err := t.OtherResult(ctx, at, time.Time{})
	return prev, other.IsZero(), err
}

func (t *textSeries) Around(ctx context.Context, at time.Time) (*string, time.Time, error) {
	var prev *string
	var p string
	switch err := t.w.lastText.QueryRowContext(ctx, t.key.id, t.key.name, at.UnixNano()).Scan(&p); {
	case err == nil:
		prev = &p
	case !errors.Is(err, sql.ErrNoRows):
		return nil, time.Time{}, err
	}
	var next sql.NullInt64
	if err := t.w.nextText.QueryRowContext(ctx, t.key.id, t.key.name, at.UnixNano()).Scan(&next); err != nil {
		return nil, time.Time{}, err
	}
	if !next.Valid {
		return prev, time.Time{}, nil
	}
	return prev, time.Unix(0, next.Int64), nil
}

func (t *textSeries) OtherResult(ctx context.Context, after, before time.Time) (time.Time, error) {
	hi := int64(math.MaxInt64)
	if !before.IsZero() {
		hi = before.UnixNano()
	}
	rows, err := t.w.otherResult.QueryContext(ctx, t.key.id, after.UnixNano(), hi)
	if err != nil {
		return time.Time{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var ts int64
		if err := rows.Scan(&ts); err != nil {
			return time.Time{}, err
		}
		if !t.batch[ts] {
			return time.Unix(0, ts), nil
		}
	}
	return time.Time{}, rows.Err()
}

func (t *textSeries) Insert(ctx context.Context, at time.Time, v string) error {
	_, err := t.w.text.ExecContext(ctx, t.key.id, t.key.name, at.UnixNano(), v)
	return err
}

// prune deletes raw rows older than cut, a day per transaction so that a
// first prune of a large file does not block writers for long. Rollups
// and alert transitions are kept.
func (s *Store) prune(ctx context.Context, db *sql.DB, cut time.Time) error {
	var oldest sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT min(ts) FROM status`).Scan(&oldest); err != nil {
		return err
	}
	if !oldest.Valid {
		return nil
	}
	end := cut.UnixNano()
	deleted := int64(0)
	for step := oldest.Int64 + int64(24*time.Hour); ; step += int64(24 * time.Hour) {
		hi := min(step, end)
		for _, t := range []string{"status", "metric_numeric", "metric_text", "trap"} {
			res, err := db.ExecContext(ctx, `DELETE FROM `+t+` WHERE ts < ?`, hi)
			if err != nil {
				return fmt.Errorf("delete from %s: %w", t, err)
			}
			n, _ := res.RowsAffected()
			deleted += n
		}
		if hi == end {
			break
		}
	}
	if deleted > 0 {
		s.log.Info("sqlite: retention: deleted old raw rows", "rows", deleted, "before", cut)
	}
	return nil
}
