package lineproto

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/sink"
)

// httpOutput POSTs batches to an InfluxDB-compatible write endpoint
// (InfluxDB 1 /write, 2 /api/v2/write, 3, Telegraf's listeners,
// VictoriaMetrics…).
type httpOutput struct {
	url       string // as configured, plus precision=ns when it had none
	shown     string // url without credentials, for errors and logs
	header    http.Header
	timeout   time.Duration
	gzip      bool
	precision lineprotocol.Precision // from the URL's precision parameter
	uintAsInt bool                   // see nativeUint

	custom *http.Client // from Type.Client
	client *http.Client

	zw   *gzip.Writer
	zbuf bytes.Buffer
}

func (h *httpOutput) connect() {
	if h.custom != nil {
		h.client = h.custom
		return
	}
	if h.client != nil {
		return
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	h.client = &http.Client{Transport: tr, Timeout: h.timeout, CheckRedirect: checkRedirect}
}

// nativeUint reports whether the endpoint at path takes unsigned fields:
// InfluxDB 2's and 3's own write APIs do. InfluxDB 1.x rejects a whole
// write that has one, so elsewhere (/write, proxies, other receivers)
// uints are written as integers, which every receiver takes.
func nativeUint(path string) bool {
	return strings.HasSuffix(path, "/api/v2/write") || strings.HasSuffix(path, "/api/v3/write_lp")
}

// checkRedirect follows only 307 and 308, which repeat the POST with its
// body; a 301/302/303 would turn it into a GET that writes nothing, so
// that response is returned and reported instead.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if c := req.Response.StatusCode; c != http.StatusTemporaryRedirect && c != http.StatusPermanentRedirect {
		return http.ErrUseLastResponse
	}
	return nil
}

func (h *httpOutput) close() {
	if h.client != nil && h.custom == nil {
		h.client.CloseIdleConnections()
		h.client = nil
	}
}

// post writes the lines of body; ends[i] is where line i ends.
func (h *httpOutput) post(ctx context.Context, body []byte, ends []int) error {
	if h.client == nil {
		return errors.New("lineproto: not connected")
	}
	return h.postLines(ctx, body, ends, 0, len(ends))
}

// postLines writes lines [lo, hi). A 413 splits them in halves, each
// written on its own, so a batch too large for the server still goes
// through; only a single line that is too large is refused for good.
func (h *httpOutput) postLines(ctx context.Context, body []byte, ends []int, lo, hi int) error {
	start := 0
	if lo > 0 {
		start = ends[lo-1]
	}
	code, status, excerpt, err := h.send(ctx, body[start:ends[hi-1]])
	if err != nil {
		return fmt.Errorf("lineproto: POST %s: %w", h.shown, err)
	}
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestEntityTooLarge && hi-lo > 1:
		mid := lo + (hi-lo)/2
		if err := h.postLines(ctx, body, ends, lo, mid); err != nil {
			return err
		}
		return h.postLines(ctx, body, ends, mid, hi)
	}
	err = fmt.Errorf("lineproto: POST %s: %s: %s", h.shown, status, excerpt)
	if retryable(code) {
		return err
	}
	return sink.Permanent(err)
}

// retryable reports whether a failed write may succeed later unchanged.
// Besides timeouts, throttling and server errors, that is what an operator
// fixes rather than the data: authentication (401, 403), a missing
// database or bucket (404) and a redirect not followed. Dead-lettering
// every result during such an outage would take them off the durable
// path; retrying keeps them in the spool until the endpoint is fixed.
func retryable(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests,
		code == http.StatusUnauthorized, code == http.StatusForbidden, code == http.StatusNotFound:
		return true
	case code >= 400 && code < 500:
		return false // the data itself is refused (400 bad line, 413 single line, 422 out of retention…)
	}
	return true // 5xx, and 3xx or 1xx that were not followed
}

// send makes one request and returns the status code, status line and an
// excerpt of the response body.
func (h *httpOutput) send(ctx context.Context, payload []byte) (int, string, string, error) {
	if h.gzip {
		h.zbuf.Reset()
		if h.zw == nil {
			h.zw = gzip.NewWriter(&h.zbuf)
		} else {
			h.zw.Reset(&h.zbuf)
		}
		if _, err := h.zw.Write(payload); err != nil {
			return 0, "", "", fmt.Errorf("gzip: %w", err)
		}
		if err := h.zw.Close(); err != nil {
			return 0, "", "", fmt.Errorf("gzip: %w", err)
		}
		payload = h.zbuf.Bytes()
	}
	bodies := &bodySet{}
	defer bodies.release()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bodies.reader(payload))
	if err != nil {
		return 0, "", "", err
	}
	req.ContentLength = int64(len(payload))
	req.GetBody = func() (io.ReadCloser, error) { return bodies.reader(payload), nil }
	req.Header = h.header.Clone()
	resp, err := h.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, query credentials (p=, token=) and
		// all; the caller names the endpoint redacted.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, "", "", err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// Drain a little more so that the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Status, excerpt(head), nil
}

// excerpt makes a response body fit for one log line.
func excerpt(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(b) == 512 {
		s += "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// bodySet hands out request bodies over a buffer the sink reuses, and
// cuts them off once the request is done: the transport may still read a
// body after Do has returned (when the server answered before reading
// it), and must not see the next batch's bytes.
type bodySet struct {
	mu       sync.Mutex
	readers  []*guardedReader
	released bool
}

func (s *bodySet) reader(b []byte) io.ReadCloser {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &guardedReader{set: s, b: b}
	if s.released {
		r.b = nil
	}
	s.readers = append(s.readers, r)
	return r
}

func (s *bodySet) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = true
	for _, r := range s.readers {
		r.b = nil
	}
}

var errBodyReleased = errors.New("request body no longer available")

type guardedReader struct {
	set *bodySet
	b   []byte // nil once released
	off int
}

func (r *guardedReader) Read(p []byte) (int, error) {
	r.set.mu.Lock()
	defer r.set.mu.Unlock()
	if r.b == nil {
		return 0, errBodyReleased
	}
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func (r *guardedReader) Close() error { return nil }

// redact hides credentials in a URL: a userinfo password and the
// InfluxDB 1 query parameters p= / password= and token=.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	if u.RawQuery != "" {
		q := u.Query()
		hidden := false
		for _, k := range []string{"p", "password", "token"} {
			if q.Has(k) {
				q.Set(k, "xxxxx")
				hidden = true
			}
		}
		if hidden {
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}
