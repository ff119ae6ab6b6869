package lineproto

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/pipeline"
	"github.com/reconmon/recon/agent/sink"
)

// point is a line as a server sees it, decoded with the line-protocol
// library alone.
type point struct {
	Measurement string
	Tags        map[string]string
	Fields      map[string]lineprotocol.Value
	Time        time.Time
}

// request is one write the fake server received.
type request struct {
	Method, Path, RawQuery string
	Header                 http.Header
	BodySize               int
	Points                 []point
}

// fakeInflux is an InfluxDB-compatible write endpoint: it decodes every
// body with the line-protocol library (gunzipping it when the request
// says so), answers 400 to anything it cannot decode, and otherwise what
// respond says (204 by default).
type fakeInflux struct {
	mu      sync.Mutex
	reqs    []request
	respond func(r *request) (int, string)
}

func (f *fakeInflux) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	var body io.Reader = hr.Body
	if hr.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(hr.Body)
		if err != nil {
			http.Error(w, `{"error":"bad gzip"}`, http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := request{Method: hr.Method, Path: hr.URL.Path, RawQuery: hr.URL.RawQuery, Header: hr.Header.Clone(), BodySize: len(data)}
	prec, err := ParsePrecision(hr.URL.Query().Get("precision"))
	if err == nil {
		req.Points, err = decodePoints(data, prec)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	respond := f.respond
	f.mu.Unlock()
	if err != nil {
		http.Error(w, fmt.Sprintf(`{"code":"invalid","message":%q}`, err.Error()), http.StatusBadRequest)
		return
	}
	code, msg := http.StatusNoContent, ""
	if respond != nil {
		code, msg = respond(&req)
	}
	w.WriteHeader(code)
	io.WriteString(w, msg)
}

func decodePoints(data []byte, prec lineprotocol.Precision) ([]point, error) {
	var pts []point
	dec := lineprotocol.NewDecoderWithBytes(data)
	for dec.Next() {
		m, err := dec.Measurement()
		if err != nil {
			return nil, err
		}
		p := point{Measurement: string(m), Tags: map[string]string{}, Fields: map[string]lineprotocol.Value{}}
		prev := ""
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				return nil, err
			}
			if k == nil {
				break
			}
			if string(k) <= prev {
				return nil, fmt.Errorf("tag %q out of order", k)
			}
			prev = string(k)
			p.Tags[string(k)] = string(v)
		}
		for {
			k, v, err := dec.NextField()
			if err != nil {
				return nil, err
			}
			if k == nil {
				break
			}
			if _, dup := p.Fields[string(k)]; dup {
				return nil, fmt.Errorf("field %q twice", k)
			}
			if v.Kind() == lineprotocol.String {
				v = lineprotocol.MustNewValue(v.StringV()) // StringV copies out of the decoder's buffer
			}
			p.Fields[string(k)] = v
		}
		t, err := dec.Time(prec, time.Time{})
		if err != nil {
			return nil, err
		}
		if t.IsZero() {
			return nil, fmt.Errorf("point without timestamp")
		}
		p.Time = t
		pts = append(pts, p)
	}
	return pts, nil
}

func (f *fakeInflux) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func (f *fakeInflux) points() []point {
	var pts []point
	for _, r := range f.requests() {
		pts = append(pts, r.Points...)
	}
	return pts
}

// expected builds the point a result must arrive as, independently of
// the encoder.
func expected(r model.Result, prec time.Duration, uintAsInt bool) point {
	p := point{Measurement: r.Check, Tags: map[string]string{"check_id": r.CheckID.String()},
		Fields: map[string]lineprotocol.Value{"status_code": lineprotocol.MustNewValue(int64(r.Status))}, Time: r.Time.Truncate(prec)}
	if r.Target != "" {
		p.Tags["target"] = r.Target
	}
	maps.Copy(p.Tags, r.Tags)
	for _, m := range r.Metrics {
		var v any
		switch m.Value.Kind() {
		case model.KindInt:
			v = m.Value.Int()
		case model.KindUint:
			v = m.Value.Uint()
			if uintAsInt {
				v = int64(m.Value.Uint())
			}
		case model.KindString:
			v = m.Value.Str()
		default:
			v, _ = m.Value.Float()
		}
		p.Fields[m.Name] = lineprotocol.MustNewValue(v)
	}
	return p
}

