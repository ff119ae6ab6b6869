package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store"
	"github.com/reconmon/recon/agent/store/storetest"
	"github.com/reconmon/recon/internal/testutil/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	os.Exit(pgtest.Main(m, &cluster))
}

func pg(t testing.TB) *pgtest.Cluster { return pgtest.Shared(t, &cluster) }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func open(t testing.TB, dsn string) *Store {
	t.Helper()
	return openWith(t, Settings{DSN: dsn})
}

func openWith(t testing.TB, st Settings) *Store {
	t.Helper()
	s, err := Open(context.Background(), st, quiet())
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

// TestConformanceOtherSchema: the schema setting is honoured by every
// statement (the cases below touch all of them).
func TestConformanceOtherSchema(t *testing.T) {
	c := pg(t)
	storetest.Run(t, func(t *testing.T) storetest.Store {
		dsn := c.NewDatabase(t)
		s := openWith(t, Settings{DSN: dsn, Schema: "trend_2"})
		t.Cleanup(func() {
			if n := count(t, dsn, `SELECT count(*) FROM pg_namespace WHERE nspname = 'recon'`); n != 0 {
				t.Errorf("schema recon created although schema = trend_2")
			}
		})
		return s
	}, "WriteAndQuery", "Idempotent", "RollupsLateAndReplayed", "TextLateData", "Replay", "Traps", "Alerts", "Awkward", "Empty")
}

func results(check string, from, n int, at time.Time) []model.Result {
	rs := make([]model.Result, n)
	for i := range rs {
		rs[i] = model.Result{CheckID: model.CheckID("a", check), Check: check, Agent: "a", Time: at.Add(time.Duration(from+i) * time.Second),
			Status: model.OK, Metrics: []model.Metric{{Name: "seq", Value: model.Int(int64(from + i))}}}
	}
	return rs
}

func count(t testing.TB, dsn, q string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func sqlExec(t testing.TB, dsn, q string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestConcurrentMigrators(t *testing.T) {
	dsn := pg(t).NewDatabase(t)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s, err := Open(context.Background(), Settings{DSN: dsn}, quiet())
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent migration: %v", err)
	}
	files, _ := migrationFiles.ReadDir("migrations")
	if n := count(t, dsn, `SELECT count(*) FROM recon.schema_version`); n != len(files) {
		t.Errorf("schema_version rows: %d, want %d (a migration ran twice or not at all)", n, len(files))
	}
	if n := count(t, dsn, `SELECT max(version) FROM recon.schema_version`); n != len(files) {
		t.Errorf("schema version %d, want %d", n, len(files))
	}
	// A schema newer than this binary is refused, not downgraded.
	sqlExec(t, dsn, `INSERT INTO recon.schema_version (version) VALUES (999)`)
	if _, err := Open(context.Background(), Settings{DSN: dsn}, quiet()); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("newer schema: %v", err)
	}
}

func TestPartitions(t *testing.T) {
	dsn := pg(t).NewDatabase(t)
	s := openWith(t, Settings{DSN: dsn, PartitionAhead: 3})
	ctx := context.Background()
	today := time.Now().UTC()
	for d := 0; d <= 3; d++ {
		name := "status_" + today.AddDate(0, 0, d).Format("20060102")
		if n := count(t, dsn, `SELECT count(*) FROM pg_class WHERE relname = $1`, name); n != 1 {
			t.Errorf("partition %s not created ahead", name)
		}
	}
	// Data from long ago and far ahead gets partitions on demand, only
	// for the days present.
	old := time.Date(2019, 5, 1, 12, 0, 0, 0, time.UTC)
	future := today.AddDate(1, 0, 0)
	if err := s.WriteBatch(ctx, append(results("old", 0, 3, old), results("future", 0, 3, future)...)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != 6 {
		t.Errorf("status rows: %d", n)
	}
	for _, tbl := range partitioned {
		if n := count(t, dsn, `SELECT count(*) FROM pg_class WHERE relname = $1`, tbl+"_20190501"); n != 1 {
			t.Errorf("partition %s_20190501 not created", tbl)
		}
	}
	if n := count(t, dsn, `SELECT count(*) FROM pg_class WHERE relname LIKE 'status\_2019%' AND relkind = 'r'`); n != 1 {
		t.Errorf("%d partitions for 2019: only the day present should be created", n)
	}
	// A partition dropped behind the store's back (another agent's
	// retention, an operator) is created again on the next write.
	sqlExec(t, dsn, `DROP TABLE recon.status_20190501, recon.metric_numeric_20190501, recon.metric_text_20190501, recon.trap_20190501`)
	if err := s.WriteBatch(ctx, results("old", 10, 3, old)); err != nil {
		t.Fatalf("write after a partition was dropped: %v", err)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.status WHERE ts < '2020-01-01'`); n != 3 {
		t.Errorf("rows in the re-created partition: %d", n)
	}
}

func TestDownAtStart(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.ConnString()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	sk, err := Type{}.New(&sink.Spec{Settings: &Settings{DSN: dsn}}, sink.Env{Logger: quiet()})
	if err != nil {
		t.Fatalf("New must not connect: %v", err)
	}
	s := sk.(*Store)
	ctx := context.Background()
	if err := s.Connect(ctx); err == nil {
		t.Fatal("connected to a stopped server")
	} else if sink.IsPermanent(err) {
		t.Fatalf("a server that is down is not a permanent error: %v", err)
	}
	if err := s.WriteBatch(ctx, results("r", 0, 1, time.Now())); err == nil || sink.IsPermanent(err) {
		t.Fatalf("write before connecting: %v", err)
	}
	if _, err := s.Checks(ctx); err == nil {
		t.Fatal("query before connecting succeeded")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(ctx); err != nil {
		t.Fatalf("connect after start: %v", err)
	}
	defer s.Close()
	if err := s.Connect(ctx); err != nil {
		t.Fatalf("a second Connect: %v", err)
	}
	if err := s.WriteBatch(ctx, results("r", 0, 10, time.Now())); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != 10 {
		t.Errorf("status rows: %d", n)
	}
}

// TestRestartMidRun restarts Postgres under a writer that retries failed
// batches as the pipeline does (plain WriteBatch retries, and once a
// Close/Connect), then checks that every result is stored exactly once
// and the rollups are exact.
func TestRestartMidRun(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Fsync: true})
	dsn := c.ConnString()
	s := open(t, dsn)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	const batches, per = 30, 100
	failed := 0
	for b := 0; b < batches; b++ {
		switch b {
		case 10:
			if err := c.Restart(); err != nil {
				t.Fatal(err)
			}
		case 20:
			if err := c.Stop(); err != nil {
				t.Fatal(err)
			}
			go func() { time.Sleep(time.Second); c.Start() }()
		}
		batch := results("r", b*per, per, at)
		deadline := time.Now().Add(60 * time.Second)
		connected := true
		for {
			// As the pipeline does: reconnect when not connected, write,
			// and on failure close the sink; except for the first two
			// failures, where the batch is simply retried (the pool
			// replaces broken connections by itself).
			err := error(nil)
			if !connected {
				err = s.Connect(ctx)
				connected = err == nil
			}
			if err == nil {
				if err = s.WriteBatch(ctx, batch); err == nil {
					break
				}
			}
			if sink.IsPermanent(err) {
				t.Fatalf("an outage must be retryable: %v", err)
			}
			failed++
			if time.Now().After(deadline) {
				t.Fatalf("batch %d still failing: %v", b, err)
			}
			if failed > 2 && connected {
				s.Close()
				connected = false
			}
			time.Sleep(100 * time.Millisecond)
		}
		if b == 25 { // and a replay of everything after the outage
			if err := s.WriteBatch(ctx, results("r", 0, 26*per, at)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d failed writes during the outages", failed)
	if failed == 0 {
		t.Error("no write failed: the outage was not observed")
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != batches*per {
		t.Errorf("status rows: %d, want %d", n, batches*per)
	}
	if n := count(t, dsn, `SELECT count(*) FROM (SELECT DISTINCT check_id, name, ts FROM recon.metric_numeric) x`); n != batches*per ||
		count(t, dsn, `SELECT count(*) FROM recon.metric_numeric`) != n {
		t.Errorf("metric rows: %d distinct, want %d, no duplicates", n, batches*per)
	}
	ser, err := s.Series(ctx, store.SeriesQuery{CheckID: model.CheckID("a", "r"), Metric: "seq", From: at, To: at.Add(24 * time.Hour), Step: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	var sum float64
	for _, p := range ser.Points {
		n, sum = n+p.Count, sum+p.Sum
	}
	if n != batches*per || sum != float64(batches*per*(batches*per-1)/2) {
		t.Errorf("rollups: count %d sum %v, want %d and %d", n, sum, batches*per, batches*per*(batches*per-1)/2)
	}
}

// TestStagedPathIsExact: rows that exist without their status row (an
// operator's import, a half-restored backup) neither block the write nor
// count twice in the rollups, which aggregate what is stored.
func TestStagedPathIsExact(t *testing.T) {
	dsn := pg(t).NewDatabase(t)
	s := open(t, dsn)
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rs := results("x", 0, 4, at)
	if err := s.WriteBatch(ctx, rs[:1]); err != nil {
		t.Fatal(err)
	}
	// seq of the result at +2s stored, but not its status row.
	sqlExec(t, dsn, fmt.Sprintf(`INSERT INTO recon.metric_numeric VALUES ('%s', 'seq', '%s', 2)`, rs[2].CheckID, rs[2].Time.Format(time.RFC3339)))
	if err := s.WriteBatch(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != 4 {
		t.Errorf("status rows: %d", n)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.metric_numeric`); n != 4 {
		t.Errorf("metric rows: %d", n)
	}
	ser, err := s.Series(ctx, store.SeriesQuery{CheckID: rs[0].CheckID, Metric: "seq", From: at, To: at.Add(time.Hour), Step: time.Hour})
	if err != nil || len(ser.Points) != 1 {
		t.Fatal(err, ser)
	}
	// Rollups aggregate the rows stored, each once: 0, 1, 2 (imported) and 3.
	if p := ser.Points[0]; p.Count != 4 || p.Sum != 6 {
		t.Errorf("rollup: %+v, want count 4 sum 6", p)
	}
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT sum(count)::int FROM recon.rollup_1d`); n != 4 {
		t.Errorf("daily rollup counts %d values, want 4", n)
	}
}

// TestNULBytes: text Postgres cannot store is sanitised, never rejected;
// the result is kept.
func TestNULBytes(t *testing.T) {
	dsn := pg(t).NewDatabase(t)
	s := open(t, dsn)
	r := results("nul\x00check", 0, 1, time.Now())[0]
	r.Type, r.Target, r.Agent = "snmptrap", "\x00", "ag\x00ent"
	r.Output, r.LongOutput = "a\x00b", "\x00\xc3"
	r.Tags = map[string]string{"trap_oid": "1.3\x00", "\x00": "\x00"}
	r.Metrics = append(r.Metrics, model.Metric{Name: "t\x00", Value: model.String("\x00\x00")})
	if err := s.WriteBatch(context.Background(), []model.Result{r}); err != nil {
		t.Fatalf("NUL bytes: %v", err)
	}
	for q, want := range map[string]int{
		`SELECT count(*) FROM recon.status WHERE output = E'a\uFFFDb' AND long_output = E'\uFFFD\uFFFD'`:            1,
		`SELECT count(*) FROM recon."check" WHERE name = E'nul\uFFFDcheck' AND tags->>E'\uFFFD' = E'\uFFFD'`:        1,
		`SELECT count(*) FROM recon.metric_text WHERE name = E't\uFFFD' AND value = E'\uFFFD\uFFFD'`:                1,
		`SELECT count(*) FROM recon.trap WHERE trap_oid = E'1.3\uFFFD' AND varbinds->>E't\uFFFD' = E'\uFFFD\uFFFD'`: 1,
	} {
		if n := count(t, dsn, q); n != want {
			t.Errorf("%s: %d", q, n)
		}
	}
}

// TestPermanentErrors: data Postgres can never take is reported as
// permanent (the pipeline dead-letters it instead of retrying forever).
func TestPermanentErrors(t *testing.T) {
	s := open(t, pg(t).NewDatabase(t))
	r := results("far", 0, 1, time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC))
	err := s.WriteBatch(context.Background(), r)
	if err == nil || !sink.IsPermanent(err) {
		t.Fatalf("a time beyond timestamptz's range: %v, want a permanent error", err)
	}
	if err := s.WriteBatch(context.Background(), results("near", 0, 1, time.Now())); err != nil {
		t.Fatalf("the store is still usable: %v", err)
	}
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	old := time.Now().UTC().AddDate(0, 0, -40)
	recent := time.Now().UTC().AddDate(0, 0, -2)
	// Default: no retention; housekeeping never deletes.
	dsn := pg(t).NewDatabase(t)
	s := open(t, dsn)
	if err := s.WriteBatch(ctx, append(results("r", 0, 2, old), results("r", 0, 2, recent)...)); err != nil {
		t.Fatal(err)
	}
	if err := s.housekeeping(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != 4 {
		t.Errorf("the default configuration deleted data: %d rows left of 4", n)
	}
	// Configured: whole day partitions older than it go, the rest stays,
	// and so do the rollups.
	s2 := openWith(t, Settings{DSN: dsn, Retention: config.Duration(10 * 24 * time.Hour)})
	if err := s2.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.housekeeping(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != 2 {
		t.Errorf("status rows after retention: %d, want the 2 recent ones", n)
	}
	if n := count(t, dsn, `SELECT count(*) FROM pg_class WHERE relname = $1`, "status_"+old.Format("20060102")); n != 0 {
		t.Error("old partition not dropped")
	}
	if n := count(t, dsn, `SELECT sum(count)::int FROM recon.rollup_1d`); n != 4 {
		t.Errorf("rollups after retention: %d, want all 4 values kept", n)
	}
	// Late data older than the retention is still written (never a failed
	// batch); the next housekeeping drops it again.
	if err := s2.WriteBatch(ctx, results("late", 0, 1, old)); err != nil {
		t.Fatal(err)
	}
	// The rollups of a pruned day are final: its bucket is not recomputed
	// from the one raw row there now (which would replace four values by
	// one), so the late value is not counted.
	if err := s2.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn, `SELECT sum(count)::int FROM recon.rollup_1d`); n != 4 {
		t.Errorf("rollups after late data in a pruned day: %d, want the 4 values kept", n)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.rollup_dirty`); n != 0 {
		t.Errorf("%d marks left", n)
	}
}

func TestSettings(t *testing.T) {
	for _, st := range []Settings{{}, {DSN: "host=x", Schema: "bad-name"}, {DSN: "host=x", Schema: "1abc"}, {DSN: "postgres://%zz"}} {
		if _, err := (Type{}).New(&sink.Spec{Settings: &st}, sink.Env{}); err == nil {
			t.Errorf("%+v accepted", st)
		}
	}
	if _, err := (Type{}).New(&sink.Spec{}, sink.Env{}); err == nil {
		t.Error("missing settings accepted")
	}
	_, err := (Type{}).New(&sink.Spec{Settings: &Settings{DSN: "postgres://u:hunter2@host/db?sslmode=bogus"}}, sink.Env{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad DSN: %v (must fail without echoing the password)", err)
	}
	sk, err := (Type{}).New(&sink.Spec{Settings: &Settings{DSN: "host=/nonexistent"}}, sink.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if st := sk.(*Store).settings; st.Schema != "recon" || st.PartitionAhead != 7 || st.MaxConns != 4 || st.Retention != 0 || st.WriteConns != 2 {
		t.Errorf("defaults: %+v", st)
	}
	// One connection stays free for the applier: a default shrinks to
	// fit a small pool, an explicit value that does not fit is refused.
	sk, err = (Type{}).New(&sink.Spec{Settings: &Settings{DSN: "host=x", MaxConns: 2}}, sink.Env{})
	if err != nil || sk.(*Store).settings.WriteConns != 1 {
		t.Errorf("max_conns 2: %v %+v", err, sk)
	}
	if _, err := (Type{}).New(&sink.Spec{Settings: &Settings{DSN: "host=x", MaxConns: 4, WriteConns: 4}}, sink.Env{}); err == nil || !strings.Contains(err.Error(), "write_conns 4: at most max_conns - 1 (3)") {
		t.Errorf("write_conns 4 of 4: %v", err)
	}
}

// TestPacedApplyIsBounded: the periodic applier, which rests inside its
// transaction, catches up a few buckets per transaction, so no snapshot
// stays open for the whole backlog; everything is recomputed in the end.
func TestPacedApplyIsBounded(t *testing.T) {
	dsn := pg(t).NewDatabase(t)
	s := open(t, dsn)
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	const buckets = rollupPacedBuckets + 2
	for i := range buckets {
		if err := s.WriteBatch(ctx, results("q", i, 1, at.Add(time.Duration(i)*5*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	sqlExec(t, dsn, `UPDATE recon.rollup_dirty SET marked_at = marked_at - interval '2 minutes'`)
	var got []int
	for range 3 {
		n, err := s.applyRollups(ctx, at.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	if want := fmt.Sprint([]int{rollupPacedBuckets, 2, 0}); fmt.Sprint(got) != want {
		t.Errorf("buckets per paced transaction: %v, want %s", got, want)
	}
	// seq i lands at minute 5i + i seconds: one value per bucket, 0..5.
	if n := count(t, dsn, `SELECT sum(count)::int * 100 + sum(sum)::int FROM recon.rollup_5m`); n != buckets*100+15 {
		t.Errorf("rollup_5m: count*100+sum = %d, want %d", n, buckets*100+15)
	}
	if n := count(t, dsn, `SELECT sum(count)::int FROM recon.rollup_1d`); n != buckets {
		t.Errorf("rollup_1d counts %d values, want %d", n, buckets)
	}
}

// TestSplit: shards hold whole checks, in order, none below minShard
// results unless the batch is one shard.
func TestSplit(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var many []model.Result
	for i := range 1000 {
		many = append(many, results(fmt.Sprintf("c%d", i), 0, 1, at)...)
	}
	var skewed []model.Result // one check with most of the results
	skewed = append(skewed, results("big", 0, 900, at)...)
	for i := range 100 {
		skewed = append(skewed, results(fmt.Sprintf("s%d", i), 0, 1, at)...)
	}
	for _, tc := range []struct {
		name  string
		batch []model.Result
		n     int
		sizes []int
	}{
		{"one connection", many, 1, []int{1000}},
		{"two", many, 2, []int{500, 500}},
		{"four", many, 4, []int{250, 250, 250, 250}},
		{"too small for four", many[:600], 4, []int{300, 300}},
		{"too small to split", many[:499], 2, []int{499}},
		{"one check is never split", results("x", 0, 1000, at), 2, []int{1000}},
		{"skewed", skewed, 2, nil}, // sizes depend on where "big" sorts
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := prepare(tc.batch)
			shards := p.split(tc.n)
			var sizes []int
			total := 0
			owner := map[[16]byte]int{}
			for i, sh := range shards {
				sizes = append(sizes, len(sh.status))
				total += len(sh.status)
				for _, pr := range sh.status {
					if o, ok := owner[pr.id]; ok && o != i {
						t.Fatalf("check %x in shards %d and %d", pr.id, o, i)
					}
					owner[pr.id] = i
				}
			}
			if total != len(p.status) {
				t.Fatalf("%d results in shards, batch has %d", total, len(p.status))
			}
			if tc.sizes != nil && fmt.Sprint(sizes) != fmt.Sprint(tc.sizes) {
				t.Errorf("sizes %v, want %v", sizes, tc.sizes)
			}
			if len(shards) > tc.n {
				t.Errorf("%d shards for %d connections", len(shards), tc.n)
			}
		})
	}
}

// TestShardFailsAlone: when one shard of a batch fails after the other
// committed, the retried batch stores every result, metric and rollup
// exactly once.
func TestShardFailsAlone(t *testing.T) {
	dsn := pg(t).NewDatabase(t)
	s := open(t, dsn)
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var batch []model.Result
	for i := range 600 {
		batch = append(batch, results(fmt.Sprintf("c%03d", i), 0, 2, at)...)
	}
	shards := prepare(batch).split(2)
	if len(shards) != 2 {
		t.Fatalf("%d shards, want 2", len(shards))
	}
	// Fail the second shard: its first check's status row is refused.
	victim := uuid.UUID(shards[1].status[0].id)
	sqlExec(t, dsn, `CREATE FUNCTION recon.refuse() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN IF NEW.check_id = '`+victim.String()+`' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END$$;
		CREATE TRIGGER refuse BEFORE INSERT ON recon.status FOR EACH ROW EXECUTE FUNCTION recon.refuse();`)
	err := s.WriteBatch(ctx, batch)
	if err == nil || !strings.Contains(err.Error(), "refused by the test") {
		t.Fatalf("write with a failing shard: %v", err)
	}
	first := len(shards[0].status)
	if n := count(t, dsn, `SELECT count(*) FROM recon.status`); n != first {
		t.Fatalf("after the failure: %d status rows, want the first shard's %d", n, first)
	}
	sqlExec(t, dsn, `DROP TRIGGER refuse ON recon.status`)
	if err := s.WriteBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{
		`SELECT count(*) FROM recon.status`:         1200,
		`SELECT count(*) FROM recon.metric_numeric`: 1200,
		`SELECT count(*) FROM recon."check"`:        600,
	} {
		if n := count(t, dsn, q); n != want {
			t.Errorf("%s: %d, want %d", q, n, want)
		}
	}
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	// seq is 0 and 1 for every check: 1,200 values summing to 600.
	if n := count(t, dsn, `SELECT sum(count)::int FROM recon.rollup_1d`); n != 1200 {
		t.Errorf("daily rollups count %d values, want 1200", n)
	}
	if n := count(t, dsn, `SELECT sum(sum)::int FROM recon.rollup_5m`); n != 600 {
		t.Errorf("5-minute rollups sum to %d, want 600", n)
	}
}

// TestRollupsMarkedAndRecomputed: reads combine the rollup tables with
// the raw rows of buckets not recomputed yet, exactly, whatever the
// applier has done; the applier recomputes only closed, settled buckets
// unless told to flush.
func TestRollupsMarkedAndRecomputed(t *testing.T) {
	dsn := pg(t).NewDatabase(t)
	s := open(t, dsn)
	s.stopRoll() // no background applier: this test decides when buckets are recomputed
	<-s.rollDone
	s.stopRoll = nil
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 10, 59, 55, 0, time.UTC) // two 5-minute buckets, two hours, one day
	id := model.CheckID("a", "p")
	sum := func(step time.Duration) (int64, float64) {
		t.Helper()
		ser, err := s.Series(ctx, store.SeriesQuery{CheckID: id, Metric: "seq", From: at.Add(-time.Hour), To: at.Add(time.Hour), Step: step})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		var v float64
		for _, p := range ser.Points {
			n, v = n+p.Count, v+p.Sum
		}
		return n, v
	}
	check := func(wantN int64, wantSum float64) {
		t.Helper()
		for _, step := range []time.Duration{5 * time.Minute, time.Hour, 24 * time.Hour} {
			if n, v := sum(step); n != wantN || v != wantSum {
				t.Errorf("step %s: count %d sum %v, want %d and %v", step, n, v, wantN, wantSum)
			}
		}
	}
	write := func(from, n int, at time.Time) {
		t.Helper()
		if err := s.WriteBatch(ctx, results("p", from, n, at)); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 10, at) // seq 0..9, one a second: 10:59:55 … 11:00:04
	if names, err := s.MetricNames(ctx, id); err != nil || len(names) != 1 || names[0] != "seq" {
		t.Errorf("metric names before any rollup: %v %v", names, err)
	}
	check(10, 45)
	// Not closed long enough: nothing is recomputed.
	if n, err := s.applyRollups(ctx, at); err != nil || n != 0 {
		t.Fatalf("apply before the buckets settled: %d %v", n, err)
	}
	// Closed and settled by the agents' clock, but marked just now by the
	// database's: still waiting for stragglers.
	if n, err := s.applyRollups(ctx, at.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("apply while marks are fresh: %d %v", n, err)
	}
	sqlExec(t, dsn, `UPDATE recon.rollup_dirty SET marked_at = marked_at - interval '2 minutes'`)
	if n, err := s.applyRollups(ctx, at.Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("apply of two settled buckets: %d %v", n, err)
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.rollup_dirty`); n != 0 {
		t.Errorf("%d marks left after recomputing", n)
	}
	check(10, 45)
	if names, err := s.MetricNames(ctx, id); err != nil || len(names) != 1 || names[0] != "seq" {
		t.Errorf("metric names from rollups: %v %v", names, err)
	}
	// Late rows into the first bucket (10:55) and the second (11:00): the
	// rollup rows of both are stale until recomputed, and reads are not.
	write(10, 2, at.Add(-20*time.Second)) // seq 10, 11 at 10:59:45
	write(12, 1, at)                      // seq 12 at 11:00:07
	check(13, 78)
	if n := count(t, dsn, `SELECT count(DISTINCT bucket) FROM recon.rollup_dirty`); n != 2 {
		t.Errorf("%d buckets marked, want 2: the mixed case was not tested", n)
	}
	// The same rows again (a replay) change nothing and mark nothing.
	write(10, 2, at.Add(-20*time.Second))
	write(12, 1, at)
	check(13, 78)
	if n := count(t, dsn, `SELECT count(*) FROM recon.rollup_dirty`); n != 2 {
		t.Errorf("%d marks after a replay, want the 2 of the late rows", n)
	}
	// A bucket written into all the time (its oldest mark 20 minutes old)
	// is recomputed although its marks never go quiet; the other waits.
	sqlExec(t, dsn, `INSERT INTO recon.rollup_dirty VALUES ('2026-03-02 10:55:00+00', now() - interval '20 minutes')`)
	if n, err := s.applyRollups(ctx, at.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("apply of the stale bucket: %d %v", n, err)
	}
	check(13, 78)
	if n := count(t, dsn, `SELECT sum(count)::int FROM recon.rollup_5m`); n != 12 {
		t.Errorf("rollup_5m counts %d values, want 7 + 5 (the second bucket not recomputed yet)", n)
	}
	// A flush recomputes what is marked, closed or not.
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	check(13, 78)
	for _, table := range []string{"rollup_5m", "rollup_1h", "rollup_1d"} {
		if n := count(t, dsn, `SELECT sum(count)::int FROM recon.`+table); n != 13 {
			t.Errorf("%s counts %d values, want 13", table, n)
		}
	}
	if n := count(t, dsn, `SELECT count(*) FROM recon.rollup_1h`); n != 2 {
		t.Errorf("%d hourly rows, want 2", n)
	}
}

// TestMigrationFromPendingDeltas: a schema at version 3 (rollup deltas in
// rollup_pending, some folded already) migrates to recomputed rollups with
// nothing counted twice or lost, and the store works on it afterwards.
func TestMigrationFromPendingDeltas(t *testing.T) {
	dsn := pg(t).NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA recon; SET search_path TO recon;
		CREATE TABLE schema_version (version integer NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	files, _ := migrationFiles.ReadDir("migrations")
	for i, f := range files[:3] {
		b, _ := migrationFiles.ReadFile("migrations/" + f.Name())
		if _, err := conn.Exec(ctx, string(b)); err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, i+1); err != nil {
			t.Fatal(err)
		}
	}
	// Ten values 1..10 of one series at 10:00:00-09 and 10:05:00-09 …:
	// the first five folded into the rollups by a version-3 applier, the
	// other five still pending in two deltas.
	id := model.CheckID("a", "m")
	for _, q := range []string{
		`CREATE TABLE metric_numeric_20260302 PARTITION OF metric_numeric FOR VALUES FROM ('2026-03-02') TO ('2026-03-03')`,
		`INSERT INTO metric_numeric SELECT $1, 'v', '2026-03-02 10:00:00+00'::timestamptz + (i - 1) * interval '1 minute', i FROM generate_series(1, 10) i`,
		`INSERT INTO rollup_5m VALUES ($1, 'v', '2026-03-02 10:00:00+00', 5, 1, 5, 15)`,
		`INSERT INTO rollup_1h VALUES ($1, 'v', '2026-03-02 10:00:00+00', 5, 1, 5, 15)`,
		`INSERT INTO rollup_1d VALUES ($1, 'v', '2026-03-02 00:00:00+00', 5, 1, 5, 15)`,
		`INSERT INTO rollup_pending VALUES ($1, 'v', '2026-03-02 10:05:00+00', 3, 6, 8, 21), ($1, 'v', '2026-03-02 10:05:00+00', 2, 9, 10, 19)`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, pgid(id))
		}
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := open(t, dsn)
	if n := count(t, dsn, `SELECT max(version) FROM recon.schema_version`); n != len(files) {
		t.Errorf("schema version %d, want %d", n, len(files))
	}
	if n := count(t, dsn, `SELECT count(*) FROM pg_class WHERE relname = 'rollup_pending'`); n != 0 {
		t.Error("rollup_pending still there")
	}
	if n := count(t, dsn, `SELECT count(*) FROM pg_indexes WHERE tablename = 'metric_numeric_20260302' AND indexdef LIKE '%USING brin (ts)%'`); n != 1 {
		t.Error("no BRIN index on ts in an existing partition")
	}
	for table, want := range map[string]string{"rollup_5m": "10 1 10 55", "rollup_1h": "10 1 10 55", "rollup_1d": "10 1 10 55"} {
		var got string
		if err := conn.QueryRow(ctx, `SELECT concat_ws(' ', sum(count), min(min), max(max), sum(sum)) FROM recon.`+table).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s after the migration: %s, want %s (count min max sum)", table, got, want)
		}
	}
	ser, err := s.Series(ctx, store.SeriesQuery{CheckID: id, Metric: "v", From: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), Step: time.Hour})
	if err != nil || len(ser.Points) != 1 || ser.Points[0].Count != 10 || ser.Points[0].Sum != 55 {
		t.Errorf("series after the migration: %+v %v", ser.Points, err)
	}
}
