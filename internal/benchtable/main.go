// Command benchtable runs recon's benchmarks (`make bench`) and prints one
// table: each SPEC §13 figure, recon's value, the peer baseline measured in
// the same run, their ratio, the target and pass/fail. The table is also
// written to docs/benchmarks.md with a description of the machine.
//
// Each benchmark runs -count times with recon and its baseline as
// sub-benchmarks of one function, so the two alternate and share the
// machine's state; the median of the runs is reported. Machines are shared
// and noisy: ratios, not absolute figures, are what the targets compare.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// metric selects one reported value of a benchmark line.
type metric struct {
	bench string // full benchmark name without the -N suffix
	unit  string // reported unit, e.g. "execs/s"
}

// row is one line of the table.
type row struct {
	figure    string
	pkg       string
	run       string // -bench regexp
	benchtime string
	recon     metric
	baseline  *metric // nil: compare with the absolute target
	// absolute: the target bounds recon's value even though a baseline
	// is shown (the SPEC states the figure, the peer gives context).
	absolute bool
	higher   bool // higher is better
	// target: for a baseline, the minimum (or maximum) ratio; else the
	// absolute bound on recon's value.
	target  float64
	unit    string // how to print values
	targetS string
	// count overrides -count (a ten-minute soak runs once); rows with the
	// same package, -bench, -benchtime and count share one run.
	count int
}

