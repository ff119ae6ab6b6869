package alerter

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store"
	"github.com/reconmon/recon/sinks/sqlite"
)

// hook records webhook deliveries and can fail on demand.
type hook struct {
	mu       sync.Mutex
	payloads []WebhookPayload
	sigs     []string
	bodies   [][]byte
	fail     int
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail > 0 {
		h.fail--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	var p WebhookPayload
	json.Unmarshal(b, &p)
	h.payloads = append(h.payloads, p)
	h.sigs = append(h.sigs, r.Header.Get("X-Recon-Signature"))
	h.bodies = append(h.bodies, b)
}

func (h *hook) notes() []Notification {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Notification
	for _, p := range h.payloads {
		out = append(out, p.Notifications...)
	}
	return out
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newSink(t *testing.T, dataDir string, st Settings) *Sink {
	t.Helper()
	return newSinkWithStore(t, dataDir, st, nil)
}

// newSinkWithStore gives the sink the agent's trend store (nil: none).
func newSinkWithStore(t *testing.T, dataDir string, st Settings, ts store.Store) *Sink {
	t.Helper()
	if st.GroupWait == 0 {
		st.GroupWait = config.Duration(100 * time.Millisecond)
	}
	env := sink.Env{Agent: "a1", DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)}
	if ts != nil {
		env.Store = func() store.Store { return ts }
	}
	s, err := Type{}.New(&sink.Spec{Name: "alerts", Type: "alerter", Settings: &st, Dir: dataDir}, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s.(*Sink)
}

func TestWebhookSignedGroupedRetried(t *testing.T) {
	h := &hook{fail: 2}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir := t.TempDir()
	s := newSink(t, dir, Settings{Notifier: []NotifierConfig{{Name: "ops", Type: "webhook", URL: srv.URL, Secret: "k3y"}}})
	defer s.Close()
	// Two checks go down in one batch: one notification group.
	batch := []model.Result{*result("a", t0, model.Critical, model.Hard), *result("b", t0, model.Critical, model.Hard)}
	if err := s.WriteBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after two failures", func() bool { return len(h.notes()) == 2 })
	h.mu.Lock()
	if len(h.payloads) != 1 || len(h.payloads[0].Notifications) != 2 {
		t.Errorf("not grouped: %d payloads", len(h.payloads))
	}
	if h.sigs[0] != Sign("k3y", h.bodies[0]) {
		t.Errorf("bad signature %q", h.sigs[0])
	}
	h.mu.Unlock()
	// The sink books the delivery after the webhook's response arrives, a
	// moment after the handler has recorded the payload.
	waitFor(t, "delivery booked", func() bool { st := s.Stats(); return st.Delivered == 2 && st.Outbox == 0 })
	st := s.Stats()
	if st.DeliveryFailures < 2 || st.Delivered != 2 || st.Outbox != 0 || st.Firing != 2 {
		t.Errorf("stats: %+v", st)
	}
}

// TestStateSurvivesRestart: a firing alert is not notified again after the
// sink restarts (no re-notification storm), and its recovery still is.
func TestStateSurvivesRestart(t *testing.T) {
	h := &hook{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir := t.TempDir()
	settings := Settings{Notifier: []NotifierConfig{{Name: "ops", Type: "webhook", URL: srv.URL}}}
	s := newSink(t, dir, settings)
	s.WriteBatch(context.Background(), []model.Result{*result("db", t0, model.Critical, model.Hard)})
	waitFor(t, "PROBLEM", func() bool { return len(h.notes()) == 1 })
	s.Close()

	s2 := newSink(t, dir, settings)
	defer s2.Close()
	// The same result replayed (at-least-once) and a newer one still down.
	s2.WriteBatch(context.Background(), []model.Result{*result("db", t0, model.Critical, model.Hard),
		*result("db", t0.Add(time.Minute), model.Critical, model.Hard)})
	time.Sleep(500 * time.Millisecond)
	if n := len(h.notes()); n != 1 {
		t.Fatalf("re-notified after restart: %d notifications", n)
	}
	s2.WriteBatch(context.Background(), []model.Result{*result("db", t0.Add(2*time.Minute), model.OK, model.Hard)})
	waitFor(t, "RECOVERY", func() bool { return len(h.notes()) == 2 })
	if n := h.notes()[1]; n.Type != NotifyRecovery {
		t.Errorf("second notification: %+v", n)
	}
}

func TestOutboxSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := &hook{fail: 1 << 30} // the receiver is down
	srv := httptest.NewServer(h)
	defer srv.Close()
	settings := Settings{Notifier: []NotifierConfig{{Name: "ops", Type: "webhook", URL: srv.URL, Timeout: config.Duration(time.Second)}}}
	s := newSink(t, dir, settings)
	s.WriteBatch(context.Background(), []model.Result{*result("db", t0, model.Critical, model.Hard)})
	waitFor(t, "failed attempt", func() bool { return s.Stats().DeliveryFailures > 0 })
	s.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "alerter", "alerts", "outbox", "*.json"))
	if len(files) != 1 {
		t.Fatalf("outbox: %v", files)
	}
	// The receiver comes back; a restarted alerter delivers what was queued.
	h.mu.Lock()
	h.fail = 0
	h.mu.Unlock()
	s2 := newSink(t, dir, settings)
	defer s2.Close()
	waitFor(t, "queued notification delivered", func() bool { return len(h.notes()) == 1 })
	waitFor(t, "outbox emptied", func() bool { return s2.Stats().Outbox == 0 })
}

