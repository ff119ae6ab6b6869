// Package postgres is the Postgres trend store (pgx/v5): schema `recon`
// created and migrated by recon (safe with several agents starting at
// once), day partitions created ahead and on demand, bulk writes with COPY,
// idempotent on (check, time) so a replay after a crash leaves exactly one
// copy, rollups (5m/1h/1d) maintained from the rows actually inserted, and
// raw data kept forever unless a retention is configured.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/sink"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Settings are the keys of a sink with type = "postgres".
type Settings struct {
	// DSN is a libpq connection string or URL; use ${ENV} for the password.
	DSN string `toml:"dsn"`
	// Schema holds recon's tables (default recon).
	Schema string `toml:"schema"`
	// PartitionAhead is how many daily partitions are created in advance (default 7).
	PartitionAhead int `toml:"partition_ahead"`
	// Retention drops whole day partitions older than this (default 0: keep everything forever).
	Retention config.Duration `toml:"retention"`
	// MaxConns bounds the connection pool (default 4).
	MaxConns int32 `toml:"max_conns"`
	// WriteConns is how many transactions write one large batch at once,
	// split by check (default 2; at most max_conns - 1).
	WriteConns int `toml:"write_conns"`
}

// Type is the postgres sink type.
type Type struct{}

func (Type) NewSettings() any { return &Settings{} }

// New validates settings; nothing is opened.
func (Type) New(spec *sink.Spec, env sink.Env) (sink.Sink, error) {
	st, _ := spec.Settings.(*Settings)
	if st == nil || st.DSN == "" {
		return nil, errors.New("dsn is required")
	}
	if _, err := pgxpool.ParseConfig(st.DSN); err != nil {
		return nil, fmt.Errorf("dsn: %v", redactErr(err))
	}
	s := *st
	if s.Schema == "" {
		s.Schema = "recon"
	}
	if !validIdent(s.Schema) {
		return nil, fmt.Errorf("schema %q: letters, digits and _ only", s.Schema)
	}
	if s.PartitionAhead <= 0 {
		s.PartitionAhead = 7
	}
	if s.MaxConns <= 0 {
		s.MaxConns = 4
	}
	if s.WriteConns <= 0 {
		s.WriteConns = 2
	}
	// One connection stays free for the rollup applier and reads.
	if int32(s.WriteConns) > s.MaxConns-1 {
		if st.WriteConns > 0 {
			return nil, fmt.Errorf("write_conns %d: at most max_conns - 1 (%d)", s.WriteConns, s.MaxConns-1)
		}
		s.WriteConns = max(1, int(s.MaxConns-1))
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Store{settings: s, log: log, parts: map[string]bool{}}, nil
}

// Open connects a store directly (recon ingest, tools, tests).
func Open(ctx context.Context, st Settings, log *slog.Logger) (*Store, error) {
	s, err := Type{}.New(&sink.Spec{Settings: &st}, sink.Env{Logger: log})
	if err != nil {
		return nil, err
	}
	if err := s.Connect(ctx); err != nil {
		return nil, err
	}
	return s.(*Store), nil
}

func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || (i > 0 && r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

// redactErr hides a password pgx may echo from a malformed DSN.
func redactErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "password="); i >= 0 {
		end := strings.IndexAny(s[i:], " \"'")
		if end < 0 {
			end = len(s) - i
		}
		s = s[:i] + "password=xxxxx" + s[i+end:]
	}
	return s
}

// Store is the Postgres trend store.
type Store struct {
	settings Settings
	log      *slog.Logger

	mu       sync.Mutex
	pool     *pgxpool.Pool
	parts    map[string]bool // days whose partitions are known to exist
	stopRoll context.CancelFunc
	rollDone chan struct{}
}

// Connect opens the pool and migrates the schema.
func (s *Store) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pool != nil {
		return nil
	}
	cfg, err := pgxpool.ParseConfig(s.settings.DSN)
	if err != nil {
		return fmt.Errorf("postgres: dsn: %v", redactErr(err))
	}
	cfg.MaxConns = s.settings.MaxConns
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	cfg.ConnConfig.RuntimeParams["application_name"] = "recon"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pool.Ping(cctx); err != nil {
		pool.Close()
		return fmt.Errorf("postgres: connect: %w", err)
	}
	if err := s.migrate(cctx, pool); err != nil {
		pool.Close()
		return err
	}
	now := time.Now().UTC()
	if err := s.createPartitions(cctx, pool, dayRange(now.AddDate(0, 0, -1), now.AddDate(0, 0, s.settings.PartitionAhead))); err != nil {
		pool.Close()
		return err
	}
	s.pool = pool
	s.parts = map[string]bool{}
	for _, d := range dayRange(now.AddDate(0, 0, -1), now.AddDate(0, 0, s.settings.PartitionAhead)) {
		s.parts[d.Format("20060102")] = true
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.stopRoll, s.rollDone = cancel, make(chan struct{})
	go func() { defer close(s.rollDone); s.background(rctx, 2*time.Second) }()
	return nil
}