var rows = []row{
	{figure: "Nagios plugin executions (check_dummy, 2-way)", pkg: "./compat/nagios/", run: "^Benchmark(Exec|RawOSExec)CheckDummy$", benchtime: "2s",
		recon: metric{"BenchmarkExecCheckDummy", "execs/s"}, baseline: &metric{"BenchmarkRawOSExecCheckDummy", "execs/s"},
		higher: true, target: 0.90, unit: "execs/s", targetS: ">= 90% of raw os/exec"},
	{figure: "Postgres ingest, metric rows (same table and indexes, idempotent)", pkg: "./sinks/postgres/", run: "^BenchmarkPostgresIngest$", benchtime: "4x",
		recon: metric{"BenchmarkPostgresIngest", "recon_rows/s"}, baseline: &metric{"BenchmarkPostgresIngest", "psql_rows/s"},
		higher: true, target: 0.80, unit: "rows/s", targetS: ">= 80% of psql \\copy"},
	{figure: "SQLite ingest (embedded default store), metric rows", pkg: "./sinks/sqlite/", run: "^BenchmarkSQLiteIngest$", benchtime: "4x",
		recon: metric{"BenchmarkSQLiteIngest", "recon_rows/s"}, baseline: &metric{"BenchmarkSQLiteIngest", "sqlite3_rows/s"},
		absolute: true, higher: true, target: 100000, unit: "rows/s", targetS: ">= 100,000/s (sqlite3 .import shown)"},
	{figure: "End to end agent → NATS → ingest → Postgres, p99 at 10,000 results/s", pkg: "./sinks/nats/", run: "^BenchmarkEndToEnd$/latency_10k", benchtime: "1x",
		recon: metric{"BenchmarkEndToEnd/latency_10k", "p99_ms"}, higher: false, target: 1000, unit: "ms", targetS: "p99 < 1 s"},
	{figure: "End to end throughput (2 ingesters)", pkg: "./sinks/nats/", run: "^BenchmarkEndToEnd$/throughput", benchtime: "1x",
		recon: metric{"BenchmarkEndToEnd/throughput", "results/s"}, higher: true, target: 10000, unit: "results/s", targetS: ">= 10,000/s"},
	{figure: "NRPE requests served (check_dummy, 4 clients)", pkg: "./compat/nrpe/", run: "^BenchmarkNRPERequests$", benchtime: "2s",
		recon: metric{"BenchmarkNRPERequests/recon", "requests/s"}, baseline: &metric{"BenchmarkNRPERequests/nrpe", "requests/s"},
		higher: true, target: 1.0, unit: "requests/s", targetS: ">= the real nrpe"},
	{figure: "Spool append+fsync, 64 producers (group commit)", pkg: "./agent/pipeline/spool/", run: "^BenchmarkAppendFsyncParallel$/^fsync=always$", benchtime: "2s",
		recon: metric{"BenchmarkAppendFsyncParallel/fsync=always", "results/s"}, higher: true, target: 50000, unit: "results/s", targetS: ">= 50,000/s"},
	{figure: "Alert rule evaluations (1,000 rules × 10,000 series)", pkg: "./sinks/alerter/", run: "^BenchmarkRuleEvaluations$", benchtime: "3000x",
		recon: metric{"BenchmarkRuleEvaluations", "evals/s"}, higher: true, target: 100000, unit: "evals/s", targetS: ">= 100,000/s"},
	{figure: "Lua checks, trivial script (runner, all CPUs)", pkg: "./lua/", run: "^Benchmark(TrivialCheck|BaselineNewLState)$", benchtime: "2s",
		recon: metric{"BenchmarkTrivialCheck", "results/s"}, baseline: &metric{"BenchmarkBaselineNewLState", "results/s"},
		absolute: true, higher: true, target: 100000, unit: "results/s", targetS: ">= 100,000/s (new LState per run shown)"},
	{figure: "Lua checks through the scheduler (10,000 checks, trivial script)", pkg: "./lua/", run: "^BenchmarkLuaThroughScheduler$", benchtime: "400000x",
		recon: metric{"BenchmarkLuaThroughScheduler", "results/s"}, higher: true, target: 100000, unit: "results/s", targetS: ">= 100,000/s"},
	{figure: "100,000 scheduled Lua checks: heap per check", pkg: "./lua/", run: "^BenchmarkLuaScale100k$", benchtime: "1x",
		recon: metric{"BenchmarkLuaScale100k", "bytes/check"}, higher: false, target: 4096, unit: "B", targetS: "< 4 KB per check"},
	{figure: "100,000 scheduled Lua checks at 10,000 runs/s: dispatch jitter p99", pkg: "./lua/", run: "^BenchmarkLuaScale100k$", benchtime: "1x",
		recon: metric{"BenchmarkLuaScale100k", "jitter_p99_ms"}, higher: false, target: 100, unit: "ms", targetS: "< 100 ms (no SPEC figure)"},
	{figure: "Plugin checks, batched RunMany (SDK example, 1,000 per batch)", pkg: "./plugins/host/", run: "^BenchmarkRunMany$/sdk", benchtime: "2s",
		recon: metric{"BenchmarkRunMany/sdk", "results/s"}, higher: true, target: 100000, unit: "results/s", targetS: ">= 100,000/s"},
	{figure: "Plugin checks through the scheduler (10,000 checks, runs coalesced into RunStream)", pkg: "./plugins/host/", run: "^BenchmarkThroughScheduler$", benchtime: "400000x",
		recon: metric{"BenchmarkThroughScheduler/coalesced", "results/s"}, baseline: &metric{"BenchmarkThroughScheduler/singly", "results/s"},
		higher: true, target: 2, unit: "results/s", targetS: ">= 2× one Run per check (shown)"},
	{figure: "Plugin check, single Run latency vs raw gRPC round trip", pkg: "./plugins/host/", run: "^BenchmarkRunLatency$", benchtime: "2s",
		recon: metric{"BenchmarkRunLatency/recon", "ns/op"}, baseline: &metric{"BenchmarkRunLatency/raw_grpc", "ns/op"},
		higher: false, target: 2.0, unit: "ns", targetS: "<= 2× raw gRPC"},
	{figure: "SNMP v2c traps, highest lossless rate", pkg: "./compat/snmp/", run: "^BenchmarkTrapsLossless$", benchtime: "1x",
		recon: metric{"BenchmarkTrapsLossless/recon", "traps/s"}, baseline: &metric{"BenchmarkTrapsLossless/snmptrapd", "traps/s"},
		higher: true, target: 2.0, unit: "traps/s", targetS: ">= 2× snmptrapd (tuned)"},
	{figure: "SNMP v2c traps under an unthrottled gosnmp flood, delivered", pkg: "./compat/snmp/", run: "^BenchmarkTrapsFlood$/gosnmp", benchtime: "1x",
		recon: metric{"BenchmarkTrapsFlood/gosnmp/recon", "delivered_%"}, baseline: &metric{"BenchmarkTrapsFlood/gosnmp/snmptrapd", "delivered_%"},
		absolute: true, higher: true, target: 99, unit: "%", targetS: ">= 99% (snmptrapd shown)"},
	{figure: "Idle agent RSS (shipped config, real binary)", pkg: "./cmd/recon/", run: "^BenchmarkIdleRSS$", benchtime: "1x",
		recon: metric{"BenchmarkIdleRSS", "rss_MB"}, higher: false, target: 25, unit: "MB", targetS: "< 25 MB"},
	{figure: "Soak, real agent → Postgres at 10,000 results/s (RECON_SOAK, default 10 min): results stored", pkg: "./cmd/recon/", run: "^BenchmarkSoakPostgres$", benchtime: "1x", count: 1,
		recon: metric{"BenchmarkSoakPostgres", "results/s"}, higher: true, target: 9950, unit: "results/s", targetS: ">= 10,000/s, none lost"},
	{figure: "Soak: result → row latency p99", pkg: "./cmd/recon/", run: "^BenchmarkSoakPostgres$", benchtime: "1x", count: 1,
		recon: metric{"BenchmarkSoakPostgres", "p99_ms"}, target: 1000, unit: "ms", targetS: "p99 < 1 s"},
	{figure: "Soak: newest committed result lag p99 (includes commit)", pkg: "./cmd/recon/", run: "^BenchmarkSoakPostgres$", benchtime: "1x", count: 1,
		recon: metric{"BenchmarkSoakPostgres", "lag_p99_ms"}, target: 1000, unit: "ms", targetS: "p99 < 1 s"},
	{figure: "Soak: live Go heap, floor of the last third vs the first", pkg: "./cmd/recon/", run: "^BenchmarkSoakPostgres$", benchtime: "1x", count: 1,
		recon: metric{"BenchmarkSoakPostgres", "heap_growth_%"}, target: 110, unit: "%", targetS: "no growth (< 110%)"},
	{figure: "Scheduler dispatch (10,000 checks, trivial runner)", pkg: "./agent/scheduler/", run: "^BenchmarkSchedulerThroughput$", benchtime: "400000x",
		recon: metric{"BenchmarkSchedulerThroughput", "results/s"}, higher: true, target: 100000, unit: "results/s", targetS: ">= 100,000/s"},
}