// assertPoints compares what the server got with the results; v1 says
// whether the endpoint was not InfluxDB 2's own (uints written as ints).
func assertPoints(t *testing.T, got []point, want []model.Result, prec time.Duration, v1 bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("server got %d points, want %d", len(got), len(want))
	}
	for i := range want {
		w := expected(want[i], prec, v1)
		g := got[i]
		if g.Measurement != w.Measurement || !maps.Equal(g.Tags, w.Tags) || !g.Time.Equal(w.Time) {
			t.Fatalf("point %d:\n got %s %v %v\nwant %s %v %v", i, g.Measurement, g.Tags, g.Time, w.Measurement, w.Tags, w.Time)
		}
		if !maps.EqualFunc(g.Fields, w.Fields, lineprotocol.Value.Equal) {
			t.Fatalf("point %d fields:\n got %v\nwant %v", i, g.Fields, w.Fields)
		}
	}
}

func startInflux(t *testing.T, f *fakeInflux) *httptest.Server {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPv2WritesEveryPointAndField(t *testing.T) {
	f := &fakeInflux{}
	srv := startInflux(t, f)
	s := newSink(t, &Type{}, Settings{Output: "http", URL: srv.URL + "/api/v2/write?org=ops&bucket=recon", Token: "s3cr3t==",
		Headers: map[string]string{"X-Scope-OrgID": "tenant1"}}, sink.Env{})
	b1, b2 := batch(20), batch(5)
	for _, b := range [][]model.Result{b1, b2} {
		if err := s.WriteBatch(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests for 2 batches", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/api/v2/write" || r.RawQuery != "org=ops&bucket=recon&precision=ns" {
		t.Errorf("request %s %s?%s: the URL must be used as given, plus precision=ns", r.Method, r.Path, r.RawQuery)
	}
	if got := r.Header.Get("Authorization"); got != "Token s3cr3t==" {
		t.Errorf("Authorization %q", got)
	}
	if r.Header.Get("X-Scope-OrgID") != "tenant1" || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" || r.Header.Get("Content-Encoding") != "" {
		t.Errorf("headers %v", r.Header)
	}
	assertPoints(t, reqs[0].Points, b1, time.Nanosecond, false)
	assertPoints(t, reqs[1].Points, b2, time.Nanosecond, false)
}

func TestHTTPGzipV1(t *testing.T) {
	f := &fakeInflux{}
	srv := startInflux(t, f)
	s := newSink(t, &Type{}, Settings{Output: "http", URL: srv.URL + "/write?db=recon&u=me&p=pw", Gzip: true, Token: "tok", AuthScheme: "Bearer"}, sink.Env{})
	b := batch(100)
	if err := s.WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r := f.requests()[0]
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Authorization") != "Bearer tok" || r.RawQuery != "db=recon&u=me&p=pw&precision=ns" {
		t.Errorf("headers %v query %s", r.Header, r.RawQuery)
	}
	assertPoints(t, r.Points, b, time.Nanosecond, true)
	// The compressed body really was smaller (the server saw gzip and
	// inflated it).
	if n, _ := strconv.Atoi(r.Header.Get("Content-Length")); n == 0 || n >= r.BodySize {
		t.Errorf("gzip body %d bytes for %d bytes of line protocol", n, r.BodySize)
	}
	// A second batch reuses the gzip writer.
	if err := s.WriteBatch(context.Background(), b[:3]); err != nil {
		t.Fatal(err)
	}
	assertPoints(t, f.requests()[1].Points, b[:3], time.Nanosecond, true)
}

func TestHTTPPrecisionFromURL(t *testing.T) {
	f := &fakeInflux{}
	srv := startInflux(t, f)
	s := newSink(t, &Type{}, Settings{Output: "http", URL: srv.URL + "/write?precision=ms&db=x"}, sink.Env{})
	b := batch(3)
	for i := range b {
		b[i].Time = time.Unix(1700000000, 123456789+int64(i)*1e6)
	}
	if err := s.WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r := f.requests()[0]
	if r.RawQuery != "precision=ms&db=x" {
		t.Errorf("query %s", r.RawQuery)
	}
	assertPoints(t, r.Points, b, time.Millisecond, true)
}

// A server that refuses large bodies with 413: the batch is split in
// halves until every part fits, and every point arrives exactly once.
func TestHTTP413SplitsTheBatch(t *testing.T) {
	const limit = 1500
	f := &fakeInflux{respond: func(r *request) (int, string) {
		if r.BodySize > limit {
			return http.StatusRequestEntityTooLarge, `{"code":"request too large"}`
		}
		return http.StatusNoContent, ""
	}}
	srv := startInflux(t, f)
	for _, gz := range []bool{false, true} {
		f.mu.Lock()
		f.reqs = nil
		f.mu.Unlock()
		s := newSink(t, &Type{}, Settings{Output: "http", URL: srv.URL + "/api/v2/write?bucket=b", Gzip: gz}, sink.Env{})
		b := batch(37)
		if err := s.WriteBatch(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		var accepted []point
		refused := 0
		for _, r := range f.requests() {
			if r.BodySize > limit {
				refused++
				continue
			}
			accepted = append(accepted, r.Points...)
		}
		if refused == 0 {
			t.Fatal("the server never refused: the test does not test splitting")
		}
		assertPoints(t, accepted, b, time.Nanosecond, false)
	}
	// One line larger than the server takes can never be written.
	s := newSink(t, &Type{}, Settings{Output: "http", URL: srv.URL + "/write"}, sink.Env{})
	big := batch(1)
	big[0].Metrics = append(big[0].Metrics, model.Metric{Name: "blob", Value: model.String(strings.Repeat("x", limit))})
	err := s.WriteBatch(context.Background(), big)
	if !sink.IsPermanent(err) || !strings.Contains(err.Error(), "413") || !strings.Contains(err.Error(), "request too large") {
		t.Errorf("single oversized line: %v", err)
	}
}

func TestHTTPStatusHandling(t *testing.T) {
	cases := []struct {
		code      int
		body      string
		ok        bool
		permanent bool
	}{
		{200, "", true, false},
		{204, "", true, false},
		{400, `{"code":"invalid","message":"partial write: field type conflict"}`, false, true},
		{422, `{"code":"unprocessable entity","message":"points beyond retention policy"}`, false, true},
		{405, "", false, true},
		{408, "", false, false},
		{429, `{"message":"slow down"}`, false, false},
		{500, "oops", false, false},
		{503, "<html>\n<b>unavailable</b>\n</html>", false, false},
		{401, `{"code":"unauthorized","message":"unauthorized access"}`, false, false},
		{403, "", false, false},
		{404, `{"code":"not found","message":"bucket \"recon\" not found"}`, false, false},
		{302, "", false, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.code), func(t *testing.T) {
			f := &fakeInflux{respond: func(*request) (int, string) { return c.code, c.body }}
			srv := startInflux(t, f)
			s := newSink(t, &Type{}, Settings{Output: "http", URL: srv.URL + "/api/v2/write?org=o&bucket=b&token=qsecret", Token: "hsecret"}, sink.Env{})
			err := s.WriteBatch(context.Background(), batch(4))
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if sink.IsPermanent(err) != c.permanent {
				t.Errorf("permanent = %v, want %v: %v", sink.IsPermanent(err), c.permanent, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprint(c.code)) || strings.Contains(msg, "secret") || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want the status, no credential, one line", msg)
			}
			if want := excerpt([]byte(c.body)); c.body != "" && !strings.Contains(msg, want) {
				t.Errorf("error %q lacks the response body excerpt %q", msg, want)
			}
			if c.code == 302 && len(f.requests()) != 1 {
				t.Errorf("302 followed: %d requests", len(f.requests()))
			}
		})
	}
}

func TestHTTPFollows307WithBody(t *testing.T) {
	f := &fakeInflux{}
	final := startInflux(t, f)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, final.URL+"/write?db=x&precision=ns", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	s := newSink(t, &Type{}, Settings{Output: "http", URL: redirect.URL + "/write?db=x", Gzip: true}, sink.Env{})
	b := batch(6)
	if err := s.WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	assertPoints(t, f.points(), b, time.Nanosecond, true)
}

func TestHTTPNetworkErrorsAreRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	s := newSink(t, &Type{}, Settings{Output: "http", URL: url + "/write?db=x&p=secret"}, sink.Env{})
	err := s.WriteBatch(context.Background(), batch(2))
	if err == nil || sink.IsPermanent(err) || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("%v", err)
	}
}

