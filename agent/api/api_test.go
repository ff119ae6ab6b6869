package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/scheduler"
	"github.com/reconmon/recon/agent/store"
	"github.com/reconmon/recon/agent/stream"
	"github.com/reconmon/recon/compat/passive"
)

type fakeRuntime struct {
	reloadErr error
	reloads   int
}

func (f *fakeRuntime) Config() *config.Config { return &config.Config{} }
func (f *fakeRuntime) Reload() error          { f.reloads++; return f.reloadErr }

// env is a scheduler with one active and one passive check, a stream hub
// preparing counted clones, and every emitted (stored) result recorded.
type env struct {
	sched    *scheduler.Scheduler
	hub      *stream.Hub
	rt       *fakeRuntime
	emitted  []model.Result
	mu       sync.Mutex
	prepared atomic.Int32
	active   *model.Check
	passive  *model.Check
}

func (e *env) emit(_ context.Context, r model.Result) error {
	e.mu.Lock()
	e.emitted = append(e.emitted, r)
	e.mu.Unlock()
	return nil
}

func (e *env) stored() []model.Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]model.Result(nil), e.emitted...)
}

func newEnv(t *testing.T) *env {
	e := &env{rt: &fakeRuntime{}}
	e.sched = scheduler.New(scheduler.Options{Emit: e.emit, Agent: "a1"})
	runner := checktype.Func(func(context.Context, *model.Result) model.Result {
		return model.Result{Status: model.Warning, Output: "warn", Metrics: []model.Metric{{Name: "v", Value: model.Float(1.5)}}}
	})
	e.active = &model.Check{ID: model.CheckID("a1", "web"), Name: "web", Type: "test", Target: "10.0.0.1",
		Period: time.Hour, Timeout: 5 * time.Second, MaxAttempts: 1, Source: "r.toml:3"}
	e.passive = &model.Check{ID: model.CheckID("a1", "backup"), Name: "backup", Type: "passive",
		Period: time.Hour, Timeout: time.Second, MaxAttempts: 1, Settings: &passive.Settings{}}
	pr, _ := passive.Type{}.Prepare(e.passive)
	e.sched.Update([]scheduler.Job{{Check: e.active, Runner: runner}, {Check: e.passive, Runner: pr}})
	e.hub = stream.NewHub(func(id uuid.UUID, period, timeout time.Duration) (*model.Check, checktype.Runner, error) {
		if id != e.active.ID {
			return nil, nil, stream.ErrNotFound
		}
		e.prepared.Add(1)
		c := *e.active
		c.Period, c.Timeout = period, timeout
		return &c, runner, nil
	}, "a1", nil)
	t.Cleanup(e.hub.Close)
	ctx, cancel := context.WithCancel(context.Background())
	go e.sched.Run(ctx, time.Second)
	t.Cleanup(cancel)
	return e
}

func (e *env) server(t *testing.T, mod func(*Options)) *httptest.Server {
	opts := Options{Listen: "127.0.0.1:0", Agent: "a1", Runtime: e.rt, Scheduler: e.sched, Streams: e.hub}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	if _, err := New(Options{Listen: "0.0.0.0:43919", Scheduler: e.sched}); err != ErrTokenRequired {
		t.Errorf("non-loopback without token: %v", err)
	}
	if _, err := New(Options{Listen: "[::]:43919", Scheduler: e.sched}); err != ErrTokenRequired {
		t.Errorf("[::] without token: %v", err)
	}
	if _, err := New(Options{Listen: "0.0.0.0:43919", Token: "t", Scheduler: e.sched}); err != nil {
		t.Errorf("non-loopback with token: %v", err)
	}
	ts := e.server(t, func(o *Options) { o.Token = "s3cret" })
	for _, path := range []string{"/api/v1/checks", "/metrics", "/api/v1/series?check=web&metric=v"} {
		if code, body := do(t, "GET", ts.URL+path, "", ""); code != 401 || !strings.Contains(body, `"error"`) {
			t.Errorf("%s without token: %d %s", path, code, body)
		}
		if code, _ := do(t, "GET", ts.URL+path, "wrong", ""); code != 401 {
			t.Errorf("%s wrong token: %d", path, code)
		}
	}
	if code, _ := do(t, "GET", ts.URL+"/api/v1/checks", "s3cret", ""); code != 200 {
		t.Errorf("right token: %d", code)
	}
	if code, _ := do(t, "GET", ts.URL+"/healthz", "", ""); code != 200 {
		t.Errorf("healthz needs no token: %d", code)
	}
	if code, _ := do(t, "GET", ts.URL+"/api/v1/checks?access_token=s3cret", "", ""); code != 200 {
		t.Errorf("access_token query: %d", code)
	}
}