// migrate applies the embedded migrations in order inside one transaction
// holding an advisory lock, so two agents starting together cannot race.
func (s *Store) migrate(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('recon-migrate-' || $1))`, s.settings.Schema); err != nil {
		return fmt.Errorf("postgres: migrate lock: %w", err)
	}
	sch := pgx.Identifier{s.settings.Schema}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+sch); err != nil {
		return fmt.Errorf("postgres: create schema: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+sch+`.schema_version (version integer NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	var v int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+sch+`.schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	files, _ := migrationFiles.ReadDir("migrations")
	sort.Slice(files, func(i, j int) bool { return files[i].Name() < files[j].Name() })
	if v > len(files) {
		return fmt.Errorf("postgres: schema %s is at version %d, newer than this recon (%d): upgrade recon", s.settings.Schema, v, len(files))
	}
	for i := v; i < len(files); i++ {
		b, _ := migrationFiles.ReadFile("migrations/" + files[i].Name())
		if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+sch); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, string(b)); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", files[i].Name(), err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+sch+`.schema_version (version) VALUES ($1)`, i+1); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		s.log.Info("postgres schema migrated", "schema", s.settings.Schema, "version", i+1)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// partitioned are the tables with day partitions.
var partitioned = []string{"status", "metric_numeric", "metric_text", "trap"}

func dayRange(from, to time.Time) []time.Time {
	var days []time.Time
	d := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	for ; !d.After(to); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	return days
}

func partName(table string, day time.Time) string { return table + "_" + day.Format("20060102") }

// ensurePartitions creates the day partitions of days that this store
// has not seen yet (CREATE … IF NOT EXISTS under an advisory lock, so
// several agents may do it at once).
func (s *Store) ensurePartitions(ctx context.Context, days []time.Time) error {
	pool, err := s.handle()
	if err != nil {
		return err
	}
	s.mu.Lock()
	var missing []time.Time
	for _, d := range days {
		if !s.parts[d.Format("20060102")] {
			missing = append(missing, d)
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	if err := s.createPartitions(ctx, pool, missing); err != nil {
		if permanent(err) {
			return sink.Permanent(err)
		}
		return err
	}
	s.mu.Lock()
	for _, d := range missing {
		s.parts[d.Format("20060102")] = true
	}
	s.mu.Unlock()
	return nil
}

// forgetPartitions drops days from the cache of existing partitions.
func (s *Store) forgetPartitions(days []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range days {
		delete(s.parts, d.Format("20060102"))
	}
}

func (s *Store) createPartitions(ctx context.Context, pool *pgxpool.Pool, days []time.Time) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: partitions: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('recon-partitions-' || $1))`, s.settings.Schema); err != nil {
		return fmt.Errorf("postgres: partitions: %w", err)
	}
	sch := s.sch()
	for _, d := range days {
		for _, t := range partitioned {
			q := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s PARTITION OF %s.%s FOR VALUES FROM ('%s') TO ('%s')`,
				sch, pgx.Identifier{partName(t, d)}.Sanitize(), sch, t, d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339))
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("postgres: create partition %s: %w", partName(t, d), err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: partitions: %w", err)
	}
	return nil
}

// Close stops the rollup applier and closes the pool.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	return nil
}

func (s *Store) closeLocked() {
	if s.stopRoll != nil {
		s.stopRoll()
		s.mu.Unlock()
		<-s.rollDone
		s.mu.Lock()
		s.stopRoll = nil
	}
	if s.pool != nil {
		s.pool.Close()
		s.pool = nil
	}
}

func (s *Store) handle() (*pgxpool.Pool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pool == nil {
		return nil, errors.New("postgres: not connected")
	}
	return s.pool, nil
}

// permanent tells data errors that retrying cannot fix (class 22, data
// exception: a value Postgres will never accept) from everything else
// (connections, missing partitions, locks), which the pipeline retries
// after reconnecting.
func permanent(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22")
}