func TestExecNotifierNagiosEnvironment(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env.txt")
	script := filepath.Join(dir, "notify.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$NAGIOS_NOTIFICATIONTYPE|$NAGIOS_HOSTNAME|$NAGIOS_SERVICEDESC|$NAGIOS_SERVICESTATE|$NAGIOS_SERVICEOUTPUT|$NAGIOS_CONTACTEMAIL|$RECON_RULE\" >> "+out+"\n"), 0o755)
	s := newSink(t, dir, Settings{Notifier: []NotifierConfig{{Name: "mail", Type: "exec", Command: script, ContactEmail: "ops@example.com"}}})
	defer s.Close()
	r := result("web/HTTP", t0, model.Critical, model.Hard)
	r.Tags = map[string]string{"host": "web", "service": "HTTP"}
	r.Output = "HTTP CRITICAL - 503"
	s.WriteBatch(context.Background(), []model.Result{*r})
	waitFor(t, "script ran", func() bool { b, _ := os.ReadFile(out); return len(b) > 0 })
	b, _ := os.ReadFile(out)
	if got := strings.TrimSpace(string(b)); got != "PROBLEM|web|HTTP|CRITICAL|HTTP CRITICAL - 503|ops@example.com|nagios-default" {
		t.Errorf("script saw %q", got)
	}
}

// smtpServer is a minimal SMTP receiver for tests.
func smtpServer(t *testing.T) (addr string, mails chan string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	mails = make(chan string, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tp := textproto.NewConn(c)
				tp.PrintfLine("220 test ESMTP")
				var rcpt []string
				for {
					line, err := tp.ReadLine()
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.Fields(line + " x")[0])
					switch cmd {
					case "EHLO", "HELO":
						tp.PrintfLine("250 test")
					case "MAIL":
						tp.PrintfLine("250 ok")
					case "RCPT":
						rcpt = append(rcpt, line)
						tp.PrintfLine("250 ok")
					case "DATA":
						tp.PrintfLine("354 go ahead")
						body, _ := tp.ReadDotBytes()
						mails <- strings.Join(rcpt, ",") + "\n" + string(body)
						tp.PrintfLine("250 queued")
					case "QUIT":
						tp.PrintfLine("221 bye")
						return
					default:
						tp.PrintfLine("502 unknown")
					}
				}
			}()
		}
	}()
	return l.Addr().String(), mails
}

func TestSMTPNotifier(t *testing.T) {
	addr, mails := smtpServer(t)
	dir := t.TempDir()
	s := newSink(t, dir, Settings{Notifier: []NotifierConfig{{Name: "mail", Type: "smtp", SMTP: addr, From: "recon@example.com", To: []string{"ops@example.com"}}}})
	defer s.Close()
	s.WriteBatch(context.Background(), []model.Result{*result("db", t0, model.Critical, model.Hard)})
	select {
	case m := <-mails:
		if !strings.Contains(m, "ops@example.com") || !strings.Contains(m, "Subject: [recon] PROBLEM: db is CRITICAL") {
			t.Errorf("mail:\n%s", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no mail")
	}
}

func TestSilencesAPI(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, dir, Settings{Notifier: []NotifierConfig{{Name: "log", Type: "log"}}})
	defer s.Close()
	do := func(method, path, body string) (int, string) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec.Code, rec.Body.String()
	}
	ends := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	code, body := do("POST", "/api/v1/silences", `{"matchers":[{"name":"check","value":"db"}],"ends_at":"`+ends+`","created_by":"me","comment":"maintenance"}`)
	if code != 201 {
		t.Fatalf("%d %s", code, body)
	}
	var sil Silence
	json.Unmarshal([]byte(body), &sil)
	for _, bad := range []string{`{"matchers":[],"ends_at":"` + ends + `"}`, `{"matchers":[{"name":"a","value":"("}],"ends_at":"` + ends + `","x":1}`,
		`{"matchers":[{"name":"a","value":"(","regex":true}],"ends_at":"` + ends + `"}`, `{"matchers":[{"name":"a","value":"b"}]}`, `nope`} {
		if code, _ := do("POST", "/api/v1/silences", bad); code != 400 {
			t.Errorf("%s: %d", bad, code)
		}
	}
	// The silence is in effect and persisted.
	s.WriteBatch(context.Background(), []model.Result{*result("db", time.Now(), model.Critical, model.Hard)})
	code, body = do("GET", "/api/v1/alerts", "")
	if code != 200 || !strings.Contains(body, `"silenced":true`) || !strings.Contains(body, `"state":"firing"`) {
		t.Errorf("alerts: %d %s", code, body)
	}
	if st := s.Stats(); st.Suppressed != 1 {
		t.Errorf("suppressed %d", st.Suppressed)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "alerter", "alerts", "silences.json"))
	if !strings.Contains(string(b), sil.ID) {
		t.Error("silence not persisted")
	}
	if code, _ := do("DELETE", "/api/v1/silences/"+sil.ID, ""); code != 204 {
		t.Errorf("expire: %d", code)
	}
	if code, _ := do("DELETE", "/api/v1/silences/nope", ""); code != 404 {
		t.Errorf("expire unknown: %d", code)
	}
	_, body = do("GET", "/api/v1/silences", "")
	if !strings.Contains(body, sil.ID) {
		t.Errorf("expired silence not listed: %s", body)
	}
}

