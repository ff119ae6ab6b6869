package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/testutil"
	"github.com/reconmon/recon/internal/testutil/pgtest"
	"github.com/reconmon/recon/sinks/postgres"
)

// natsTestServer is an embedded NATS server with JetStream that can be
// restarted on the same port and store directory.
type natsTestServer struct {
	t    *testing.T
	dir  string
	port int
	srv  *server.Server
}

func startNATSServer(t *testing.T) *natsTestServer {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	n := &natsTestServer{t: t, dir: t.TempDir(), port: port}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *natsTestServer) start() {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: n.port, JetStream: true, StoreDir: n.dir, NoLog: true, NoSigs: true})
	if err != nil {
		n.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		n.t.Fatal("nats-server not ready")
	}
	n.srv = s
}

func (n *natsTestServer) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// TestScaleOutExactlyOnce: three agents publish through NATS JetStream,
// two ingesters write into Postgres; one ingester is kill -9ed and NATS is
// restarted mid-run. Every result lands exactly once and both ingesters
// did work.
func TestScaleOutExactlyOnce(t *testing.T) {
	testutil.RequireBinary(t, "flock")
	pgc := pgtest.Start(t, pgtest.Options{})
	dsn := pgc.DSN("postgres")
	ns := startNATSServer(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", ns.port)
	dir := t.TempDir()
	bin := reconBinary(t)

	type proc struct {
		cmd     *exec.Cmd
		counter string
		log     string
	}
	spawn := func(name string, args ...string) *exec.Cmd {
		logf, _ := os.Create(filepath.Join(dir, name+".log"))
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
		return cmd
	}
	var agents []proc
	for i := 1; i <= 3; i++ {
		adir := filepath.Join(dir, fmt.Sprint("agent", i))
		os.MkdirAll(adir, 0o755)
		plugin, counter := seqPlugin(t, adir)
		cfg := filepath.Join(adir, "recon.toml")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
name = "agent%d"
listen = "127.0.0.1:0"
data_dir = %q
[[check]]
name = "seq"
type = "nagios"
command = %q
period = "50ms"
[[sink]]
type = "nats"
url = %q
batch_size = 20
`, i, filepath.Join(adir, "data"), plugin, url)), 0o644)
		agents = append(agents, proc{cmd: spawn(fmt.Sprint("agent", i), "agent", "-c", cfg, "--log-level", "warn"), counter: counter})
	}
	ingestCfg := filepath.Join(dir, "ingest.toml")
	os.WriteFile(ingestCfg, []byte(fmt.Sprintf(`
[agent]
name = "ingest"
log_level = "debug"
data_dir = %q
[ingest]
url = %q
batch = 50
max_wait = "200ms"
ack_wait = "5s"
[[sink]]
type = "postgres"
dsn = %q
`, filepath.Join(dir, "ingestdata"), url, dsn)), 0o644)
	ing1 := spawn("ingest1", "ingest", "-c", ingestCfg)
	spawn("ingest2", "ingest", "-c", ingestCfg)

	ctx := context.Background()
	var st *postgres.Store
	waitStore := func() *postgres.Store {
		deadline := time.Now().Add(30 * time.Second)
		for st == nil && time.Now().Before(deadline) {
			if s, err := postgres.Open(ctx, postgres.Settings{DSN: dsn}, nil); err == nil {
				st = s
			} else {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if st == nil {
			t.Fatal("store never came up")
		}
		return st
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	perAgent := func() map[string]map[int]int {
		out := map[string]map[int]int{}
		waitStore().Replay(ctx, time.Unix(0, 0), time.Now().Add(time.Hour), func(r model.Result) error {
			if out[r.Agent] == nil {
				out[r.Agent] = map[int]int{}
			}
			// Key 0: runs that timed out, each of which may have taken a
			// number from the counter without reporting it.
			if r.Status == model.Unknown && strings.Contains(r.Output, "timed out") {
				out[r.Agent][0]++
			}
			for _, m := range r.Metrics {
				if m.Name == "seq" {
					v, _ := m.Value.Float()
					out[r.Agent][int(v)]++
				}
			}
			return nil
		})
		return out
	}
	waitCount := func(what string, f func(map[string]map[int]int) bool) {
		deadline := time.Now().Add(60 * time.Second)
		for !f(perAgent()) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitCount("data from all agents", func(m map[string]map[int]int) bool {
		return len(m["agent1"]) > 20 && len(m["agent2"]) > 20 && len(m["agent3"]) > 20
	})
	// kill -9 an ingester mid-run: its unacknowledged messages are
	// redelivered to the other one.
	ing1.Process.Signal(syscall.SIGKILL)
	ing1.Wait()
	time.Sleep(time.Second)
	// NATS goes down and comes back: agents spool, ingesters reconnect.
	ns.stop()
	time.Sleep(2 * time.Second)
	ns.start()
	// The killed ingester comes back.
	spawn("ingest1b", "ingest", "-c", ingestCfg)
	time.Sleep(3 * time.Second)
	// Stop producing and let everything drain.
	for i := range agents {
		a := &agents[i]
		a.cmd.Process.Signal(syscall.SIGTERM)
		a.cmd.Wait()
	}
	finals := map[string]int{}
	for i, a := range agents {
		finals[fmt.Sprint("agent", i+1)] = readCounter(t, a.counter)
	}
	waitCount("everything ingested", func(m map[string]map[int]int) bool {
		for agent, last := range finals {
			gaps := 0
			for seq := 1; seq < last; seq++ {
				if m[agent][seq] == 0 {
					gaps++
				}
			}
			if gaps > m[agent][0] {
				return false
			}
		}
		return true
	})
	got := perAgent()
	total := 0
	for agent, last := range finals {
		var missing []int
		for seq := 1; seq <= last; seq++ {
			switch n := got[agent][seq]; {
			case n > 1:
				t.Errorf("%s seq %d stored %d times", agent, seq, n)
			case n == 0 && seq < last:
				missing = append(missing, seq)
			}
		}
		if timedOut := got[agent][0]; len(missing) > timedOut {
			t.Errorf("%s: seqs %v lost (only %d explained by runs that timed out)", agent, missing, timedOut)
		}
		for seq := range got[agent] {
			if seq > 0 {
				total++
			}
		}
	}
	// Both ingesters did work (the killed one before its death).
	for _, name := range []string{"ingest1", "ingest2"} {
		b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
		if n := strings.Count(string(b), "batch ingested"); n == 0 {
			t.Errorf("%s ingested nothing", name)
		}
	}
	t.Logf("3 agents, %d results stored exactly once after an ingester kill -9 and a NATS restart", total)
}
