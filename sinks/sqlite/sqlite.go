// Package sqlite is the embedded default trend store (modernc.org/sqlite,
// no cgo): every result's status, every numeric metric at full resolution,
// text metrics on change, 5m/1h/1d rollups maintained incrementally, traps
// and alert transitions, in one file under data_dir. It implements both the
// sink (writes) and store.Store (queries).
//
// Durability: WAL mode with synchronous=FULL, so a batch the spool has
// handed over is on disk when WriteBatch returns (the spool only then
// deletes it). Writes are idempotent: the status row's primary key (check,
// time) gates the whole result, so a replayed batch leaves one copy and
// never counts twice in the rollups.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
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

// New validates settings; nothing is opened.
func (Type) New(spec *sink.Spec, env sink.Env) (sink.Sink, error) {
	st, _ := spec.Settings.(*Settings)
	if st == nil {
		st = &Settings{}
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
	return &Store{path: path, retention: st.Retention.D(), agent: env.Agent, log: log}, nil
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
	agent     string
	log       *slog.Logger

	mu        sync.Mutex // serialises writers (SQLite has one writer)
	db        *sql.DB
	lastPrune time.Time
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

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
	dsn := "file:" + s.path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	db.SetMaxOpenConns(4)
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

// Close closes the database.
func (s *Store) Close() error {
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil, errors.New("sqlite: not connected")
	}
	return s.db, nil
}

var rollups = []struct {
	table  string
	bucket int64
}{{"rollup_5m", int64(5 * time.Minute)}, {"rollup_1h", int64(time.Hour)}, {"rollup_1d", int64(24 * time.Hour)}}

// WriteBatch stores a batch in one transaction.
func (s *Store) WriteBatch(ctx context.Context, batch []model.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return errors.New("sqlite: not connected")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	st, err := prepare(ctx, tx)
	if err != nil {
		return err
	}
	defer st.close()
	for i := range batch {
		if err := st.write(ctx, &batch[i]); err != nil {
			return fmt.Errorf("sqlite: write %s: %w", batch[i].Check, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	if s.retention > 0 && time.Since(s.lastPrune) > time.Hour {
		s.lastPrune = time.Now()
		if err := s.prune(ctx); err != nil {
			s.log.Warn("retention: prune failed", "err", err)
		}
	}
	return nil
}

type stmts struct {
	check, status, num, text, lastText, trap *sql.Stmt
	roll                                     []*sql.Stmt
}

func prepare(ctx context.Context, tx *sql.Tx) (*stmts, error) {
	var st stmts
	var err error
	p := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = tx.PrepareContext(ctx, q)
		return s
	}
	st.check = p(`INSERT INTO "check" (id, name, agent, type, target, tags, first_seen, last_seen, last_status, last_state_type, last_output)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, agent = excluded.agent, type = excluded.type, target = excluded.target,
		tags = excluded.tags,
		first_seen = min(first_seen, excluded.first_seen),
		last_status = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_status ELSE last_status END,
		last_state_type = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_state_type ELSE last_state_type END,
		last_output = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_output ELSE last_output END,
		last_seen = max(last_seen, excluded.last_seen)`)
	st.status = p(`INSERT OR IGNORE INTO status VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	st.num = p(`INSERT OR IGNORE INTO metric_numeric VALUES (?, ?, ?, ?)`)
	st.text = p(`INSERT OR IGNORE INTO metric_text VALUES (?, ?, ?, ?)`)
	st.lastText = p(`SELECT value FROM metric_text WHERE check_id = ? AND name = ? AND ts < ? ORDER BY ts DESC LIMIT 1`)
	st.trap = p(`INSERT OR IGNORE INTO trap VALUES (?, ?, ?, ?, ?, ?)`)
	for _, r := range rollups {
		st.roll = append(st.roll, p(`INSERT INTO `+r.table+` VALUES (?, ?, ?, 1, ?, ?, ?)
			ON CONFLICT (check_id, name, bucket) DO UPDATE SET count = count + 1,
			min = min(min, excluded.min), max = max(max, excluded.max), sum = sum + excluded.sum`))
	}
	if err != nil {
		st.close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	return &st, nil
}

func (st *stmts) close() {
	for _, s := range append([]*sql.Stmt{st.check, st.status, st.num, st.text, st.lastText, st.trap}, st.roll...) {
		if s != nil {
			s.Close()
		}
	}
}

// clean makes text storable: SQLite keeps NULs, but valid UTF-8 keeps
// every consumer (JSON, the UI) working.
func clean(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func (st *stmts) write(ctx context.Context, r *model.Result) error {
	id := r.CheckID.String()
	ts := r.Time.UnixNano()
	tags, _ := json.Marshal(r.Tags)
	if r.Tags == nil {
		tags = []byte("{}")
	}
	if _, err := st.check.ExecContext(ctx, id, clean(r.Check), clean(r.Agent), r.Type, clean(r.Target), string(tags), ts, ts,
		int(r.Status), int(r.StateType), clean(r.Output)); err != nil {
		return err
	}
	res, err := st.status.ExecContext(ctx, id, ts, int(r.Status), int(r.StateType), r.Attempt, int64(r.Duration), clean(r.Output), clean(r.LongOutput))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // already stored: a replay
	}
	for i := range r.Metrics {
		m := &r.Metrics[i]
		name := clean(m.Name)
		if m.Value.Kind() == model.KindString {
			v := clean(m.Value.Str())
			var prev string
			err := st.lastText.QueryRowContext(ctx, id, name, ts).Scan(&prev)
			if err == nil && prev == v {
				continue // unchanged: text metrics are stored on change
			}
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if _, err := st.text.ExecContext(ctx, id, name, ts, v); err != nil {
				return err
			}
			continue
		}
		v, _ := m.Value.Float()
		if math.IsNaN(v) || math.IsInf(v, 0) {
			// Not representable as a point; the result's status row
			// still records the run.
			continue
		}
		res, err := st.num.ExecContext(ctx, id, name, ts, v)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		for j, ro := range rollups {
			bucket := ts - ((ts%ro.bucket)+ro.bucket)%ro.bucket
			if _, err := st.roll[j].ExecContext(ctx, id, name, bucket, v, v, v); err != nil {
				return err
			}
		}
	}
	if r.Type == "snmptrap" {
		vb := map[string]any{}
		for _, m := range r.Metrics {
			if m.Value.Kind() == model.KindString {
				vb[m.Name] = m.Value.Str()
			} else {
				f, _ := m.Value.Float()
				vb[m.Name] = f
			}
		}
		b, _ := json.Marshal(vb)
		if _, err := st.trap.ExecContext(ctx, id, ts, clean(r.Target), r.Tags["trap_oid"], clean(r.Output), string(b)); err != nil {
			return err
		}
	}
	return nil
}

// prune deletes data older than the retention (only when configured).
func (s *Store) prune(ctx context.Context) error {
	cut := time.Now().Add(-s.retention).UnixNano()
	for _, q := range []string{`DELETE FROM status WHERE ts < ?`, `DELETE FROM metric_numeric WHERE ts < ?`,
		`DELETE FROM metric_text WHERE ts < ?`, `DELETE FROM trap WHERE ts < ?`, `DELETE FROM alert WHERE ts < ?`,
		`DELETE FROM rollup_5m WHERE bucket < ?`, `DELETE FROM rollup_1h WHERE bucket < ?`, `DELETE FROM rollup_1d WHERE bucket < ?`} {
		if _, err := s.db.ExecContext(ctx, q, cut); err != nil {
			return err
		}
	}
	return nil
}