func TestReloadKeepsOldRulesOnError(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.lua")
	os.WriteFile(rules, []byte(`rule { name = "one", metric = "m", condition = function(w) return w:last() > 1 end }`), 0o644)
	s := newSink(t, dir, Settings{Rules: []string{"rules.lua"}, Notifier: []NotifierConfig{{Name: "log", Type: "log"}}})
	defer s.Close()
	os.WriteFile(rules, []byte(`rule { name = "two", metric = "m", condition = function(w) return w:last() > 1 `), 0o644)
	err := s.Reload()
	if err == nil || !strings.Contains(err.Error(), rules+":1:") {
		t.Fatalf("broken reload: %v", err)
	}
	if names := ruleNames(s); names != "nagios-default one" {
		t.Errorf("rules after failed reload: %s", names)
	}
	os.WriteFile(rules, []byte(`rule { name = "two", metric = "m", condition = function(w) return w:last() > 1 end }`), 0o644)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if names := ruleNames(s); names != "nagios-default two" {
		t.Errorf("rules after reload: %s", names)
	}
	// An unknown notifier in a rule is a load error.
	os.WriteFile(rules, []byte(`rule { name = "x", metric = "m", notify = "pager", condition = function() return true end }`), 0o644)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), `notify "pager": no such notifier`) {
		t.Errorf("unknown notifier: %v", err)
	}
}

func ruleNames(s *Sink) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n []string
	for _, r := range s.engine.rules {
		n = append(n, r.Name)
	}
	return strings.Join(n, " ")
}

func TestNotifierConfigErrors(t *testing.T) {
	for _, nc := range []NotifierConfig{{Name: "x", Type: "pager"}, {Name: "x", Type: "webhook", URL: "ftp://x"},
		{Name: "x", Type: "exec"}, {Name: "x", Type: "smtp", SMTP: "nohost"}, {Name: "x", Type: "exec", Command: "a | b"}} {
		if _, err := buildNotifier(nc, "a", slog.Default()); err == nil {
			t.Errorf("%+v accepted", nc)
		}
	}
}

// TestWindowRefilledFromTrendStore: after a restart (no samples in memory)
// a window is refilled from the trend store, so "avg of the last 5" judges
// five samples, not the first one that arrives. Without a store it cannot
// be, and the lone new sample decides.
func TestWindowRefilledFromTrendStore(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		withStore  bool
		wantFiring int
	}{{"with store", true, 1}, {"without store", false, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ts, err := sqlite.Open(ctx, filepath.Join(dir, "trend.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer ts.Close()
			// Before the restart: four slow answers (and one from
			// another check, which must not count).
			var past []model.Result
			for i := range 4 {
				past = append(past, *result("web", t0.Add(time.Duration(i)*time.Second), model.OK, model.Hard, metric("lat", 200)))
			}
			past = append(past, *result("other", t0.Add(3*time.Second), model.OK, model.Hard, metric("lat", -10000)))
			if err := ts.WriteBatch(ctx, past); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "rules.lua"), []byte(`rule { name = "slow", metric = "lat", samples = 5,
				condition = function(w) return w:avg() > 100 end }`), 0o644)
			var st store.Store
			if tc.withStore {
				st = ts
			}
			s := newSinkWithStore(t, dir, Settings{Rules: []string{"rules.lua"}, Notifier: []NotifierConfig{{Name: "log", Type: "log"}}}, st)
			defer s.Close()
			// One fast answer: avg(200, 200, 200, 200, 50) = 170.
			if err := s.WriteBatch(ctx, []model.Result{*result("web", t0.Add(4*time.Second), model.OK, model.Hard, metric("lat", 50))}); err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().Firing; got != tc.wantFiring {
				t.Errorf("firing %d, want %d (stats %+v)", got, tc.wantFiring, s.Stats())
			}
			if tc.withStore && s.Stats().Errors != 0 {
				t.Errorf("refill errors: %+v", s.Stats())
			}
		})
	}
}
