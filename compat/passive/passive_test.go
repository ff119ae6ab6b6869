package passive

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/scheduler"
)

func TestParseCommand(t *testing.T) {
	c, err := ParseCommand("[1700000000] PROCESS_SERVICE_CHECK_RESULT;web1;HTTP;2;CRITICAL - down; really|time=5s;1;2\\nsecond line")
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "web1" || c.Service != "HTTP" || c.Status != model.Critical || !c.Time.Equal(time.Unix(1700000000, 0)) ||
		c.Output != "CRITICAL - down; really|time=5s;1;2\nsecond line" {
		t.Errorf("%+v", c)
	}
	c, err = ParseCommand("PROCESS_HOST_CHECK_RESULT;db1;1;host down")
	if err != nil || c.Service != "" || c.Status != model.Critical || c.Output != "host down" || !c.Time.IsZero() {
		t.Errorf("%+v %v", c, err)
	}
	bad := map[string]string{
		"":                                      "empty",
		"[abc] PROCESS_HOST_CHECK_RESULT;h;0;x": "invalid timestamp",
		"[123 PROCESS_HOST_CHECK_RESULT;h;0;x":  "unterminated",
		"SCHEDULE_FORCED_SVC_CHECK;h;s;1":       "not supported",
		"PROCESS_SERVICE_CHECK_RESULT;h;s":      "want host;service;code;output",
		"PROCESS_SERVICE_CHECK_RESULT;h;s;7;x":  "return code",
		"PROCESS_HOST_CHECK_RESULT;h;3;x":       "host state",
		"PROCESS_SERVICE_CHECK_RESULT;;s;0;x":   "host name is empty",
		"PROCESS_HOST_CHECK_RESULT;h":           "want host;code;output",
	}
	for in, want := range bad {
		if _, err := ParseCommand(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	f.Add("[1] PROCESS_SERVICE_CHECK_RESULT;h;s;0;OK|a=1")
	f.Add("PROCESS_HOST_CHECK_RESULT;h;2;x")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCommand(s)
		if err == nil && (c.Host == "" || !c.Status.Valid()) {
			t.Fatalf("invalid command accepted: %+v", c)
		}
	})
}

type collector struct {
	mu sync.Mutex
	rs []model.Result
}

func (c *collector) emit(_ context.Context, r model.Result) error {
	c.mu.Lock()
	c.rs = append(c.rs, r)
	c.mu.Unlock()
	return nil
}

func (c *collector) get() []model.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]model.Result(nil), c.rs...)
}

func passiveCheck(t *testing.T, name string, freshness time.Duration) scheduler.Job {
	c := &model.Check{ID: model.CheckID("a", name), Name: name, Type: "passive", Period: time.Minute,
		Timeout: time.Second, MaxAttempts: 1, Settings: &Settings{Freshness: config.Duration(freshness)}}
	r, err := Type{}.Prepare(c)
	if err != nil {
		t.Fatal(err)
	}
	return scheduler.Job{Check: c, Runner: r}
}

func TestReceiverFIFOAndSocket(t *testing.T) {
	var col collector
	s := scheduler.New(scheduler.Options{Emit: col.emit, Agent: "a"})
	s.Update([]scheduler.Job{passiveCheck(t, "web1/HTTP", 0), passiveCheck(t, "db1", 0)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, time.Second)
	dir := t.TempDir()
	cfg := Config{CommandFile: filepath.Join(dir, "recon.cmd"), Socket: filepath.Join(dir, "recon.sock")}
	r, err := NewReceiver(cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The way Nagios users do it: echo into the command file.
	f, err := os.OpenFile(cfg.CommandFile, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("[1700000000] PROCESS_SERVICE_CHECK_RESULT;web1;HTTP;1;WARNING - slow|time=3.5s;2;5\n")
	f.WriteString("PROCESS_SERVICE_CHECK_RESULT;nohost;HTTP;0;OK\n")
	f.Close()
	c, err := net.Dial("unix", cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("PROCESS_HOST_CHECK_RESULT;db1;1;DOWN - no ping\n"))
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(col.get()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	rs := col.get()
	if len(rs) != 2 {
		t.Fatalf("results: %+v", rs)
	}
	byName := map[string]model.Result{}
	for _, r := range rs {
		byName[r.Check] = r
	}
	web := byName["web1/HTTP"]
	if web.Status != model.Warning || web.Output != "WARNING - slow" || len(web.Metrics) != 1 || web.Metrics[0].Unit != "s" ||
		!web.Time.Equal(time.Unix(1700000000, 0)) || web.Agent != "a" {
		t.Errorf("web: %+v", web)
	}
	if db := byName["db1"]; db.Status != model.Critical || db.Output != "DOWN - no ping" {
		t.Errorf("db: %+v", db)
	}
	deadline = time.Now().Add(2 * time.Second)
	for r.Stats().UnknownCheck != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := r.Stats(); st.Accepted != 2 || st.UnknownCheck != 1 {
		t.Errorf("stats: %+v", st)
	}
}

func TestPrepareErrors(t *testing.T) {
	_, err := Type{}.Prepare(&model.Check{Settings: &Settings{StaleStatus: "BAD"}})
	if err == nil || !strings.Contains(err.Error(), "stale_status") {
		t.Errorf("%v", err)
	}
	if _, err := NewReceiver(Config{}, nil, nil); err == nil {
		t.Error("empty config accepted")
	}
	p := filepath.Join(t.TempDir(), "regular")
	os.WriteFile(p, nil, 0o600)
	r, _ := NewReceiver(Config{CommandFile: p}, nil, nil)
	if err := r.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "not a FIFO") {
		t.Errorf("regular file as command file: %v", err)
	}
}
