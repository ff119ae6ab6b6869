package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// cpuSampler attributes the machine's CPU time between two samples to the
// agent, Postgres's processes by kind, everything else on the machine, and
// the hypervisor (steal): what a soak stall needs to name its cause on a
// shared machine.
type cpuSampler struct {
	agent      int
	pgDataDir  string
	db         *pgx.Conn
	lastProcs  map[int]uint64 // pid → utime+stime, in clock ticks
	lastStat   []uint64       // /proc/stat cpu line
	lastReaped uint64         // the postmaster's children that exited
}

// sample returns "kind pct …" for the time since the previous call (the
// first call only sets the baseline), in percent of one CPU.
func (c *cpuSampler) sample(ctx context.Context) (string, error) {
	master, err := postmasterPID(c.pgDataDir)
	if err != nil {
		return "", err
	}
	recon := map[int]bool{}
	rows, err := c.db.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = 'recon'`)
	if err != nil {
		return "", err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return "", err
	}
	for _, p := range pids {
		recon[int(p)] = true
	}
	stat, err := procStatCPU()
	if err != nil {
		return "", err
	}
	procs := map[int]uint64{}
	kinds := map[string]float64{}
	var reaped uint64
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, ticks, children, ok := procTicks(pid)
		if !ok {
			continue
		}
		var kind string
		switch {
		case pid == c.agent:
			kind = "agent"
		case pid == master:
			kind, reaped = "pg postmaster", children
		case ppid == master && recon[pid]:
			kind = "pg recon backends"
		case ppid == master:
			kind = "pg " + pgProcessKind(pid)
		default:
			continue
		}
		procs[pid] = ticks
		if c.lastProcs != nil {
			kinds[kind] += float64(ticks - min(ticks, c.lastProcs[pid]))
		}
	}
	defer func() { c.lastProcs, c.lastStat, c.lastReaped = procs, stat, reaped }()
	if c.lastStat == nil {
		return "", nil
	}
	// Postgres children that exited meanwhile (autovacuum workers) are
	// counted by the postmaster, which reaps them.
	kinds["pg exited"] += float64(reaped - min(reaped, c.lastReaped))
	d := make([]float64, len(stat))
	for i := range stat {
		d[i] = float64(stat[i] - min(stat[i], c.lastStat[i]))
	}
	// user nice system idle iowait irq softirq steal
	busy := d[0] + d[1] + d[2] + d[5] + d[6]
	var ours float64
	for _, v := range kinds {
		ours += v
	}
	kinds["other on machine"] = max(0, busy-ours)
	kinds["iowait"], kinds["steal"], kinds["idle"] = d[4], d[7], d[3]
	total := busy + d[3] + d[4] + d[7]
	if total == 0 {
		return "", nil
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return kinds[names[i]] > kinds[names[j]] })
	var sb strings.Builder
	// Percent of one CPU: the machine's total is 100 × its CPUs.
	scale := 100 * float64(cpus()) / total
	for _, k := range names {
		if v := kinds[k] * scale; v >= 1 {
			fmt.Fprintf(&sb, " %s %.0f", k, v)
		}
	}
	return strings.TrimSpace(sb.String()), nil
}

func cpus() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 1
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "cpu") && len(l) > 3 && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}

// procStatCPU reads the machine's cpu line of /proc/stat (clock ticks).
func procStatCPU() ([]uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return nil, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	out := make([]uint64, 8)
	for i := range out {
		if out[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return nil, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	return out, nil
}

// procTicks reads a process's parent, its own CPU time and that of its
// reaped children (clock ticks).
func procTicks(pid int) (ppid int, ticks, children uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name may hold spaces and parentheses: fields follow the
	// last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	// state ppid … utime(14) stime(15) cutime(16) cstime(17), 1-based
	// over the whole line.
	n := func(k int) uint64 { v, _ := strconv.ParseUint(f[k-3], 10, 64); return v }
	ppid, _ = strconv.Atoi(f[1])
	return ppid, n(14) + n(15), n(16) + n(17), true
}

// pgProcessKind names a Postgres child by its process title
// ("postgres: checkpointer", "postgres: autovacuum worker db", a backend's
// "postgres: user db host(port) COPY").
func pgProcessKind(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return "?"
	}
	t := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	t = strings.TrimPrefix(t, "postgres: ")
	for _, k := range []string{"autovacuum worker", "autovacuum launcher", "checkpointer", "background writer", "walwriter", "logical replication launcher", "stats collector"} {
		if strings.HasPrefix(t, k) {
			return k
		}
	}
	return "other backends"
}

func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}
