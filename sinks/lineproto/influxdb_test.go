package lineproto

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/internal/testutil"
)

// influxd is a throwaway InfluxDB 1.x (Debian's influxdb package) on
// loopback ports, its data in a temp dir.
type influxd struct {
	url string // http://127.0.0.1:port
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startInfluxd(t *testing.T, maxBody int) *influxd {
	t.Helper()
	bin := testutil.RequireBinary(t, "influxd")
	dir := t.TempDir()
	port := freePort(t)
	cfg := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
  logging-enabled = false
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:%d"
  log-enabled = false
  max-body-size = %d
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
`, freePort(t), filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), port, maxBody)
	cfgPath := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start influxd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	db := &influxd{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(db.url + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("influxd exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("influxd not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	db.query(t, "", "CREATE DATABASE recon")
	return db
}

// series is one measurement of a query answer.
type series struct {
	Name    string   `json:"name"`
	Columns []string `json:"columns"`
	Raw     [][]any  `json:"values"`
}

func (db *influxd) query(t *testing.T, database, q string) []series {
	t.Helper()
	form := url.Values{"q": {q}, "epoch": {"ns"}}
	if database != "" {
		form.Set("db", database)
	}
	resp, err := http.PostForm(db.url+"/query", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Error  string   `json:"error"`
			Series []series `json:"series"`
		} `json:"results"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber() // int64 values beyond 2^53 must not round
	if err := dec.Decode(&out); err != nil || len(out.Results) != 1 || out.Results[0].Error != "" {
		t.Fatalf("query %q: %v %+v", q, err, out)
	}
	return out.Results[0].Series
}

// rows returns the rows of every series as column -> value, keyed by
// measurement and timestamp.
func rows(ss []series) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, s := range ss {
		for _, vals := range s.Raw {
			row := map[string]any{}
			for i, c := range s.Columns {
				if vals[i] != nil {
					row[c] = vals[i]
				}
			}
			out[fmt.Sprintf("%s@%v", s.Name, row["time"])] = row
		}
	}
	return out
}

// TestRealInfluxDB writes through the sink into a real InfluxDB 1.x and
// reads every point and field back with InfluxQL.
func TestRealInfluxDB(t *testing.T) {
	db := startInfluxd(t, 4096)
	// The peer confirms why names are changed: InfluxDB 1.x rejects a
	// whole write with one unsigned value or a "time" tag.
	for body, want := range map[string]string{"m x=1u 1": "invalid number", "m,time=a x=1 1": "invalid tag key"} {
		resp, err := http.Post(db.url+"/write?db=recon", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(msg), want) {
			t.Fatalf("InfluxDB took %q: %d %s", body, resp.StatusCode, msg)
		}
	}

	statuses := &statusRecorder{next: http.DefaultTransport}
	s := newSink(t, &Type{Client: &http.Client{Transport: statuses}}, Settings{Output: "http", URL: db.url + "/write?db=recon"}, sink.Env{})
	b := batch(120) // about 25 KB: the server's 4 KB body limit makes the sink split it
	for i := range b {
		b[i].Tags["time"] = "tag named time"
		b[i].Metrics = append(b[i].Metrics, model.Metric{Name: "time", Value: model.Float(0.25)},
			model.Metric{Name: "status_code", Value: model.Int(int64(i))})
	}
	b[7].Metrics = append(b[7].Metrics, model.Metric{Name: "big", Value: model.Uint(1 << 62)})
	if err := s.WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if codes := statuses.codes(); len(codes) < 3 || codes[0] != http.StatusRequestEntityTooLarge {
		t.Errorf("answers %v: want a 413 first, then the halves", codes)
	}
	got := rows(db.query(t, "recon", `SELECT * FROM /^check/`))
	if len(got) != len(b) {
		t.Fatalf("%d points stored, want %d", len(got), len(b))
	}
	for i, r := range b {
		key := fmt.Sprintf("%s@%d", r.Check, r.Time.UnixNano())
		row, ok := got[key]
		if !ok {
			t.Fatalf("point %s missing", key)
		}
		want := map[string]string{
			"time": fmt.Sprint(r.Time.UnixNano()), "check_id": r.CheckID.String(), "target": r.Target, "role": "web", "i": fmt.Sprint(i),
			"tag_time": "tag named time", "load 1": fmt.Sprint(float64(i) / 4), "procs": fmt.Sprint(-i), "bytes": fmt.Sprint(uint64(i) << 40),
			"state": fmt.Sprintf("line %d, \"quoted\"", i), "status_code": fmt.Sprint(int(r.Status)), "metric_time": "0.25",
			"metric_status_code": fmt.Sprint(i),
		}
		if i == 7 {
			want["big"] = fmt.Sprint(uint64(1 << 62))
		}
		for col, w := range want {
			if g := fmt.Sprint(row[col]); g != w {
				t.Errorf("point %d column %q = %s, want %s", i, col, g, w)
			}
		}
		if len(row) != len(want) {
			t.Errorf("point %d has columns %v, want %d", i, row, len(want))
		}
	}

	// A field type conflict is the data's fault: permanent, with the
	// server's reason.
	conflict := batch(1)
	conflict[0].Time = time.Unix(1700000001, 0) // same shard: InfluxDB 1.x types fields per shard
	conflict[0].Metrics[0].Value = model.String("not a float")
	err := s.WriteBatch(context.Background(), conflict)
	if !sink.IsPermanent(err) || !strings.Contains(err.Error(), "field type conflict") {
		t.Errorf("type conflict: %v", err)
	}
	// gzip: the server inflates the body and stores it.
	gz := newSink(t, &Type{}, Settings{Output: "http", URL: db.url + "/write?db=recon", Gzip: true}, sink.Env{})
	later := batch(3)
	for i := range later {
		later[i].Check = "gzipped"
	}
	if err := gz.WriteBatch(context.Background(), later); err != nil {
		t.Fatal(err)
	}
	if n := len(rows(db.query(t, "recon", `SELECT * FROM gzipped`))); n != 3 {
		t.Errorf("gzip: %d points stored", n)
	}
	// A missing database is the operator's to fix: retried, not
	// dead-lettered.
	missing := newSink(t, &Type{}, Settings{Output: "http", URL: db.url + "/write?db=nope"}, sink.Env{})
	err = missing.WriteBatch(context.Background(), batch(1))
	if err == nil || sink.IsPermanent(err) || !strings.Contains(err.Error(), "database not found") {
		t.Errorf("missing database: %v", err)
	}
}

// statusRecorder is a transport that records the status of every answer.
type statusRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []int
}

func (r *statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.seen = append(r.seen, resp.StatusCode)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *statusRecorder) codes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.seen...)
}
