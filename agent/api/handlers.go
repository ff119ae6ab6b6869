package api

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/scheduler"
	"github.com/reconmon/recon/agent/store"
	"github.com/reconmon/recon/agent/stream"
	"github.com/reconmon/recon/sinks/lineproto"
)

//go:embed openapi.json
var openapiJSON []byte

func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, h)
}

func (s *Server) routesInit() {
	s.handle("GET /healthz", s.healthz)
	s.handle("GET /metrics", s.metrics)
	s.handle("GET /api/v1/openapi.json", s.openapi)
	s.handle("GET /api/v1/checks", s.listChecks)
	s.handle("GET /api/v1/checks/{id}", s.getCheck)
	s.handle("POST /api/v1/checks/{id}/run", s.runCheck)
	s.handle("GET /api/v1/checks/{id}/stream", s.streamCheck)
	s.handle("GET /api/v1/series", s.series)
	s.handle("GET /api/v1/history", s.history)
	s.handle("POST /api/v1/results", s.postResults)
	s.handle("POST /api/v1/write", s.postWrite)
	s.handle("GET /api/v1/alerts", s.alerts)
	s.handle("GET /api/v1/silences", s.alerts)
	s.handle("POST /api/v1/silences", s.alerts)
	s.handle("DELETE /api/v1/silences/{id}", s.alerts)
	s.handle("POST /api/v1/reload", s.reload)
	s.mux.HandleFunc("/api/", s.notFound)
	s.mux.HandleFunc("/", s.ui)
}

// notFound answers JSON 405 when the path exists with other methods, and
// JSON 404 otherwise.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/api/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
}

