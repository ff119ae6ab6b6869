package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconmon/recon/internal/testutil/pgtest"
	"github.com/reconmon/recon/sinks/postgres"
)

// soakScript is a Lua check with two numeric metrics: every result is one
// status row and two metric rows.
const soakScript = `function check(ctx)
  return { status = "OK", output = "soak", metrics = { value = 42, ms = { value = 1.5, unit = "ms" } } }
end
`

// BenchmarkSoakPostgres: the real agent runs 10,000 Lua checks every
// second (10,000 results/s) into the Postgres sink with its default spool
// (fsync = always) and a Postgres with fsync on, for RECON_SOAK (default
// 10m) after a warm-up (a minute, then until the start-up backlog has
// drained). It reports (SPEC §13, issue 12):
//   - p50/p99/max of result → row latency: a trigger stamps every status
//     row with clock_timestamp() as it is inserted, compared with the
//     result's time (the start of its run);
//   - p99 of visible lag: once a second, now() − the newest committed
//     result time, which includes the commit;
//   - the rate of rows stored in the window (every result, none lost);
//   - memory: the live Go heap (marked by the last GC: the in-use heap's
//     GC sawtooth would hide growth or fake it) and RSS, sampled every
//     10 s: the lowest sample of the last third of the window over the
//     lowest of the first third (100 = no growth).
//
// RECON_SOAK_SINK adds keys to the sink's table (e.g. "batch_size = 5000")
// and RECON_SOAK_PG server settings (e.g. "max_wal_size=4GB,shared_buffers=1GB")
// to try settings; -v prints a timeline of lag, spool depth and memory.
func BenchmarkSoakPostgres(b *testing.B) {
	dur := 10 * time.Minute
	if v := os.Getenv("RECON_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("RECON_SOAK: %v", err)
		}
		dur = d
	}
	const checks = 10_000
	const warmup = time.Minute
	ctx := context.Background()
	for range b.N {
		pgSettings := map[string]string{}
		for _, kv := range strings.Split(os.Getenv("RECON_SOAK_PG"), ",") {
			if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
				pgSettings[k] = v
			}
		}
		pgc := pgtest.Start(b, pgtest.Options{Fsync: true, Settings: pgSettings})
		dsn := pgc.NewDatabase(b)
		// The schema exists before the agent starts so that the stamp
		// trigger sees every row.
		st, err := postgres.Open(ctx, postgres.Settings{DSN: dsn}, nil)
		if err != nil {
			b.Fatal(err)
		}
		st.Close()
		db, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close(ctx)
		if _, err := db.Exec(ctx, `ALTER TABLE recon.status ADD COLUMN ingested_at timestamptz;
			CREATE FUNCTION recon.soak_stamp() RETURNS trigger LANGUAGE plpgsql AS
			$$BEGIN NEW.ingested_at := clock_timestamp(); RETURN NEW; END$$;
			CREATE TRIGGER soak_stamp BEFORE INSERT ON recon.status FOR EACH ROW EXECUTE FUNCTION recon.soak_stamp();`); err != nil {
			b.Fatal(err)
		}

		dir := b.TempDir()
		script := filepath.Join(dir, "soak.lua")
		if err := os.WriteFile(script, []byte(soakScript), 0o644); err != nil {
			b.Fatal(err)
		}
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "[agent]\nlisten = \"127.0.0.1:0\"\ndata_dir = %q\n\n[[sink]]\ntype = \"postgres\"\ndsn = %q\n%s", filepath.Join(dir, "data"), dsn, os.Getenv("RECON_SOAK_SINK"))
		for i := range checks {
			fmt.Fprintf(&cfg, "\n[[check]]\nname = \"soak-%05d\"\ntype = \"lua\"\nscript = %q\nperiod = \"1s\"\n", i, script)
		}
		cfgPath := filepath.Join(dir, "recon.toml")
		if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		p := startAgent(b, cfgPath)
		api := "http://" + apiAddr(b, p)
		// Warm-up: a minute, then until the start-up backlog (10,000
		// checks created, cold caches, first rows of every index) has
		// drained to under a second's worth, so the window measures the
		// steady state; at most two minutes more.
		warmStart := time.Now()
		var warm strings.Builder
		for {
			time.Sleep(10 * time.Second)
			m, err := scrape(api + "/metrics")
			if err != nil {
				b.Fatalf("scrape: %v", err)
			}
			fmt.Fprintf(&warm, "  %4.0fs spool %6.0f\n", time.Since(warmStart).Seconds(), m["recon_spool_depth"])
			if since := time.Since(warmStart); since >= warmup && m["recon_spool_depth"] < checks || since >= warmup+2*time.Minute {
				break
			}
		}
		b.Logf("warm-up %.0f s:\n%s", time.Since(warmStart).Seconds(), warm.String())

		cpu := &cpuSampler{agent: p.cmd.Process.Pid, pgDataDir: filepath.Join(pgc.Dir, "data"), db: db}
		waits := map[string][2]int{}
		var heap, rss []float64
		var lags []time.Duration
		var timeline strings.Builder
		var t0 time.Time
		sample := func() {
			m, err := scrape(api + "/metrics")
			if err != nil {
				b.Fatalf("scrape: %v", err)
			}
			kb, _, err := rssKB(p.cmd.Process.Pid)
			if err != nil {
				b.Fatal(err)
			}
			heap = append(heap, m["go_gc_heap_live_bytes"])
			rss = append(rss, float64(kb)/1024)
			var lag time.Duration
			if len(lags) > 0 {
				lag = lags[len(lags)-1]
			}
			// The kernel's dirty and in-writeback page cache and the
			// checkpoints so far: commit stalls follow writeback storms.
			var ckpts int64
			if err := db.QueryRow(ctx, `SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter`).Scan(&ckpts); err != nil {
				b.Fatal(err)
			}
			dirty, wb := meminfoMB("Dirty:"), meminfoMB("Writeback:")
			// Who had the CPUs (percent of one CPU): the agent, Postgres
			// by process kind, the rest of the shared machine, steal.
			use, err := cpu.sample(ctx)
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(&timeline, "  %4.0fs lag %6v spool %6.0f live heap %5.1f MB rss %5.1f MB late %.0f dirty %4.0f MB writeback %4.0f MB checkpoints %d\n         cpu%%: %s\n", time.Since(t0).Seconds(),
				lag.Round(time.Millisecond), m["recon_spool_depth"], heap[len(heap)-1]/1e6, rss[len(rss)-1], m["recon_check_late_total"], dirty, wb, ckpts, use)
		}
		before, err := scrape(api + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		sample()
		tick := time.NewTicker(time.Second)
		for n := 1; time.Since(t0) < dur; n++ {
			<-tick.C
			var lag float64
			// The newest result committed; the window is short so the
			// ts index answers it at once.
			if err := db.QueryRow(ctx, `SELECT coalesce(extract(epoch FROM clock_timestamp() - max(ts)), 0)::float8
				FROM recon.status WHERE ts > now() - interval '1 minute'`).Scan(&lag); err != nil {
				b.Fatal(err)
			}
			lags = append(lags, time.Duration(lag*float64(time.Second)))
			// What the agent's Postgres backends wait for, overall and
			// while results are late (lag over 500 ms).
			if err := sampleWaits(ctx, db, waits, lag > 0.5); err != nil {
				b.Fatal(err)
			}
			if n%10 == 0 {
				sample()
			}
		}
		tick.Stop()
		t1 := time.Now()
		after, err := scrape(api + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		// Let the spool catch up with the checks, which keep running
		// (bounded), so that a shortfall below means results lost, not
		// results still queued: less than a second's worth left, then a
		// few seconds more.
		drainStart := time.Now()
		for time.Since(drainStart) < 5*time.Minute {
			time.Sleep(2 * time.Second)
			m, err := scrape(api + "/metrics")
			if err != nil {
				b.Fatal(err)
			}
			if m["recon_spool_depth"] < checks {
				break
			}
		}
		time.Sleep(3 * time.Second)
		b.ReportMetric(time.Since(drainStart).Seconds(), "drain_s")
		var rows int64
		var p50, p99, pmax float64
		if err := db.QueryRow(ctx, `SELECT count(*),
				coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - ts)), 0)::float8,
				coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - ts)), 0)::float8,
				coalesce(max(extract(epoch FROM ingested_at - ts)), 0)::float8
			FROM recon.status WHERE ts >= $1 AND ts < $2`, t0, t1).Scan(&rows, &p50, &p99, &pmax); err != nil {
			b.Fatal(err)
		}
		// Where the tail is: the seconds of the window whose results took
		// over 500 ms (a burst points at an event, a spread at the path).
		var slow strings.Builder
		rows2, err := db.Query(ctx, `SELECT floor(extract(epoch FROM ts - $1::timestamptz))::int, count(*),
				max(extract(epoch FROM ingested_at - ts))::float8
			FROM recon.status WHERE ts >= $1 AND ts < $2 AND ingested_at - ts > interval '500 ms' GROUP BY 1 ORDER BY 1`, t0, t1)
		if err != nil {
			b.Fatal(err)
		}
		for rows2.Next() {
			var sec, n int
			var worst float64
			if err := rows2.Scan(&sec, &n, &worst); err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(&slow, " %ds:%d/%.1fs", sec, n, worst)
		}
		if err := rows2.Err(); err != nil {
			b.Fatal(err)
		}
		b.Logf("seconds with results over 500 ms (second:results/worst):%s", slow.String())
		// What the server did meanwhile (checkpoints are the usual cause
		// of commit stalls under a steady write load).
		var ckTimed, ckReq int64
		var ckWrite, ckSync float64
		var walBytes float64
		if err := db.QueryRow(ctx, `SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time,
				(SELECT wal_bytes FROM pg_stat_wal)::float8 FROM pg_stat_bgwriter`).Scan(&ckTimed, &ckReq, &ckWrite, &ckSync, &walBytes); err != nil {
			b.Logf("pg_stat_bgwriter: %v", err)
		}
		var upd, hot int64
		if err := db.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE schemaname = 'recon' AND relname = 'check'`).Scan(&upd, &hot); err != nil {
			b.Logf("pg_stat_user_tables: %v", err)
		}
		b.Logf("check rows: %d updates, %d of them HOT (no index entries)", upd, hot)
		b.Logf("what the agent's backends waited for, once a second (all seconds / seconds with lag > 500 ms):\n%s", fmtWaits(waits))
		b.Logf("postgres: %d timed + %d requested checkpoints (write %.1f s, sync %.1f s), %.0f MB of WAL", ckTimed, ckReq, ckWrite/1000, ckSync/1000, walBytes/1e6)
		window := t1.Sub(t0).Seconds()
		late := after["recon_check_late_total"] - before["recon_check_late_total"]
		// Every check runs once a second: a shortfall is a result lost or
		// never run (late runs are counted by the scheduler).
		if want := float64(checks) * window; float64(rows) < 0.995*want-late {
			b.Errorf("%d status rows in %.0f s, want %.0f (%.0f runs late)", rows, window, want, late)
		}
		sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
		b.ReportMetric(float64(rows)/window, "results/s")
		b.ReportMetric(p50*1000, "p50_ms")
		b.ReportMetric(p99*1000, "p99_ms")
		b.ReportMetric(pmax*1000, "max_ms")
		b.ReportMetric(float64(lags[len(lags)*99/100].Milliseconds()), "lag_p99_ms")
		b.ReportMetric(late, "late_runs")
		b.ReportMetric(after["recon_spool_depth"], "spool_depth_end")
		b.ReportMetric(growth(heap), "heap_growth_%")
		b.ReportMetric(growth(rss), "rss_growth_%")
		b.ReportMetric(rss[len(rss)-1], "rss_MB")
		b.ReportMetric(window, "window_s")
		b.Logf("soak %.0f s: %d rows, heap %.1f → %.1f MB, rss %.1f → %.1f MB\n%s", window, rows,
			heap[0]/1e6, heap[len(heap)-1]/1e6, rss[0], rss[len(rss)-1], timeline.String())
	}
	b.ReportMetric(0, "ns/op")
}

// meminfoMB reads one field of /proc/meminfo in MB (-1 if unreadable).
func meminfoMB(field string) float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return -1
			}
			return kb / 1024
		}
	}
	return -1
}

// sampleWaits counts the active backends of the agent (application_name
// recon) and autovacuum workers by wait event into waits[event][0], and also into [1] when late.
func sampleWaits(ctx context.Context, db *pgx.Conn, waits map[string][2]int, late bool) error {
	// By wait event and statement (the first words: COPY, the applier's
	// recomputation, the check upsert, autovacuum's table …), to tell
	// which is busy.
	rows, err := db.Query(ctx, `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') || ' ' ||
			left(regexp_replace(query, '\s+', ' ', 'g'), 60) FROM pg_stat_activity
		WHERE (application_name = 'recon' OR backend_type = 'autovacuum worker') AND state NOT IN ('idle')`)
	if err != nil {
		return err
	}
	evs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, e := range evs {
		w := waits[e]
		w[0]++
		if late {
			w[1]++
		}
		waits[e] = w
	}
	return nil
}

func fmtWaits(waits map[string][2]int) string {
	keys := make([]string, 0, len(waits))
	for k := range waits {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return waits[keys[i]][0] > waits[keys[j]][0] })
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "  %-72s %6d %6d\n", k, waits[k][0], waits[k][1])
	}
	return sb.String()
}

// growth compares the floor (lowest sample) of the last third of s with
// that of the first third, in percent. A leak raises the floor; a
// moment's backlog (results decoded from the spool, batches in flight)
// only raises single samples, which a comparison of end points would
// take for growth.
func growth(s []float64) float64 {
	k := len(s) / 3
	if k == 0 {
		return 0
	}
	first, last := slices.Min(s[:k]), slices.Min(s[len(s)-k:])
	if first == 0 {
		return 0
	}
	return 100 * last / first
}

// scrape reads a Prometheus text exposition into name → value, summing
// the series of a name (labels dropped).
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// Label values may hold spaces: the value follows the '}'.
			j := strings.LastIndexByte(line, '}')
			name, rest = line[:i], strings.TrimSpace(line[j+1:])
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out, sc.Err()
}
