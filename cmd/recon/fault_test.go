package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reconmon/recon/internal/testutil"
)

// apiAddr waits for the agent's "API listening" log line and returns the
// address.
func apiAddr(t testing.TB, p *agentProc) string {
	re := regexp.MustCompile(`msg="API listening" component=api addr=(\S+)`)
	var addr string
	waitFor(t, "API address", 20*time.Second, func() bool {
		if m := re.FindStringSubmatch(p.log()); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	return addr
}

func leftovers(marker string) int {
	out, _ := exec.Command("pgrep", "-f", marker).Output()
	return len(strings.Fields(string(out)))
}

// TestThousandChecksTimingOut: 1,000 checks that hang time out together;
// every one reports UNKNOWN, the agent stays responsive, and no plugin
// process is left behind.
func TestThousandChecksTimingOut(t *testing.T) {
	testutil.RequireBinary(t, "pgrep")
	dir := t.TempDir()
	out := filepath.Join(dir, "out.lp")
	marker := fmt.Sprintf("600.%d", time.Now().UnixNano()%1000000)
	var b strings.Builder
	fmt.Fprintf(&b, "[agent]\nlisten = \"127.0.0.1:0\"\ndata_dir = %q\nmax_concurrency = 1000\nshutdown_grace = \"2s\"\n", dir+"/data")
	n := 1000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "[[check]]\nname = \"hang%d\"\ntype = \"nagios\"\ncommand = \"/bin/sleep %s\"\nperiod = \"5s\"\ntimeout = \"1s\"\nmax_attempts = 1\n", i, marker)
	}
	fmt.Fprintf(&b, "[[sink]]\ntype = \"lineproto\"\noutput = \"file\"\npath = %q\nfsync = \"never\"\n", out)
	cfgPath := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfgPath, []byte(b.String()), 0o644)
	p := startAgent(t, cfgPath)
	addr := apiAddr(t, p)
	deadline := time.Now().Add(60 * time.Second)
	for countLines(out, "status_code=3i") < n && time.Now().Before(deadline) {
		// The API answers while the checks hang and are killed.
		start := time.Now()
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("API not responsive: %v", err)
		}
		resp.Body.Close()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("healthz took %v", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := countLines(out, "status_code=3i"); got < n {
		t.Fatalf("%d of %d timed-out checks reported UNKNOWN", got, n)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	time.Sleep(200 * time.Millisecond)
	if left := leftovers(marker); left > 0 {
		exec.Command("pkill", "-f", marker).Run()
		t.Fatalf("%d plugin processes left behind", left)
	}
}

// TestDiskFullDataDir: the spool's file system fills up while the sink is
// down; the agent applies backpressure and reports it, never crashes, and
// recovers when the sink drains the spool.
func TestDiskFullDataDir(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.MissingPeer(t, "root (to mount a small tmpfs as data_dir)")
	}
	dummy := testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_dummy")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", data).CombinedOutput(); err != nil {
		testutil.MissingPeer(t, "mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", "-l", data).Run()
	var up atomic.Bool
	var mu sync.Mutex
	received := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		received += strings.Count(string(b), "\n")
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	// Results with big outputs fill 1 MiB quickly.
	longOut := strings.Repeat("x", 2000)
	cfgPath := filepath.Join(dir, "recon.toml")
	var b strings.Builder
	fmt.Fprintf(&b, "[agent]\nlisten = \"127.0.0.1:0\"\ndata_dir = %q\n", data)
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "[[check]]\nname = \"c%d\"\ntype = \"nagios\"\ncommand = \"%s 0 '%s'\"\nperiod = \"50ms\"\n", i, dummy, longOut)
	}
	fmt.Fprintf(&b, "[[sink]]\ntype = \"lineproto\"\noutput = \"http\"\nurl = %q\n", srv.URL+"/write")
	os.WriteFile(cfgPath, []byte(b.String()), 0o644)
	p := startAgent(t, cfgPath)
	addr := apiAddr(t, p)
	metric := func(name string) float64 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatalf("agent gone: %v\n%s", err, p.log())
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`).FindStringSubmatch(string(body))
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		return v
	}
	waitFor(t, "the spool to hit ENOSPC", 60*time.Second, func() bool { return metric("recon_spool_append_errors_total") > 0 })
	if !strings.Contains(p.log(), "no space left on device") {
		t.Errorf("ENOSPC not reported in the log")
	}
	time.Sleep(time.Second)
	if late := metric("recon_check_late_total"); late == 0 {
		t.Error("no backpressure: no check was held back")
	}
	// The sink comes back: the spool drains and checks flow again.
	up.Store(true)
	waitFor(t, "the spool to drain", 60*time.Second, func() bool { return metric("recon_spool_depth") < 50 })
	mu.Lock()
	before := received
	mu.Unlock()
	waitFor(t, "new results after recovery", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return received > before+100
	})
	select {
	case <-p.done:
		t.Fatalf("agent exited:\n%s", p.log())
	default:
	}
}
