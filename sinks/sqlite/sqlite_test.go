package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store"
	"github.com/reconmon/recon/agent/store/storetest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.log = slog.New(slog.DiscardHandler)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openAt(t, filepath.Join(t.TempDir(), "recon.db")) })
}

func count(t testing.TB, s *Store, q string, args ...any) int {
	t.Helper()
	db, err := s.handle()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestSettingsAndPath(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		st   *Settings
		want string
	}{
		{nil, filepath.Join(dir, "recon.db")},
		{&Settings{}, filepath.Join(dir, "recon.db")},
		{&Settings{Path: "sub/x.db"}, filepath.Join(dir, "sub/x.db")},
		{&Settings{Path: "/abs/y.db"}, "/abs/y.db"},
	} {
		spec := &sink.Spec{}
		if tc.st != nil {
			spec.Settings = tc.st
		}
		sk, err := Type{}.New(spec, sink.Env{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if got := sk.(*Store).Path(); got != tc.want {
			t.Errorf("%+v: path %s, want %s", tc.st, got, tc.want)
		}
	}
	if _, err := (Type{}).New(&sink.Spec{Settings: &Settings{Retention: config.Duration(-time.Hour)}}, sink.Env{DataDir: dir}); err == nil {
		t.Error("negative retention accepted")
	}
	// New has no side effects; Connect creates the directory and file,
	// even with characters a DSN would otherwise misread.
	odd := filepath.Join(dir, "what?#dir", "recon.db")
	sk, _ := Type{}.New(&sink.Spec{Settings: &Settings{Path: odd}}, sink.Env{DataDir: dir})
	if _, err := os.Stat(filepath.Dir(odd)); !os.IsNotExist(err) {
		t.Fatal("New created the directory")
	}
	if err := sk.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	if _, err := os.Stat(odd); err != nil {
		t.Fatalf("database file not at %s: %v", odd, err)
	}
	s := sk.(*Store)
	db, _ := s.handle()
	var mode string
	var syncLevel int
	db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	db.QueryRow(`PRAGMA synchronous`).Scan(&syncLevel)
	if mode != "wal" || syncLevel != 2 {
		t.Errorf("journal_mode %s synchronous %d, want wal and 2 (FULL)", mode, syncLevel)
	}
}

func TestNotConnected(t *testing.T) {
	sk, _ := Type{}.New(&sink.Spec{}, sink.Env{DataDir: t.TempDir()})
	s := sk.(*Store)
	ctx := context.Background()
	if err := s.WriteBatch(ctx, []model.Result{storetest.Res("x", 0, model.OK)}); err == nil {
		t.Error("write before Connect succeeded")
	}
	if _, err := s.Checks(ctx); err == nil {
		t.Error("query before Connect succeeded")
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

func TestReopenAndMigrateFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "recon.db")
	// A file made by the first version of this store.
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{migrations[0], `INSERT INTO schema_version VALUES (1)`,
		`INSERT INTO alert VALUES (1, 'r', 'k', '{}', '` + storetest.ID("x").String() + `', 'a', 'b', 'warning', 2.5, 'm')`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s := openAt(t, path)
	if n := count(t, s, `SELECT version FROM schema_version`); n != len(migrations) {
		t.Errorf("schema version %d, want %d", n, len(migrations))
	}
	al, err := s.Alerts(context.Background(), time.Unix(0, 0), time.Unix(0, 10))
	if err != nil || len(al) != 1 || al[0].Value != 2.5 || al[0].Message != "m" {
		t.Errorf("alert kept across the migration: %v %+v", err, al)
	}
	if err := s.WriteBatch(context.Background(), []model.Result{storetest.Res("x", 0, model.OK, storetest.Num("v", 1))}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path) // reopening is a no-op migration
	if n := count(t, s, `SELECT count(*) FROM status`); n != 1 {
		t.Errorf("status rows after reopening: %d", n)
	}
	s.Close()
	db, _ = sql.Open("sqlite", dsn(path))
	db.Exec(`UPDATE schema_version SET version = 99`)
	db.Close()
	if _, err := Open(context.Background(), path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("a newer schema: %v", err)
	}
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	old := time.Now().Add(-40 * 24 * time.Hour)
	recent := time.Now().Add(-2 * time.Hour)
	rs := func(at time.Time, check string) []model.Result {
		r := storetest.Res(check, 0, model.OK, storetest.Num("v", 1), storetest.Text("t", "x"))
		r.Time = at
		return []model.Result{r}
	}
	// Default: nothing is ever deleted.
	dir := t.TempDir()
	sk, _ := Type{}.New(&sink.Spec{}, sink.Env{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	s := sk.(*Store)
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]model.Result{rs(old, "a"), rs(recent, "b")} {
		if err := s.WriteBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM status`); n != 2 {
		t.Errorf("default configuration deleted data: %d rows of 2", n)
	}
	s.Close()
	// Configured: raw rows older than it go; rollups, checks and alerts stay.
	sk, _ = Type{}.New(&sink.Spec{Settings: &Settings{Retention: config.Duration(10 * 24 * time.Hour)}}, sink.Env{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	s = sk.(*Store)
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteBatch(ctx, rs(recent.Add(time.Minute), "b")); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{
		`SELECT count(*) FROM status`:         2,
		`SELECT count(*) FROM metric_numeric`: 2,
		`SELECT count(*) FROM metric_text`:    1,
		`SELECT sum(count) FROM rollup_1d`:    3,
		`SELECT count(*) FROM "check"`:        2,
		`SELECT min(ts) > 0 FROM status`:      1,
		`SELECT count(*) FROM status WHERE ts < ` + strconv.FormatInt(old.Add(time.Hour).UnixNano(), 10): 0,
	} {
		if n := count(t, s, q); n != want {
			t.Errorf("after retention, %s = %d, want %d", q, n, want)
		}
	}
}

// TestSecondConnectionWhileWriting: the sqlite3 shell or another recon (recon rules
// test) can open the file while the agent writes.
func TestSecondConnectionWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "recon.db")
	w := openAt(t, path)
	r := openAt(t, path) // a second handle, as a second process would have
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		for i := 0; i < 30 && werr == nil; i++ {
			var rs []model.Result
			for j := 0; j < 100; j++ {
				rs = append(rs, storetest.Res("c", time.Duration(i*100+j)*time.Second, model.OK, storetest.Num("v", 1)))
			}
			werr = w.WriteBatch(ctx, rs)
		}
	}()
	for i := 0; i < 50; i++ {
		if _, err := r.Series(ctx, store.SeriesQuery{CheckID: storetest.ID("c"), Metric: "v", From: storetest.Base, To: storetest.Base.Add(time.Hour)}); err != nil {
			t.Fatalf("read from a second connection: %v", err)
		}
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	// The reader's handle can write too (busy_timeout, not SQLITE_BUSY).
	if err := r.WriteBatch(ctx, []model.Result{storetest.Res("d", 0, model.OK)}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, r, `SELECT count(*) FROM status`); n != 3001 {
		t.Errorf("status rows: %d", n)
	}
}

// FuzzWriteRead writes results with arbitrary text (check names, output,
// metric names and values) and reads them back: nothing may fail, panic or
// come back as invalid UTF-8.
func FuzzWriteRead(f *testing.F) {
	f.Add("load", "OK - load average 0.1", "load1", "up", 0.5)
	f.Add("nul\x00", "\x00\xff\xfe", "", "\x00", math.NaN())
	f.Add("'; DROP TABLE status; --", "\"", "a\"b", "\u2028", math.Inf(-1))
	s := openAt(f, filepath.Join(f.TempDir(), "fuzz.db"))
	i := 0
	f.Fuzz(func(t *testing.T, check, output, metric, text string, v float64) {
		i++
		r := storetest.Res(check, time.Duration(i)*time.Millisecond, model.Warning,
			model.Metric{Name: metric, Value: model.Float(v)}, model.Metric{Name: metric + "_t", Value: model.String(text)})
		r.Output, r.Tags = output, map[string]string{metric: text}
		if err := s.WriteBatch(context.Background(), []model.Result{r, r}); err != nil {
			t.Fatal(err)
		}
		id := storetest.ID(check)
		h, err := s.StatusHistory(context.Background(), id, r.Time, r.Time, 0)
		if err != nil || len(h) != 1 || !utf8.ValidString(h[0].Output) || strings.ContainsRune(h[0].Output, 0) {
			t.Fatalf("history: %v %+v", err, h)
		}
		ser, err := s.Series(context.Background(), store.SeriesQuery{CheckID: id, Metric: clean(metric), From: r.Time, To: r.Time})
		if err != nil {
			t.Fatal(err)
		}
		finite := !math.IsNaN(v) && !math.IsInf(v, 0)
		if finite != (len(ser.Points) == 1) || finite && ser.Points[0].Value != v {
			t.Fatalf("value %v read back as %+v", v, ser.Points)
		}
		checks, err := s.Checks(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range checks {
			if !utf8.ValidString(c.Name) || !utf8.ValidString(c.Output) {
				t.Fatalf("invalid UTF-8 read back: %+v", c)
			}
		}
	})
}
