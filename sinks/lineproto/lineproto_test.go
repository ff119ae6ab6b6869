package lineproto

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

var update = flag.Bool("update", false, "rewrite testdata/lineproto golden files")

func ptr(f float64) *float64 { return &f }

func goldenResults() map[string]model.Result {
	base := model.Result{CheckID: model.CheckID("a1", "load"), Check: "load", Target: "db1", Time: time.Unix(1700000000, 123456789),
		Status: model.Warning, Tags: map[string]string{"role": "db", "dc": "ams"}}
	full := base
	full.Metrics = []model.Metric{{Name: "load1", Value: model.Float(0.42), Warn: "5", Crit: "10", Min: ptr(0)},
		{Name: "procs", Value: model.Int(-3)}, {Name: "bytes", Value: model.Uint(math.MaxUint64)},
		{Name: "state", Value: model.String("up \"and\" running\nok")}}
	escapes := base
	escapes.Check = "disk, usage=root"
	escapes.Target = "host with space"
	escapes.Tags = map[string]string{"mount point": "/var,log", "zone": "eu=west"}
	escapes.Metrics = []model.Metric{{Name: "/ used", Value: model.Float(1e21)}, {Name: "status_code", Value: model.Int(7)}}
	empty := base
	empty.Target, empty.Tags = "", nil
	return map[string]model.Result{"full": full, "escapes": escapes, "no_metrics": empty}
}

func TestGoldenEncoding(t *testing.T) {
	for name, r := range goldenResults() {
		b, skipped, err := AppendResult(nil, &r)
		if err != nil || skipped != 0 {
			t.Fatalf("%s: %v skipped %d", name, err, skipped)
		}
		path := filepath.Join("..", "..", "testdata", "lineproto", name+".lp")
		if *update {
			os.WriteFile(path, b, 0o644)
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test -update)", err)
		}
		if string(b) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", name, b, want)
		}
		// What we write decodes back to the same result.
		rs, err := Decode(b, lineprotocol.Nanosecond, time.Now(), "a1")
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s: decode: %v", name, err)
		}
		got := rs[0]
		if got.Check != r.Check || got.Target != r.Target || got.CheckID != r.CheckID || !got.Time.Equal(r.Time) || got.Status != r.Status {
			t.Errorf("%s: round trip identity: %+v", name, got)
		}
		if len(got.Metrics) != len(r.Metrics) {
			t.Fatalf("%s: %d metrics back, want %d", name, len(got.Metrics), len(r.Metrics))
		}
		for i := range r.Metrics {
			if got.Metrics[i].Name != r.Metrics[i].Name || !got.Metrics[i].Value.Equal(r.Metrics[i].Value) {
				t.Errorf("%s: metric %d: %+v vs %+v", name, i, got.Metrics[i], r.Metrics[i])
			}
		}
	}
}

func TestNonFiniteSkippedAndCounted(t *testing.T) {
	r := goldenResults()["no_metrics"]
	r.Metrics = []model.Metric{{Name: "a", Value: model.Float(math.NaN())}, {Name: "b", Value: model.Float(math.Inf(1))}, {Name: "c", Value: model.Int(1)}}
	b, skipped, err := AppendResult(nil, &r)
	if err != nil || skipped != 2 || !strings.Contains(string(b), " c=1i,status_code=1i ") {
		t.Errorf("%s %d %v", b, skipped, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]string{
		"m":                     "",
		"m x=":                  "",
		"m,check_id=nope x=1":   "check_id",
		"m status_code=7i":      "status_code must be 0, 1, 2 or 3",
		"m status_code=1.5":     "status_code must be 0, 1, 2 or 3",
		"m status_code=\"bad\"": "status_code must be a number",
		"m x=1 notatime":        "",
		"good x=1\nbad,tag x":   "point 2",
	}
	for in, want := range cases {
		_, err := Decode([]byte(in), lineprotocol.Nanosecond, time.Now(), "a")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want error containing %q", in, err, want)
		}
	}
	rs, err := Decode([]byte("# comment\n\nm,target=h x=1i,ok=true,s=\"t\",u=3u 1700000000\n"), lineprotocol.Second, time.Unix(5, 0), "a")
	if err != nil || len(rs) != 1 {
		t.Fatal(err)
	}
	r := rs[0]
	if r.Target != "h" || !r.Time.Equal(time.Unix(1700000000, 0)) || r.Status != model.OK || len(r.Metrics) != 4 || r.Metrics[1].Value.Int() != 1 {
		t.Errorf("%+v", r)
	}
	if rs, _ := Decode([]byte("m x=1"), lineprotocol.Nanosecond, time.Unix(5, 0), "a"); !rs[0].Time.Equal(time.Unix(5, 0)) {
		t.Error("missing timestamp should default to now")
	}
}

func FuzzDecode(f *testing.F) {
	for _, r := range goldenResults() {
		b, _, _ := AppendResult(nil, &r)
		f.Add(b)
	}
	f.Add([]byte("m,a=b x=1i,y=\"s\",z=t 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := Decode(b, lineprotocol.Nanosecond, time.Unix(0, 0), "a")
		if err != nil {
			return
		}
		for i := range rs {
			out, _, err := AppendResult(nil, &rs[i])
			if err != nil {
				continue // e.g. a measurement the encoder must sanitise differently
			}
			again, err := Decode(out, lineprotocol.Nanosecond, time.Unix(0, 0), "a")
			if err != nil || len(again) != 1 || again[0].Status != rs[i].Status || len(again[0].Metrics) > len(rs[i].Metrics) {
				t.Fatalf("re-encode/decode mismatch: %v\n%s", err, out)
			}
		}
	})
}