type apiError struct {
	Error   string   `json:"error"`
	Details []string `json:"details,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string, details ...string) {
	writeJSON(w, status, apiError{Error: msg, Details: details})
}

func (s *Server) store() store.Store {
	if s.opts.Store == nil {
		return nil
	}
	return s.opts.Store()
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "agent": s.opts.Agent})
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.opts.Metrics == nil {
		writeError(w, http.StatusServiceUnavailable, "metrics are not configured")
		return
	}
	s.opts.Metrics.ServeHTTP(w, r)
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapiJSON)
}

// checkView is the JSON form of a scheduled check.
type checkView struct {
	ID          uuid.UUID         `json:"id"`
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Target      string            `json:"target,omitempty"`
	Period      string            `json:"period"`
	Timeout     string            `json:"timeout"`
	MaxAttempts int               `json:"max_attempts"`
	Tags        map[string]string `json:"tags,omitempty"`
	Source      string            `json:"source"`
	Running     bool              `json:"running"`
	NextRun     *time.Time        `json:"next_run,omitempty"`
	Runs        uint64            `json:"runs"`
	Late        uint64            `json:"late"`
	Last        json.RawMessage   `json:"last"`
}

func view(st scheduler.CheckState) checkView {
	c := st.Check
	v := checkView{ID: c.ID, Name: c.Name, Type: c.Type, Target: c.Target, Period: c.Period.String(),
		Timeout: c.Timeout.String(), MaxAttempts: c.MaxAttempts, Tags: c.Tags, Source: c.Source,
		Running: st.Running, Runs: st.Runs, Late: st.Late, Last: json.RawMessage("null")}
	if !st.Next.IsZero() {
		n := st.Next
		v.NextRun = &n
	}
	if st.Last != nil {
		v.Last = st.Last.AppendJSON(nil)
	}
	return v
}

func (s *Server) listChecks(w http.ResponseWriter, r *http.Request) {
	states := s.opts.Scheduler.Checks()
	q := r.URL.Query()
	filter, status := strings.ToLower(q.Get("q")), strings.ToUpper(q.Get("status"))
	out := make([]checkView, 0, len(states))
	for _, st := range states {
		if filter != "" && !strings.Contains(strings.ToLower(st.Check.Name), filter) && !strings.Contains(strings.ToLower(st.Check.Target), filter) {
			continue
		}
		if status != "" && (st.Last == nil || st.Last.Status.String() != status) {
			continue
		}
		out = append(out, view(st))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"checks": out, "agent": s.opts.Agent})
}

// checkID resolves a {id} that is a UUID or a check name.
func (s *Server) checkID(raw string) (uuid.UUID, bool) {
	if id, err := uuid.Parse(raw); err == nil {
		if _, ok := s.opts.Scheduler.Check(id); ok {
			return id, true
		}
	}
	return s.opts.Scheduler.Lookup(raw)
}

func (s *Server) getCheck(w http.ResponseWriter, r *http.Request) {
	id, ok := s.checkID(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no check %q", r.PathValue("id")))
		return
	}
	st, _ := s.opts.Scheduler.Check(id)
	v := view(st)
	resp := map[string]any{"check": v}
	if st := s.store(); st != nil {
		if names, err := st.MetricNames(r.Context(), id); err == nil {
			resp["metrics"] = names
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) runCheck(w http.ResponseWriter, r *http.Request) {
	id, ok := s.checkID(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no check %q", r.PathValue("id")))
		return
	}
	st, _ := s.opts.Scheduler.Check(id)
	if st.Check.Type == "passive" {
		writeError(w, http.StatusConflict, "passive checks are not run by recon; submit results to /api/v1/results")
		return
	}
	res, err := s.opts.Scheduler.RunNow(r.Context(), id)
	switch {
	case errors.Is(err, scheduler.ErrRunning):
		writeError(w, http.StatusConflict, "the check is running; try again when it finishes")
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(res.AppendJSON(nil), '\n'))
	}
}

// streamCheck serves Server-Sent Events of a clone of the check.
func (s *Server) streamCheck(w http.ResponseWriter, r *http.Request) {
	if s.opts.Streams == nil {
		writeError(w, http.StatusServiceUnavailable, "temporal streaming is not available")
		return
	}
	id, ok := s.checkID(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no check %q", r.PathValue("id")))
		return
	}
	period := time.Second
	if p := r.URL.Query().Get("period"); p != "" {
		d, err := time.ParseDuration(p)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("period %q: %v", p, err))
			return
		}
		period = d
	}
	watcher, err := s.opts.Streams.Watch(id, period, 32)
	switch {
	case errors.Is(err, stream.ErrPeriod):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	defer watcher.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n: streaming a clone of %s every %v\n\n", id, period)
	rc.Flush()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	var buf []byte
	for {
		select {
		case <-r.Context().Done():
			return
		case res, ok := <-watcher.C:
			if !ok {
				// Dropped for falling behind; the client reconnects.
				return
			}
			buf = append(buf[:0], "event: result\ndata: "...)
			buf = res.AppendJSON(buf)
			buf = append(buf, "\n\n"...)
			rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := w.Write(buf); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		case <-heartbeat.C:
			rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// parseTime accepts RFC 3339, Unix seconds (with fraction) and durations
// relative to now ("-1h", "now").
func parseTime(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "" || s == "now":
		return now, nil
	case strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+"):
		d, err := time.ParseDuration(s)
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(d), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// seriesQuery reads check, metric, from, to and step.
func (s *Server) seriesQuery(r *http.Request, needMetric bool) (store.SeriesQuery, error) {
	q := r.URL.Query()
	var sq store.SeriesQuery
	check := q.Get("check")
	if check == "" {
		return sq, errors.New("check is required (id or name)")
	}
	if id, err := uuid.Parse(check); err == nil {
		sq.CheckID = id
	} else if id, ok := s.opts.Scheduler.Lookup(check); ok {
		sq.CheckID = id
	} else {
		return sq, fmt.Errorf("no check %q", check)
	}
	sq.Metric = q.Get("metric")
	if needMetric && sq.Metric == "" {
		return sq, errors.New("metric is required")
	}
	now := time.Now()
	var err error
	if sq.To, err = parseTime(q.Get("to"), now); err != nil {
		return sq, fmt.Errorf("to: %v", err)
	}
	from := q.Get("from")
	if from == "" {
		from = "-1h"
	}
	if sq.From, err = parseTime(from, now); err != nil {
		return sq, fmt.Errorf("from: %v", err)
	}
	if !sq.From.Before(sq.To) {
		return sq, errors.New("from must be before to")
	}
	if st := q.Get("step"); st != "" {
		if sq.Step, err = time.ParseDuration(st); err != nil || sq.Step < 0 {
			return sq, fmt.Errorf("step %q: want a duration such as 10s or 5m", st)
		}
	} else {
		// About a thousand points whatever the range.
		sq.Step = sq.To.Sub(sq.From) / 1000
	}
	return sq, nil
}

func (s *Server) series(w http.ResponseWriter, r *http.Request) {
	st := s.store()
	if st == nil {
		writeError(w, http.StatusServiceUnavailable, "no queryable trend store is configured (add a sqlite or postgres sink)")
		return
	}
	q, err := s.seriesQuery(r, true)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ser, err := st.Series(r.Context(), q)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "query the store: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ser)
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	st := s.store()
	if st == nil {
		writeError(w, http.StatusServiceUnavailable, "no queryable trend store is configured (add a sqlite or postgres sink)")
		return
	}
	q, err := s.seriesQuery(r, false)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit := 1000
	if l := r.URL.Query().Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > 100000 {
			writeError(w, http.StatusBadRequest, "limit must be 1..100000")
			return
		}
	}
	pts, err := st.StatusHistory(r.Context(), q.CheckID, q.From, q.To, limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "query the store: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"check_id": q.CheckID, "history": pts})
}

// readBody reads a request body up to limit, answering 413 beyond it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", limit))
		} else {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		}
		return nil, false
	}
	return b, true
}

// postResults accepts passive results as one JSON object, an array, or
// newline-delimited objects. All are validated before any is accepted.
func (s *Server) postResults(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, maxJSONBody)
	if !ok {
		return
	}
	now := time.Now()
	var raws []json.RawMessage
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		writeError(w, http.StatusBadRequest, "empty body: send a result object, an array or NDJSON")
		return
	case trimmed[0] == '[':
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			writeError(w, http.StatusBadRequest, "decode array: "+err.Error())
			return
		}
	default:
		sc := bufio.NewScanner(bytes.NewReader(trimmed))
		sc.Buffer(make([]byte, 64<<10), maxJSONBody)
		for sc.Scan() {
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
				raws = append(raws, append(json.RawMessage(nil), line...))
			}
		}
	}
	results := make([]model.Result, 0, len(raws))
	var problems []string
	for i, raw := range raws {
		res, err := model.DecodeJSON(raw, now)
		if err != nil {
			problems = append(problems, fmt.Sprintf("result %d: %v", i, err))
			continue
		}
		results = append(results, res)
	}
	s.submit(w, r, results, problems)
}

func (s *Server) postWrite(w http.ResponseWriter, r *http.Request) {
	prec, err := lineproto.ParsePrecision(r.URL.Query().Get("precision"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, ok := readBody(w, r, maxWriteBody)
	if !ok {
		return
	}
	results, err := lineproto.Decode(body, prec, time.Now(), s.opts.Agent)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.submit(w, r, results, nil)
}

// submit hands results to their passive checks, all or nothing.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, results []model.Result, problems []string) {
	ids := make([]uuid.UUID, len(results))
	for i, res := range results {
		id, ok := s.opts.Scheduler.Lookup(res.Check)
		if !ok {
			problems = append(problems, fmt.Sprintf("result %d: no check named %q is configured", i, res.Check))
			continue
		}
		if st, _ := s.opts.Scheduler.Check(id); st.Check.Type != "passive" {
			problems = append(problems, fmt.Sprintf("result %d: check %q is not passive (type = %q)", i, res.Check, st.Check.Type))
			continue
		}
		ids[i] = id
	}
	if len(problems) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "no result was accepted", problems...)
		return
	}
	for i, res := range results {
		if _, err := s.opts.Scheduler.Submit(r.Context(), ids[i], res); err != nil {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("result %d: %v (results before it were accepted)", i, err))
			return
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(results)})
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request) {
	if s.opts.Alerts == nil {
		writeError(w, http.StatusServiceUnavailable, "no alerter is configured (add an [[sink]] of type \"alerter\")")
		return
	}
	s.opts.Alerts.ServeHTTP(w, r)
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if err := s.opts.Runtime.Reload(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "reload failed; the running configuration is kept", strings.Split(err.Error(), "\n")...)
		return
	}
	cfg := s.opts.Runtime.Config()
	writeJSON(w, http.StatusOK, map[string]any{"status": "reloaded", "checks": len(cfg.Checks), "sinks": len(cfg.Sinks)})
}

func (s *Server) ui(w http.ResponseWriter, r *http.Request) {
	if s.opts.UI != nil {
		s.opts.UI.ServeHTTP(w, r)
		return
	}
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, "<!doctype html><title>recon</title><p>recon agent "+s.opts.Agent+": the web UI is not built into this binary.")
}
