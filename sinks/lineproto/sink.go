package lineproto

import (
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

	"golang.org/x/net/http/httpguts"

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

// DefaultTimeout bounds one HTTP request when timeout is not set.
const DefaultTimeout = 10 * time.Second

// Type is the lineproto sink type. Its fields are options for embedding
// and tests; the zero value is what the agent uses.
type Type struct {
	// Stdout is where output = "stdout" goes; nil means os.Stdout.
	Stdout io.Writer
	// Client, when set, sends the HTTP requests instead of a client built
	// by Connect (custom TLS, proxies); its own timeout applies.
	Client *http.Client
}

func (t *Type) NewSettings() any { return &Settings{} }

// New validates the settings and builds the sink; it opens nothing.
func (t *Type) New(spec *sink.Spec, env sink.Env) (sink.Sink, error) {
	var st Settings
	if s, ok := spec.Settings.(*Settings); ok && s != nil {
		st = *s
	}
	if st.Output == "" {
		st.Output = "stdout"
	}
	if st.Timeout == 0 {
		st.Timeout = config.Duration(DefaultTimeout)
	}
	s := &Sink{settings: st, log: env.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("sink", spec.Name)
	httpOnly := map[string]bool{"url": st.URL != "", "token": st.Token != "", "auth_scheme": st.AuthScheme != "",
		"headers": len(st.Headers) > 0, "gzip": st.Gzip}
	for _, key := range []string{"url", "token", "auth_scheme", "headers", "gzip"} {
		if httpOnly[key] && st.Output != "http" {
			return nil, fmt.Errorf("lineproto: %s is only used with output = \"http\"", key)
		}
	}
	if st.Path != "" && st.Output != "file" {
		return nil, errors.New(`lineproto: path is only used with output = "file"`)
	}
	switch st.Output {
	case "stdout":
		s.stdout = t.Stdout
		if s.stdout == nil {
			s.stdout = os.Stdout
		}
	case "file":
		if st.Path == "" {
			return nil, errors.New(`lineproto: output = "file" needs path`)
		}
		if !filepath.IsAbs(st.Path) {
			s.settings.Path = filepath.Join(env.DataDir, st.Path)
		}
	case "http":
		h, err := newHTTPOutput(&st, t.Client)
		if err != nil {
			return nil, fmt.Errorf("lineproto: %w", err)
		}
		s.http = h
		s.enc.Precision = h.precision
		s.enc.UintAsInt = h.uintAsInt
	default:
		return nil, fmt.Errorf("lineproto: output %q: want stdout, file or http", st.Output)
	}
	return s, nil
}

// Sink writes batches as line protocol, one line per result.
type Sink struct {
	settings Settings
	log      *slog.Logger
	stdout   io.Writer
	http     *httpOutput

	mu   sync.Mutex // one batch at a time; Reload and Close wait for it
	file syncFile
	enc  Encoder
	buf  []byte
	ends []int // ends[i] is where result i's line ends in buf

	skipped atomic.Uint64
}

// syncFile is what the file output needs of an *os.File (tests observe
// the calls).
type syncFile interface {
	io.WriteCloser
	Sync() error
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
}

// Skipped counts metric and tag values left out because line protocol
// cannot carry them (NaN, ±Inf, a second value under the same key).
func (s *Sink) Skipped() uint64 { return s.skipped.Load() }

// Connect opens the file or builds the HTTP client. It may be called
// again after a failure.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.settings.Output {
	case "file":
		if s.file != nil {
			return nil
		}
		f, err := openAppend(s.settings.Path)
		if err != nil {
			return fmt.Errorf("lineproto: %w", err)
		}
		s.file = f
	case "http":
		s.http.connect()
	}
	return nil
}

// openAppend opens path for appending, creating it (0640) and its
// directory; a new file's directory entry is synced too, so a batch
// reported written survives a crash together with the file that holds it.
func openAppend(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create directory of %s: %w", path, err)
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if d, err := os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("sync directory %s: %w", dir, err)
			}
		}
	}
	return f, nil
}

// Reload reopens the output file (on SIGHUP), so that logrotate can move
// it away: the next batch goes to a new file at path.
func (s *Sink) Reload() error {
	if s.settings.Output != "file" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := openAppend(s.settings.Path)
	if err != nil {
		return fmt.Errorf("lineproto: reopen: %w", err)
	}
	if s.file != nil {
		s.file.Close()
	}
	s.file = f
	return nil
}