func newSink(t *testing.T, st Settings, stdout io.Writer) sink.Sink {
	t.Helper()
	s, err := (&Type{Stdout: stdout}).New(&sink.Spec{Name: "lp", Settings: &st}, sink.Env{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func batch(n int) []model.Result {
	rs := make([]model.Result, n)
	for i := range rs {
		rs[i] = model.Result{CheckID: model.CheckID("a", "c"), Check: "c", Time: time.Unix(0, int64(i+1)), Status: model.OK,
			Metrics: []model.Metric{{Name: "v", Value: model.Int(int64(i))}}}
	}
	return rs
}

func TestStdoutAndFile(t *testing.T) {
	var out bytes.Buffer
	s := newSink(t, Settings{}, &out)
	if err := s.WriteBatch(context.Background(), batch(3)); err != nil || strings.Count(out.String(), "\n") != 3 {
		t.Errorf("stdout: %v %q", err, out.String())
	}
	path := filepath.Join(t.TempDir(), "sub", "out.lp")
	f := newSink(t, Settings{Output: "file", Path: path}, nil)
	f.WriteBatch(context.Background(), batch(2))
	f.Close()
	f.Connect(context.Background())
	f.WriteBatch(context.Background(), batch(2))
	b, _ := os.ReadFile(path)
	if strings.Count(string(b), "\n") != 4 {
		t.Errorf("file after reopen: %q", b)
	}
	if _, err := (&Type{}).New(&sink.Spec{Settings: &Settings{Output: "file"}}, sink.Env{}); err == nil {
		t.Error("file without path accepted")
	}
	if _, err := (&Type{}).New(&sink.Spec{Settings: &Settings{Output: "kafka"}}, sink.Env{}); err == nil {
		t.Error("unknown output accepted")
	}
}

// influx is a fake InfluxDB write endpoint that decodes what it receives
// with the line-protocol library.
type influx struct {
	mu       sync.Mutex
	points   int
	auth     []string
	failWith []int // status codes to answer before succeeding
	maxBody  int
	queries  []string
}

func (f *influx) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "bad gzip", 400)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.queries = append(f.queries, r.URL.RawQuery)
	if len(f.failWith) > 0 {
		code := f.failWith[0]
		f.failWith = f.failWith[1:]
		http.Error(w, "nope", code)
		return
	}
	if f.maxBody > 0 && len(b) > f.maxBody {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		return
	}
	dec := lineprotocol.NewDecoderWithBytes(b)
	for dec.Next() {
		if _, err := dec.Measurement(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for {
			k, _, err := dec.NextTag()
			if err != nil || k == nil {
				break
			}
		}
		for {
			k, _, err := dec.NextField()
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			if k == nil {
				break
			}
		}
		if _, err := dec.Time(lineprotocol.Nanosecond, time.Time{}); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.points++
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestHTTP(t *testing.T) {
	fake := &influx{maxBody: 200}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	s := newSink(t, Settings{Output: "http", URL: srv.URL + "/api/v2/write?org=o&bucket=b", Token: "t0k", Gzip: false}, nil)
	// 413 splits the batch until each part fits.
	if err := s.WriteBatch(context.Background(), batch(10)); err != nil {
		t.Fatal(err)
	}
	if fake.points != 10 || fake.auth[0] != "Token t0k" || !strings.Contains(fake.queries[0], "precision=ns") {
		t.Errorf("points %d auth %v queries %v", fake.points, fake.auth, fake.queries)
	}
	fake.maxBody = 0
	fake.failWith = []int{503}
	err := s.WriteBatch(context.Background(), batch(1))
	if err == nil || sink.IsPermanent(err) {
		t.Errorf("503 must be retryable: %v", err)
	}
	fake.failWith = []int{400}
	err = s.WriteBatch(context.Background(), batch(1))
	if !sink.IsPermanent(err) {
		t.Errorf("400 must be permanent: %v", err)
	}
	g := newSink(t, Settings{Output: "http", URL: srv.URL + "/write?db=x&u=me&p=secret", Gzip: true}, nil)
	fake.failWith = []int{500}
	err = g.WriteBatch(context.Background(), batch(2))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("password leaked into the error: %v", err)
	}
	before := fake.points
	if err := g.WriteBatch(context.Background(), batch(2)); err != nil || fake.points != before+2 {
		t.Errorf("gzip: %v %d", err, fake.points-before)
	}
}

func BenchmarkAppendResult(b *testing.B) {
	r := goldenResults()["full"]
	r.Metrics = append(r.Metrics, model.Metric{Name: "x", Value: model.Float(1)})
	var e Encoder
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _, _ = e.Append(buf[:0], &r)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "results/s")
}

func BenchmarkDecode(b *testing.B) {
	var data []byte
	rs := batch(100)
	for i := range rs {
		data, _, _ = AppendResult(data, &rs[i])
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Decode(data, lineprotocol.Nanosecond, time.Unix(0, 0), "a")
	}
}