func TestChecksAndRunNow(t *testing.T) {
	e := newEnv(t)
	ts := e.server(t, nil)
	code, body := do(t, "GET", ts.URL+"/api/v1/checks", "", "")
	var list struct{ Checks []checkView }
	json.Unmarshal([]byte(body), &list)
	if code != 200 || len(list.Checks) != 2 || list.Checks[0].Name != "backup" || list.Checks[1].Source != "r.toml:3" {
		t.Fatalf("list: %d %s", code, body)
	}
	code, body = do(t, "POST", ts.URL+"/api/v1/checks/web/run", "", "")
	if code != 200 || !strings.Contains(body, `"status":"WARNING"`) || !strings.Contains(body, `"check":"web"`) {
		t.Fatalf("run: %d %s", code, body)
	}
	code, body = do(t, "GET", ts.URL+"/api/v1/checks/"+e.active.ID.String(), "", "")
	if code != 200 || !strings.Contains(body, `"output":"warn"`) {
		t.Errorf("get by id after run: %d %s", code, body)
	}
	if code, _ := do(t, "GET", ts.URL+"/api/v1/checks?status=WARNING", "", ""); code != 200 {
		t.Error("status filter")
	}
	if code, body := do(t, "GET", ts.URL+"/api/v1/checks/nope", "", ""); code != 404 || !strings.Contains(body, `"error"`) {
		t.Errorf("unknown: %d %s", code, body)
	}
	if code, _ := do(t, "POST", ts.URL+"/api/v1/checks/backup/run", "", ""); code != 409 {
		t.Errorf("run passive: %d", code)
	}
	if code, _ := do(t, "GET", ts.URL+"/api/v1/nothing", "", ""); code != 404 {
		t.Errorf("unknown endpoint: %d", code)
	}
	if code, _ := do(t, "DELETE", ts.URL+"/api/v1/checks", "", ""); code != 405 {
		t.Errorf("wrong method: %d", code)
	}
}

