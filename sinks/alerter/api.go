package alerter

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// AlertView is an alert instance as the API shows it.
type AlertView struct {
	Key       string            `json:"key"`
	Rule      string            `json:"rule"`
	State     string            `json:"state"`
	Since     time.Time         `json:"since"`
	Severity  string            `json:"severity,omitempty"`
	Labels    map[string]string `json:"labels"`
	Value     float64           `json:"value"`
	Status    string            `json:"status"`
	Output    string            `json:"output"`
	Summary   string            `json:"summary"`
	Flapping  bool              `json:"flapping"`
	FlapPct   float64           `json:"flap_percent"`
	Silenced  bool              `json:"silenced"`
	Inhibited bool              `json:"inhibited"`
	Notified  bool              `json:"notified"`
}

// Alerts returns the current (non-inactive) alert instances.
func (s *Sink) Alerts() []AlertView {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.engine == nil {
		return nil
	}
	now := time.Now()
	out := []AlertView{}
	for _, in := range s.engine.Instances() {
		if in.State == StateResolved && !in.Flap.Flapping {
			continue
		}
		l := in.labels()
		out = append(out, AlertView{Key: in.Key, Rule: in.Rule, State: in.State, Since: in.Since, Severity: in.Severity,
			Labels: l, Value: finite(in.Value), Status: in.Status.String(), Output: in.Output, Summary: s.engine.summary(in),
			Flapping: in.Flap.Flapping, FlapPct: in.Flap.Percent, Silenced: s.silences.Silenced(l, now),
			Inhibited: s.engine.inhibited(l), Notified: in.Notified})
	}
	return out
}

// ServeHTTP answers /api/v1/alerts and /api/v1/silences[/{id}].
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	writeJSON := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(code int, msg string) { writeJSON(code, map[string]string{"error": msg}) }
	s.mu.Lock()
	ready := s.silences != nil
	s.mu.Unlock()
	if !ready {
		fail(http.StatusServiceUnavailable, "the alerter is starting")
		return
	}
	switch {
	case r.URL.Path == "/api/v1/alerts" && r.Method == http.MethodGet:
		writeJSON(http.StatusOK, map[string]any{"alerts": s.Alerts(), "stats": s.Stats()})
	case r.URL.Path == "/api/v1/silences" && r.Method == http.MethodGet:
		writeJSON(http.StatusOK, map[string]any{"silences": s.silences.List()})
	case r.URL.Path == "/api/v1/silences" && r.Method == http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			fail(http.StatusRequestEntityTooLarge, "silence body too large")
			return
		}
		var in Silence
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			fail(http.StatusBadRequest, "decode silence: "+err.Error())
			return
		}
		in.ID, in.CreatedAt = "", time.Time{}
		sil, err := s.silences.Add(in)
		if err != nil {
			fail(http.StatusBadRequest, "silence: "+err.Error())
			return
		}
		writeJSON(http.StatusCreated, sil)
	case strings.HasPrefix(r.URL.Path, "/api/v1/silences/") && r.Method == http.MethodDelete:
		id := strings.TrimPrefix(r.URL.Path, "/api/v1/silences/")
		switch err := s.silences.Expire(id); {
		case errors.Is(err, ErrNoSilence):
			fail(http.StatusNotFound, "no silence "+id)
		case err != nil:
			fail(http.StatusInternalServerError, err.Error())
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		fail(http.StatusNotFound, "no such endpoint")
	}
}