func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	s := newSink(t, &Type{}, Settings{Output: "http", URL: srv.URL + "/write", Timeout: config.Duration(100 * time.Millisecond)}, sink.Env{})
	err := s.WriteBatch(context.Background(), batch(1))
	if err == nil || sink.IsPermanent(err) || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("%v", err)
	}
	// Cancellation by the pipeline ends the request too.
	ctx, cancel := context.WithCancel(context.Background())
	s2 := newSink(t, &Type{}, Settings{Output: "http", URL: srv.URL + "/write", Timeout: config.Duration(time.Hour)}, sink.Env{})
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if err := s2.WriteBatch(ctx, batch(1)); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("%v", err)
	}
}

func TestHTTPCustomClientAndReconnect(t *testing.T) {
	f := &fakeInflux{}
	srv := startInflux(t, f)
	s := newSink(t, &Type{Client: srv.Client()}, Settings{Output: "http", URL: srv.URL + "/write"}, sink.Env{})
	if err := s.WriteBatch(context.Background(), batch(1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.WriteBatch(context.Background(), batch(1)); err != nil {
		t.Fatalf("a custom client stays usable after Close: %v", err)
	}
	s3 := newSink(t, &Type{}, Settings{Output: "http", URL: srv.URL + "/write"}, sink.Env{})
	s3.Close()
	if err := s3.WriteBatch(context.Background(), batch(1)); err == nil {
		t.Error("write after Close without Connect succeeded")
	}
	s3.Connect(context.Background())
	if err := s3.WriteBatch(context.Background(), batch(1)); err != nil {
		t.Fatal(err)
	}
	if len(f.points()) != 3 {
		t.Errorf("%d points", len(f.points()))
	}
}

// TestPipelineIsolatesRejectedPoint runs the sink under the real pipeline:
// the server refuses one point with 400 (as InfluxDB does for a field type
// conflict); the pipeline splits the batch, that one result ends in the
// dead-letter file and every other result is written.
func TestPipelineIsolatesRejectedPoint(t *testing.T) {
	f := &fakeInflux{respond: func(r *request) (int, string) {
		for _, p := range r.Points {
			if p.Measurement == "poison" {
				return http.StatusBadRequest, `{"code":"invalid","message":"partial write: field type conflict"}`
			}
		}
		return http.StatusNoContent, ""
	}}
	srv := startInflux(t, f)
	st := &Settings{Output: "http", URL: srv.URL + "/api/v2/write?bucket=b"}
	spec := &sink.Spec{Name: "influx", Type: "lineproto", Settings: st, BatchSize: 16}
	s, err := (&Type{}).New(spec, sink.Env{})
	if err != nil {
		t.Fatal(err)
	}
	dead := t.TempDir()
	p := pipeline.New(slog.New(slog.DiscardHandler))
	if err := p.SetOutputs([]pipeline.Output{{Spec: spec, Sink: s, DeadLetterDir: dead,
		Open: func() (pipeline.Queue, error) { return pipeline.NewMemQueue(0), nil }}}); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b := batch(40)
	b[23].Check = "poison"
	if err := p.Publish(context.Background(), b...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if st := p.Stats(); len(st) == 1 && st[0].DeadLettered == 1 && st[0].Written >= 39 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	good := append(append([]model.Result{}, b[:23]...), b[24:]...)
	// Points of accepted requests, once each: at-least-once delivery may
	// repeat a half that was already written.
	var accepted []point
	seen := map[string]bool{}
	for _, r := range f.requests() {
		if !requestAccepted(r) {
			continue
		}
		for _, pt := range r.Points {
			if !seen[pt.Tags["i"]] {
				seen[pt.Tags["i"]] = true
				accepted = append(accepted, pt)
			}
		}
	}
	slices.SortFunc(accepted, func(a, b point) int {
		x, _ := strconv.Atoi(a.Tags["i"])
		y, _ := strconv.Atoi(b.Tags["i"])
		return x - y
	})
	assertPoints(t, accepted, good, time.Nanosecond, false)
	line, err := os.ReadFile(filepath.Join(dead, "deadletter.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(line)))
	n := 0
	for sc.Scan() {
		var entry struct {
			Error  string          `json:"error"`
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
			t.Fatal(err)
		}
		r, err := model.DecodeJSON(entry.Result, time.Time{})
		if err != nil || r.Check != "poison" || !strings.Contains(entry.Error, "field type conflict") {
			t.Errorf("dead letter %s: %v", sc.Text(), err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

// requestAccepted reports whether the fake answered r with success: only
// requests without the poisoned point were.
func requestAccepted(r request) bool {
	for _, p := range r.Points {
		if p.Measurement == "poison" {
			return false
		}
	}
	return true
}

func TestExcerpt(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "(empty body)",
		"  \n":                      "(empty body)",
		"<html>\n<b>x</b>\n</html>": "<html> <b>x</b> </html>",
		"bad\xffutf8\x00":           "bad\uFFFDutf8",
		strings.Repeat("é", 256):    strings.Repeat("é", 256) + "…",
	} {
		b := []byte(in)
		if len(b) > 512 {
			b = b[:512]
		}
		if got := excerpt(b); got != want {
			t.Errorf("excerpt(%q) = %q, want %q", in, got, want)
		}
	}
}