func TestPassiveResults(t *testing.T) {
	e := newEnv(t)
	ts := e.server(t, nil)
	code, body := do(t, "POST", ts.URL+"/api/v1/results", "", `{"check":"backup","status":"CRITICAL","output":"backup failed","metrics":[{"name":"age","value":90000}]}`)
	if code != 202 || !strings.Contains(body, `"accepted":1`) {
		t.Fatalf("%d %s", code, body)
	}
	code, _ = do(t, "POST", ts.URL+"/api/v1/results", "", `[{"check":"backup","status":0},{"check":"backup","status":"OK"}]`)
	if code != 202 {
		t.Errorf("array: %d", code)
	}
	code, _ = do(t, "POST", ts.URL+"/api/v1/results", "", "{\"check\":\"backup\",\"status\":1}\n{\"check\":\"backup\",\"status\":2}\n")
	if code != 202 {
		t.Errorf("ndjson: %d", code)
	}
	code, body = do(t, "POST", ts.URL+"/api/v1/write?precision=s", "", "backup,target=db age=5i,status_code=1i 1700000000\n")
	if code != 202 {
		t.Errorf("write: %d %s", code, body)
	}
	rs := e.stored()
	if len(rs) != 6 || rs[0].Check != "backup" || rs[0].Status != model.Critical || rs[0].Metrics[0].Value.Int() != 90000 ||
		rs[5].Status != model.Warning || !rs[5].Time.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("stored: %+v", rs)
	}
	bad := []struct {
		path, body, want string
		code             int
	}{
		{"/api/v1/results", `{"check":"web","status":"OK"}`, "is not passive", 422},
		{"/api/v1/results", `{"check":"nope","status":"OK"}`, `no check named \"nope\"`, 422},
		{"/api/v1/results", `{"check":"backup","status":"SOMETIMES"}`, "invalid status", 422},
		{"/api/v1/results", `[{"check":"backup","status":"OK"},{"check":"x"}]`, "no result was accepted", 422},
		{"/api/v1/results", `[1,`, "decode array", 400},
		{"/api/v1/results", ``, "empty body", 400},
		{"/api/v1/write?precision=fortnight", `backup x=1`, "invalid precision", 400},
		{"/api/v1/write", `backup x=`, "line protocol", 400},
	}
	for _, b := range bad {
		code, body := do(t, "POST", ts.URL+b.path, "", b.body)
		if code != b.code || !strings.Contains(body, b.want) {
			t.Errorf("%s %q: %d %s, want %d %q", b.path, b.body, code, body, b.code, b.want)
		}
	}
	if n := len(e.stored()); n != 6 {
		t.Errorf("a rejected request stored results: %d", n)
	}
	big := strings.Repeat(" ", maxJSONBody+1)
	if code, _ := do(t, "POST", ts.URL+"/api/v1/results", "", big); code != 413 {
		t.Errorf("oversized body: %d", code)
	}
}

type fakeStore struct {
	store.Store
	q store.SeriesQuery
}

func (f *fakeStore) Series(_ context.Context, q store.SeriesQuery) (store.Series, error) {
	f.q = q
	return store.Series{CheckID: q.CheckID, Metric: q.Metric, Resolution: store.ResolutionFor(q.Step),
		Points: []store.Point{{Time: q.From, Value: 1, Count: 1}}}, nil
}