// WriteBatch writes every result of the batch or nothing it can avoid
// writing: a result that cannot be encoded fails the batch with a
// permanent error before anything is written (the pipeline then isolates
// it). The file and HTTP outputs are at-least-once: a failed batch is
// written again whole.
func (s *Sink) WriteBatch(ctx context.Context, batch []model.Result) error {
	if len(batch) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	body, err := s.encode(batch)
	if err != nil {
		return err
	}
	switch s.settings.Output {
	case "stdout":
		// One write per batch: lines never interleave with other writers.
		if _, err := s.stdout.Write(body); err != nil {
			return fmt.Errorf("lineproto: write to stdout: %w", err)
		}
		return nil
	case "file":
		return s.writeFile(body)
	default:
		return s.http.post(ctx, body, s.ends)
	}
}

func (s *Sink) encode(batch []model.Result) ([]byte, error) {
	b := s.buf[:0]
	s.ends = s.ends[:0]
	skipped, skippedResults := 0, 0
	var firstSkipped string
	for i := range batch {
		var n int
		var err error
		if b, n, err = s.enc.Append(b, &batch[i]); err != nil {
			return nil, sink.Permanent(err)
		}
		s.ends = append(s.ends, len(b))
		if n > 0 {
			if skipped == 0 {
				firstSkipped = batch[i].Check
			}
			skipped += n
			skippedResults++
		}
	}
	s.buf = b
	if skipped > 0 {
		// Once per batch, not per result: a check that always reports NaN
		// must not flood the log.
		s.skipped.Add(uint64(skipped))
		s.log.Warn("values line protocol cannot carry were left out (NaN/Inf, or a duplicate key)",
			"count", skipped, "results", skippedResults, "first_check", firstSkipped, "total", s.skipped.Load())
	}
	return b, nil
}

func (s *Sink) writeFile(body []byte) error {
	if s.file == nil {
		return errors.New("lineproto: file not open")
	}
	n, err := s.file.Write(body)
	if err != nil {
		// Cut a partly written batch off again, so that the retry does
		// not leave a torn line in the middle of the file.
		if n > 0 {
			if fi, serr := s.file.Stat(); serr == nil && fi.Size() >= int64(n) {
				if terr := s.file.Truncate(fi.Size() - int64(n)); terr != nil {
					s.log.Error("could not remove a partly written batch", "path", s.settings.Path, "err", terr)
				}
			}
		}
		return fmt.Errorf("lineproto: write %s: %w", s.settings.Path, err)
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("lineproto: fsync %s: %w", s.settings.Path, err)
	}
	return nil
}

// Close closes the file or the idle HTTP connections. The sink may be
// connected again.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		s.http.close()
	}
	if s.file != nil {
		err := s.file.Close()
		s.file = nil
		if err != nil {
			return fmt.Errorf("lineproto: close %s: %w", s.settings.Path, err)
		}
	}
	return nil
}

// newHTTPOutput validates the HTTP settings.
func newHTTPOutput(st *Settings, client *http.Client) (*httpOutput, error) {
	u, err := url.Parse(st.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue repeats the URL, credentials and all
		}
		return nil, fmt.Errorf("url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %s: want an http:// or https:// write endpoint", redact(st.URL))
	}
	h := &httpOutput{timeout: st.Timeout.D(), gzip: st.Gzip, custom: client, client: client}
	q := u.Query()
	if p := q.Get("precision"); p != "" {
		if h.precision, err = ParsePrecision(p); err != nil {
			return nil, fmt.Errorf("url %s: %w", redact(st.URL), err)
		}
	} else {
		// Used as given, plus the precision the body is written in.
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += "precision=ns"
	}
	h.uintAsInt = !nativeUint(u.Path)
	h.url = u.String()
	h.shown = redact(h.url)
	h.header = http.Header{}
	for k, v := range st.Headers {
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("headers: %q is not a valid HTTP header", k)
		}
		switch http.CanonicalHeaderKey(k) {
		case "Content-Encoding", "Content-Length", "Transfer-Encoding", "Host":
			return nil, fmt.Errorf("headers: %s is set by the sink", k)
		case "Authorization":
			if st.Token != "" {
				return nil, errors.New("headers: Authorization and token are both set")
			}
		}
		h.header.Set(k, v)
	}
	if st.AuthScheme != "" && st.Token == "" {
		return nil, errors.New("auth_scheme is set but token is not")
	}
	if st.Token != "" {
		scheme := st.AuthScheme
		if scheme == "" {
			scheme = "Token"
		}
		if !httpguts.ValidHeaderFieldName(scheme) { // a scheme is an HTTP token
			return nil, fmt.Errorf("auth_scheme %q is not a valid scheme name", scheme)
		}
		if !httpguts.ValidHeaderFieldValue(st.Token) || strings.TrimSpace(st.Token) != st.Token {
			return nil, errors.New("token contains characters an HTTP header cannot carry")
		}
		h.header.Set("Authorization", scheme+" "+st.Token)
	}
	if h.header.Get("Content-Type") == "" {
		h.header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	if st.Gzip {
		h.header.Set("Content-Encoding", "gzip")
	}
	return h, nil
}