var lineRE = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

// parse extracts unit → values per benchmark from go test output.
func parse(out string) map[string]map[string][]float64 {
	res := map[string]map[string][]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		fields := strings.Fields(m[3])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			if res[m[1]] == nil {
				res[m[1]] = map[string][]float64{}
			}
			res[m[1]][fields[i+1]] = append(res[m[1]][fields[i+1]], v)
		}
	}
	return res
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func fmtNum(v float64) string {
	switch {
	case v >= 1000:
		s := strconv.FormatFloat(v, 'f', 0, 64)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func machine() string {
	var b strings.Builder
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	kernel, _ := exec.Command("uname", "-sr").Output()
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1] + " kB RAM"
	}
	fmt.Fprintf(&b, "%d CPUs (%s), %s, %s, %s", runtime.NumCPU(), cpu, mem, strings.TrimSpace(string(kernel)), runtime.Version())
	return b.String()
}

func main() {
	out := flag.String("out", "", "also write the table to this markdown file")
	count := flag.Int("count", 3, "runs per benchmark (the median is reported)")
	only := flag.String("only", "", "run only rows whose figure contains this text")
	raw := flag.String("raw", filepath.Join(os.TempDir(), "recon-bench"), "keep each go test output here (benchmark logs: the soak's timeline, Postgres counters)")
	flag.Parse()
	if err := os.MkdirAll(*raw, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var table bytes.Buffer
	fmt.Fprintf(&table, "| figure | recon | baseline | ratio | target | result |\n|---|---|---|---|---|---|\n")
	failed := 0
	outputs := map[string][]byte{}
	for _, r := range rows {
		if *only != "" && !strings.Contains(r.figure, *only) {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s\n", r.figure)
		n := *count
		if r.count > 0 {
			n = r.count
		}
		key := strings.Join([]string{r.pkg, r.run, r.benchtime, strconv.Itoa(n)}, " ")
		o, done := outputs[key]
		var err error
		if !done {
			cmd := exec.Command("go", "test", "-v", "-run", "^$", "-bench", r.run, "-benchtime", r.benchtime, "-count", strconv.Itoa(n), "-timeout", "60m", r.pkg)
			cmd.Env = append(os.Environ(), "CI=true")
			o, err = cmd.CombinedOutput()
			if err == nil {
				outputs[key] = o
			}
			name := strings.Trim(strings.NewReplacer("/", "_", "^", "", "$", "", ".", "").Replace(r.pkg+r.run), "_")
			if werr := os.WriteFile(filepath.Join(*raw, name+".log"), o, 0o644); werr != nil {
				fmt.Fprintln(os.Stderr, werr)
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s\n%v\n", o, err)
			fmt.Fprintf(&table, "| %s | error | | | %s | FAIL |\n", r.figure, r.targetS)
			failed++
			continue
		}
		res := parse(string(o))
		rv := median(res[r.recon.bench][r.recon.unit])
		line := fmt.Sprintf("| %s | %s %s |", r.figure, fmtNum(rv), r.unit)
		ok := false
		if r.baseline != nil {
			bv := median(res[r.baseline.bench][r.baseline.unit])
			ratio := 0.0
			if bv > 0 {
				ratio = rv / bv
			}
			switch {
			case r.absolute && r.higher:
				ok = rv >= r.target
			case r.absolute:
				ok = rv > 0 && rv < r.target
			case r.higher:
				ok = ratio >= r.target
			default:
				ok = ratio <= r.target
			}
			line += fmt.Sprintf(" %s %s | %.0f%% | %s |", fmtNum(bv), r.unit, ratio*100, r.targetS)
		} else {
			ok = rv >= r.target
			if !r.higher {
				ok = rv > 0 && rv < r.target
			}
			line += fmt.Sprintf(" | | %s |", r.targetS)
		}
		if rv == 0 {
			ok = false
		}
		verdict := "pass"
		if !ok {
			verdict = "FAIL"
			failed++
		}
		fmt.Fprintf(&table, "%s %s |\n", line, verdict)
	}
	fmt.Print(table.String())
	fmt.Fprintf(os.Stderr, "go test outputs (with the benchmarks' logs) are in %s\n", *raw)
	if *out != "" {
		doc := fmt.Sprintf("# Benchmarks\n\nGenerated by `make bench` on %s.\n\nMachine: %s.\n\nEach figure is the median of %d runs; "+
			"a baseline is measured in the same run, alternating with recon. The soak runs once, for RECON_SOAK (default 10 min) "+
			"after a warm-up (a minute, then until the start-up backlog has drained). Targets are SPEC §13.\n\n%s",
			time.Now().UTC().Format("2006-01-02"), machine(), *count, table.String())
		if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "%d figures miss their target\n", failed)
	}
}