func TestSeries(t *testing.T) {
	e := newEnv(t)
	ts := e.server(t, nil)
	if code, _ := do(t, "GET", ts.URL+"/api/v1/series?check=web&metric=v", "", ""); code != 503 {
		t.Errorf("no store: %d", code)
	}
	fs := &fakeStore{}
	ts = e.server(t, func(o *Options) { o.Store = func() store.Store { return fs } })
	code, body := do(t, "GET", ts.URL+"/api/v1/series?check=web&metric=v&from=-24h&to=now&step=10m", "", "")
	if code != 200 || !strings.Contains(body, `"resolution":"5m"`) || fs.q.CheckID != e.active.ID || fs.q.Step != 10*time.Minute {
		t.Errorf("%d %s %+v", code, body, fs.q)
	}
	if d := fs.q.To.Sub(fs.q.From); d < 24*time.Hour-time.Second || d > 24*time.Hour+time.Second {
		t.Errorf("range %v", d)
	}
	for q, want := range map[string]string{
		"metric=v":                           "check is required",
		"check=web":                          "metric is required",
		"check=zzz&metric=v":                 `no check \"zzz\"`,
		"check=web&metric=v&from=yesterday":  "from:",
		"check=web&metric=v&from=now&to=-1h": "from must be before to",
		"check=web&metric=v&step=fast":       "step",
	} {
		code, body := do(t, "GET", ts.URL+"/api/v1/series?"+q, "", "")
		if code != 400 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
}

func TestReload(t *testing.T) {
	e := newEnv(t)
	ts := e.server(t, nil)
	if code, body := do(t, "POST", ts.URL+"/api/v1/reload", "", ""); code != 200 || !strings.Contains(body, "reloaded") {
		t.Errorf("%d %s", code, body)
	}
	e.rt.reloadErr = fmt.Errorf("r.toml:3: bad")
	if code, body := do(t, "POST", ts.URL+"/api/v1/reload", "", ""); code != 422 || !strings.Contains(body, "r.toml:3: bad") {
		t.Errorf("%d %s", code, body)
	}
}

// TestStreamFiftyWatchers: 50 SSE clients on one check at 1s share one
// clone, which stops within 2s of the last disconnect, and nothing it
// produced reached the pipeline.
func TestStreamFiftyWatchers(t *testing.T) {
	e := newEnv(t)
	ts := e.server(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var got atomic.Int32
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/checks/web/stream?period=1s", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Errorf("content type %q", resp.Header.Get("Content-Type"))
				return
			}
			sc := bufio.NewScanner(resp.Body)
			events := 0
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"check":"web"`) {
					events++
					if events == 2 {
						got.Add(1)
					}
				}
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() < 50 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got.Load() != 50 {
		t.Fatalf("%d of 50 watchers got 2 events", got.Load())
	}
	if n := e.prepared.Load(); n != 1 {
		t.Errorf("%d clones for one check+period", n)
	}
	if st := e.hub.Stats(); st.Clones != 1 || st.Watchers != 50 {
		t.Errorf("hub: %+v", st)
	}
	cancel()
	wg.Wait()
	left := time.Now()
	for e.hub.Stats().Clones != 0 && time.Since(left) < 2*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if st := e.hub.Stats(); st.Clones != 0 || st.Watchers != 0 {
		t.Errorf("clone still running 2s after the last watcher left: %+v", st)
	}
	if rs := e.stored(); len(rs) != 0 {
		t.Errorf("clone results reached the pipeline: %d", len(rs))
	}
	code, body := do(t, "GET", ts.URL+"/api/v1/checks/web/stream?period=100ms", "", "")
	if code != 400 || !strings.Contains(body, "at least 500ms") {
		t.Errorf("short period: %d %s", code, body)
	}
	if code, _ := do(t, "GET", ts.URL+"/api/v1/checks/backup/stream", "", ""); code != 422 {
		t.Errorf("stream of a passive check: %d", code)
	}
}

// TestOpenAPIInSync fails when a route is added without documenting it in
// openapi.json, or documented without existing.
func TestOpenAPIInSync(t *testing.T) {
	e := newEnv(t)
	s, _ := New(Options{Listen: "127.0.0.1:0", Scheduler: e.sched})
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	b, _ := os.ReadFile("openapi.json")
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	var missing []string
	for _, r := range s.routes {
		if !documented[r] {
			missing = append(missing, r)
		}
		delete(documented, r)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes missing from openapi.json: %v", missing)
	}
	if len(documented) > 0 {
		t.Errorf("openapi.json documents routes that do not exist: %v", documented)
	}
	ts := e.server(t, nil)
	if code, body := do(t, "GET", ts.URL+"/api/v1/openapi.json", "", ""); code != 200 || !regexp.MustCompile(`"openapi": "3\.1\.0"`).MatchString(body) {
		t.Errorf("served openapi: %d", code)
	}
}

func FuzzPostResults(f *testing.F) {
	f.Add([]byte(`{"check":"backup","status":"OK","metrics":[{"name":"a","value":1}]}`))
	f.Add([]byte(`[{"check":"backup","status":2}]`))
	f.Add([]byte("{}\n{\"check\":1}"))
	sched := scheduler.New(scheduler.Options{})
	c := &model.Check{ID: uuid.New(), Name: "backup", Type: "passive", Period: time.Hour, Timeout: time.Second, MaxAttempts: 1}
	pr, _ := passive.Type{}.Prepare(&model.Check{Settings: &passive.Settings{}})
	sched.Update([]scheduler.Job{{Check: c, Runner: pr}})
	s, _ := New(Options{Listen: "127.0.0.1:0", Scheduler: sched})
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/api/v1/results", "/api/v1/write"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", path, strings.NewReader(string(body))))
			if rec.Code >= 500 {
				t.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
			}
			if rec.Code >= 400 && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("error body is not JSON: %s", rec.Body.String())
			}
		}
	})
}
