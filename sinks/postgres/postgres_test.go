package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store/storetest"
	"github.com/reconmon/recon/internal/testutil/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		cluster.Remove()
	}
	os.Exit(code)
}

func pg(t testing.TB) *pgtest.Cluster { return pgtest.Shared(t, &cluster) }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Settings{DSN: dsn}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	c := pg(t)
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, c.NewDatabase(t)) })
}

func results(check string, from, n int, at time.Time) []model.Result {
	rs := make([]model.Result, n)
	for i := range rs {
		rs[i] = model.Result{CheckID: model.CheckID("a", check), Check: check, Agent: "a", Time: at.Add(time.Duration(from+i) * time.Second),
			Status: model.OK, Metrics: []model.Metric{{Name: "seq", Value: model.Int(int64(from + i))}}}
	}
	return rs
}

func count(t *testing.T, dsn, q string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConcurrentMigratorsAndOldData(t *testing.T) {
	c := pg(t)
	dsn := c.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), Settings{DSN: dsn}, quiet())
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent migration: %v", err)
	}
	files, _ := migrationFiles.ReadDir("migrations")
	if n := count(t, dsn, `SELECT count(DISTINCT version) FROM recon.schema_version`); n != len(files) {
		t.Errorf("distinct schema versions: %d, want %d", n, len(files))
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.schema_version`); n != len(files) {
		t.Errorf("schema_version rows: %d: a migration ran twice", n)
	}
	// Data from long ago and far ahead gets partitions on demand.
	s := open(t, dsn)
	old := time.Date(2019, 5, 1, 12, 0, 0, 0, time.UTC)
	future := time.Now().AddDate(0, 2, 0)
	if err := s.WriteBatch(context.Background(), append(results("old", 0, 3, old), results("future", 0, 3, future)...)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != 6 {
		t.Errorf("status rows: %d", n)
	}
	if n := count(t, dsn, `SELECT count(*) FROM pg_class WHERE relname = 'status_20190501'`); n != 1 {
		t.Error("partition for old data not created")
	}
}

func TestDownAtStartAndRestartMidRun(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Fsync: true})
	dsn := c.DSN("postgres")
	c.Stop()
	st, _ := Type{}.New(&sink.Spec{Settings: &Settings{DSN: dsn}}, sink.Env{Logger: quiet()})
	s := st.(*Store)
	ctx := context.Background()
	if err := s.Connect(ctx); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(ctx); err != nil {
		t.Fatalf("connect after start: %v", err)
	}
	defer s.Close()
	at := time.Now().Truncate(time.Second)
	if err := s.WriteBatch(ctx, results("r", 0, 10, at)); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBatch(ctx, results("r", 10, 10, at)); err == nil {
		t.Fatal("write succeeded with the server down")
	} else if sink.IsPermanent(err) {
		t.Fatalf("an outage must be retryable: %v", err)
	}
	c.Start()
	// The pipeline closes and reconnects a failing sink, then retries the
	// same batch; the first one is replayed too.
	s.Close()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for {
		err = s.Connect(ctx)
		if err == nil {
			err = s.WriteBatch(ctx, append(results("r", 0, 10, at), results("r", 10, 10, at)...))
		}
		if err == nil || time.Now().After(deadline) {
			break
		}
		s.Close()
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.metric_numeric`); n != 20 {
		t.Errorf("metric rows after restart and replay: %d, want 20", n)
	}
	if _, err := s.applyRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT sum(count)::int FROM recon.rollup_1d`); n != 20 {
		t.Errorf("rollup counted %d, want 20", n)
	}
}

func TestRetentionOnlyWhenConfigured(t *testing.T) {
	c := pg(t)
	dsn := c.NewDatabase(t)
	old := time.Now().UTC().AddDate(0, 0, -40)
	s := open(t, dsn)
	s.WriteBatch(context.Background(), results("r", 0, 2, old))
	s.prune(context.Background(), s.pool, time.Now().AddDate(0, 0, -10)) // what a configured retention would do
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != 0 {
		t.Errorf("pruned data left: %d", n)
	}
	// Default: no retention, maybePrune never deletes.
	s.WriteBatch(context.Background(), results("r2", 0, 2, old))
	s.maybePrune(context.Background())
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != 2 {
		t.Errorf("default configuration deleted data: %d rows left", n)
	}
	s2, _ := Type{}.New(&sink.Spec{Settings: &Settings{DSN: dsn, Retention: config.Duration(240 * time.Hour)}}, sink.Env{Logger: quiet()})
	s2.Connect(context.Background())
	defer s2.Close()
	s2.(*Store).maybePrune(context.Background())
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != 0 {
		t.Errorf("configured retention kept %d old rows", n)
	}
}

func TestSettingsErrors(t *testing.T) {
	for _, st := range []Settings{{}, {DSN: "host=x", Schema: "bad-name"}, {DSN: "postgres://%zz"}} {
		if _, err := (Type{}).New(&sink.Spec{Settings: &st}, sink.Env{}); err == nil {
			t.Errorf("%+v accepted", st)
		}
	}
	_, err := (Type{}).New(&sink.Spec{Settings: &Settings{DSN: "postgres://u:hunter2@%zz"}}, sink.Env{})
	if err != nil && fmt.Sprint(err) != "" && contains(err.Error(), "hunter2") {
		t.Errorf("password in error: %v", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
