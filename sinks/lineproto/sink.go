package lineproto

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

// Settings are the keys of a sink with type = "lineproto".
type Settings struct {
	// Output is stdout (default), file or http.
	Output string `toml:"output"`
	// Path of the file (appended, fsynced per batch), relative to data_dir.
	Path string `toml:"path"`
	// URL of an InfluxDB-compatible write endpoint (/write?db= or /api/v2/write?org=&bucket=).
	URL string `toml:"url"`
	// Token is sent as "Authorization: <auth_scheme> <token>"; never logged.
	Token string `toml:"token"`
	// AuthScheme is Token (InfluxDB 2, default) or Bearer.
	AuthScheme string `toml:"auth_scheme"`
	// Headers are added to every request.
	Headers map[string]string `toml:"headers"`
	// Timeout of a request (default 10s).
	Timeout config.Duration `toml:"timeout"`
	// Gzip compresses request bodies.
	Gzip bool `toml:"gzip"`
}

// Type is the lineproto sink type. Stdout is where output = "stdout" goes;
// nil means os.Stdout.
type Type struct {
	Stdout io.Writer
	Client *http.Client // nil: a client with the configured timeout
}

func (t *Type) NewSettings() any { return &Settings{} }

// New validates the settings; it opens nothing.
func (t *Type) New(spec *sink.Spec, env sink.Env) (sink.Sink, error) {
	s, ok := spec.Settings.(*Settings)
	if !ok || s == nil {
		s = &Settings{}
	}
	st := *s
	if st.Output == "" {
		st.Output = "stdout"
	}
	if st.Timeout == 0 {
		st.Timeout = config.Duration(10 * time.Second)
	}
	if st.AuthScheme == "" {
		st.AuthScheme = "Token"
	}
	out := &Sink{settings: st, log: env.Logger}
	if out.log == nil {
		out.log = slog.Default()
	}
	switch st.Output {
	case "stdout":
		out.stdout = t.Stdout
		if out.stdout == nil {
			out.stdout = os.Stdout
		}
	case "file":
		if st.Path == "" {
			return nil, errors.New(`output = "file" needs path`)
		}
		if !filepath.IsAbs(st.Path) {
			st.Path = filepath.Join(env.DataDir, st.Path)
			out.settings.Path = st.Path
		}
	case "http":
		u, err := url.Parse(st.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("url %q: want an http:// or https:// write endpoint", st.URL)
		}
		q := u.Query()
		if q.Get("precision") == "" {
			q.Set("precision", "ns")
			u.RawQuery = q.Encode()
		}
		out.url = u.String()
		out.client = t.Client
		if out.client == nil {
			out.client = &http.Client{Timeout: st.Timeout.D()}
		}
	default:
		return nil, fmt.Errorf("output %q: want stdout, file or http", st.Output)
	}
	return out, nil
}

// Sink writes batches as line protocol.
type Sink struct {
	settings Settings
	log      *slog.Logger
	stdout   io.Writer
	url      string
	client   *http.Client

	mu      sync.Mutex
	file    *os.File
	enc     Encoder
	buf     []byte
	skipped atomic.Uint64
}

// Skipped counts metric values left out because line protocol cannot
// represent them (NaN, ±Inf).
func (s *Sink) Skipped() uint64 { return s.skipped.Load() }

func (s *Sink) Connect(context.Context) error {
	if s.settings.Output != "file" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.settings.Path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(s.settings.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	s.file = f
	return nil
}

func (s *Sink) encode(batch []model.Result) ([]byte, error) {
	b := s.buf[:0]
	for i := range batch {
		var n int
		var err error
		b, n, err = s.enc.Append(b, &batch[i])
		if err != nil {
			return nil, sink.Permanent(err)
		}
		if n > 0 {
			s.skipped.Add(uint64(n))
			s.log.Warn("metric values line protocol cannot represent (NaN/Inf) were left out", "check", batch[i].Check, "count", n)
		}
	}
	s.buf = b
	return b, nil
}

func (s *Sink) WriteBatch(ctx context.Context, batch []model.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, err := s.encode(batch)
	if err != nil {
		return err
	}
	switch s.settings.Output {
	case "stdout":
		// One write per batch so lines never interleave with other writers.
		_, err := s.stdout.Write(body)
		return err
	case "file":
		if s.file == nil {
			return errors.New("file not open")
		}
		if _, err := s.file.Write(body); err != nil {
			return err
		}
		return s.file.Sync()
	default:
		return s.post(ctx, body, len(batch), batch)
	}
}

func (s *Sink) post(ctx context.Context, body []byte, n int, batch []model.Result) error {
	payload := body
	if s.settings.Gzip {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(body)
		zw.Close()
		payload = zb.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(payload))
	if err != nil {
		return sink.Permanent(err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if s.settings.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if s.settings.Token != "" {
		req.Header.Set("Authorization", s.settings.AuthScheme+" "+s.settings.Token)
	}
	for k, v := range s.settings.Headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("lineproto: POST %s: %w", redact(s.url), err)
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestEntityTooLarge && n > 1:
		// Too large for the server: write each half on its own.
		mid := n / 2
		for _, half := range [][]model.Result{batch[:mid], batch[mid:]} {
			b, err := s.encodeCopy(half)
			if err != nil {
				return err
			}
			if err := s.post(ctx, b, len(half), half); err != nil {
				return err
			}
		}
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("lineproto: POST %s: %s: %s", redact(s.url), resp.Status, strings.TrimSpace(string(excerpt)))
	default:
		return sink.Permanent(fmt.Errorf("lineproto: POST %s: %s: %s", redact(s.url), resp.Status, strings.TrimSpace(string(excerpt))))
	}
}

// encodeCopy encodes into a fresh buffer (the shared one holds the parent
// batch while halves are written).
func (s *Sink) encodeCopy(batch []model.Result) ([]byte, error) {
	var e Encoder
	var b []byte
	for i := range batch {
		var err error
		if b, _, err = e.Append(b, &batch[i]); err != nil {
			return nil, sink.Permanent(err)
		}
	}
	return b, nil
}

// redact hides credentials in a URL: the password of userinfo and the
// InfluxDB 1 query parameters p= and token=.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	q := u.Query()
	for _, k := range []string{"p", "password", "token"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		err := s.file.Close()
		s.file = nil
		return err
	}
	return nil
}
