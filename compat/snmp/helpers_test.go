package snmp

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/testutil"
)

// collector is a publish function that keeps what it gets.
type collector struct {
	mu  sync.Mutex
	rs  []model.Result
	err error // returned by publish when set
}

func (c *collector) publish(_ context.Context, rs ...model.Result) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.rs = append(c.rs, rs...)
	return nil
}

func (c *collector) results() []model.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]model.Result(nil), c.rs...)
}

// wait returns once n results arrived, failing the test after timeout.
func (c *collector) wait(t testing.TB, n int, timeout time.Duration) []model.Result {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rs := c.results()
		if len(rs) >= n {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d results, want %d", len(rs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// startReceiver starts a receiver on a free port of 127.0.0.1.
func startReceiver(t testing.TB, cfg ReceiverConfig) (*Receiver, *collector, string) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	c := &collector{}
	r, err := NewReceiver(cfg, c.publish, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, c, r.Addr().String()
}

// netsnmp runs a net-snmp command-line tool with a private configuration
// and persistent directory, so the machine's snmp.conf does not matter.
// It returns combined output and the exit code.
func netsnmp(t testing.TB, tool string, args ...string) (string, int) {
	t.Helper()
	bin := testutil.RequireBinary(t, tool)
	out, code, err := runNetSNMP(t.TempDir(), bin, args...)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return out, code
}

func runNetSNMP(dir, bin string, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SNMPCONFPATH="+dir, "SNMP_PERSISTENT_DIR="+dir, "HOME="+dir, "MIBS=", "MIBDIRS="+dir)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode(), nil
	}
	return string(out), 0, err
}

// metric returns the named metric of r.
func metric(r model.Result, name string) (model.Metric, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return model.Metric{}, false
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
