// Package api is the HTTP API and web UI of the agent on port 43919:
// checks and their last results, run-now, temporal streams (Server-Sent
// Events of check clones), series from the trend store, passive results,
// alerts and silences, reload, Prometheus metrics and the OpenAPI
// description. It listens on loopback by default; any other address needs
// a bearer token or the server refuses to start.
package api

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/scheduler"
	"github.com/reconmon/recon/agent/store"
	"github.com/reconmon/recon/agent/stream"
)

// Runtime is what the API needs from the running agent.
type Runtime interface {
	Config() *config.Config
	Reload() error
}

// Scheduler is what the API needs from the scheduler.
type Scheduler interface {
	Checks() []scheduler.CheckState
	Check(id uuid.UUID) (scheduler.CheckState, bool)
	Lookup(name string) (uuid.UUID, bool)
	RunNow(ctx context.Context, id uuid.UUID) (model.Result, error)
	Submit(ctx context.Context, id uuid.UUID, res model.Result) (model.Result, error)
}

// Options configure a Server.
type Options struct {
	Listen    string
	Token     string
	TLSCert   string
	TLSKey    string
	Agent     string
	Runtime   Runtime
	Scheduler Scheduler
	// Store returns the queryable trend store, or nil when none is configured.
	Store   func() store.Store
	Streams *stream.Hub
	// Alerts serves /api/v1/alerts and /api/v1/silences (the alerter);
	// nil answers 503 there.
	Alerts  http.Handler
	Metrics http.Handler
	UI      http.Handler // the embedded web UI; nil serves a placeholder
	Logger  *slog.Logger
}

// Request body limits.
const (
	maxJSONBody  = 4 << 20
	maxWriteBody = 32 << 20
)

// Server is the HTTP API.
type Server struct {
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	srv  *http.Server
	ln   net.Listener
	// routes lists "METHOD /path" patterns for the OpenAPI sync test.
	routes []string
}

// ErrTokenRequired is returned by New for a non-loopback listener without
// a token.
var ErrTokenRequired = errors.New("api: agent.token is required when agent.listen is not a loopback address")

// New validates the options and builds the server; it listens on nothing.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Listen == "" {
		opts.Listen = config.DefaultListen
	}
	loop, err := isLoopback(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("api: listen %q: %w", opts.Listen, err)
	}
	if !loop && opts.Token == "" {
		return nil, ErrTokenRequired
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return nil, errors.New("api: tls_cert and tls_key must be set together")
	}
	s := &Server{opts: opts, log: opts.Logger.With("component", "api"), mux: http.NewServeMux()}
	s.routesInit()
	return s, nil
}

// isLoopback reports whether every address the listener would bind is a
// loopback one ("", "0.0.0.0" and "::" are not).
func isLoopback(listen string) (bool, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// Handler is the server's root handler (for tests with httptest).
func (s *Server) Handler() http.Handler { return s.withMiddleware(s.mux) }

// Start listens and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("api: listen %s: %w", s.opts.Listen, err)
	}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.opts.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.opts.TLSCert, s.opts.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("api: tls: %w", err)
		}
		s.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, s.srv.TLSConfig)
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API server stopped", "err", err)
		}
	}()
	s.log.Info("API listening", "addr", ln.Addr().String(), "tls", s.opts.TLSCert != "", "auth", s.opts.Token != "")
	return nil
}

// Addr is the listening address (after Start).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close shuts the server down, waiting up to the context for requests.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

func (s *Server) withMiddleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("handler panicked", "path", r.URL.Path, "panic", p)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		if s.opts.Token != "" && needsAuth(r.URL.Path) && !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="recon"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// needsAuth: everything but liveness and the static UI shell (which holds
// no data and asks for the token itself).
func needsAuth(path string) bool {
	switch {
	case path == "/healthz":
		return false
	case strings.HasPrefix(path, "/api/"), path == "/metrics":
		return true
	}
	return false
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		// EventSource cannot set headers: streams may pass ?access_token=.
		tok = r.URL.Query().Get("access_token")
		if tok == "" {
			return false
		}
	}
	return subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.Token)) == 1
}
