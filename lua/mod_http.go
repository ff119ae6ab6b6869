package lua

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"sort"
	"strings"
	"sync"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// httpClients are the transports shared by every run of a Type. Keep-alive
// is off: a check measures a fresh connection each time, as check_http
// does, and 100,000 checks must not pin idle sockets. No proxy from the
// environment: a check talks to its target.
type httpClients struct {
	once             sync.Once
	verify, insecure *http.Transport
}

func newTransport(roots *x509.CertPool, insecure bool) *http.Transport {
	return &http.Transport{
		DialContext:            (&net.Dialer{KeepAlive: -1}).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: roots, InsecureSkipVerify: insecure},
		DisableKeepAlives:      true,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 1 << 20,
	}
}

func (h *httpClients) get(t *Type, insecure bool) *http.Transport {
	h.once.Do(func() {
		h.verify = newTransport(t.opts.RootCAs, false)
		h.insecure = newTransport(t.opts.RootCAs, true)
	})
	if insecure {
		return h.insecure
	}
	return h.verify
}

func (h *httpClients) close() {
	if h.verify != nil {
		h.verify.CloseIdleConnections()
		h.insecure.CloseIdleConnections()
	}
}

var httpOptions = []string{"headers", "timeout", "body", "insecure", "ca", "follow_redirects", "max_body"}

// buildHTTP:
//
//	http.get(url [, opts])             → response | nil, err
//	http.post(url, body [, opts])      → response | nil, err
//	http.request(method, url [, opts]) → response | nil, err
//
// opts: headers = {name = value}, timeout (seconds or "2s"; default: the
// check's), body (request), insecure (skip TLS verification; default
// false), ca (PEM roots), follow_redirects (default true), max_body (bytes
// kept; default 1 MiB). response: status, status_line, proto, url (after
// redirects), headers (lower-case names), body, body_truncated, elapsed
// (seconds, through the last body byte), tls (for https: version, cipher,
// days_left, not_after of the server certificate).
func (st *state) buildHTTP() *glua.LTable {
	L := st.L
	m := L.NewTable()
	m.RawSetString("get", L.NewFunction(func(L *glua.LState) int {
		url := L.CheckString(1)
		o := getOpts(L, 2, "http.get", httpOptions...)
		return st.httpDo(L, "http.get", http.MethodGet, url, o.get("body"), o)
	}))
	m.RawSetString("post", L.NewFunction(func(L *glua.LState) int {
		url := L.CheckString(1)
		body := L.CheckAny(2)
		o := getOpts(L, 3, "http.post", httpOptions...)
		return st.httpDo(L, "http.post", http.MethodPost, url, body, o)
	}))
	m.RawSetString("request", L.NewFunction(func(L *glua.LState) int {
		method := strings.ToUpper(L.CheckString(1))
		url := L.CheckString(2)
		o := getOpts(L, 3, "http.request", httpOptions...)
		return st.httpDo(L, "http.request", method, url, o.get("body"), o)
	}))
	return m
}

func (st *state) httpDo(L *glua.LState, fn, method, url string, body glua.LValue, o opts) int {
	var rd io.Reader
	switch b := body.(type) {
	case *glua.LNilType:
	case glua.LString:
		rd = strings.NewReader(string(b))
	default:
		L.RaiseError("%s: body must be a string, got %s", fn, body.Type().String())
	}
	ctx := st.run.ctx
	if d := o.duration("timeout", 0); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	maxBody := o.integer("max_body", st.t.opts.HTTPMaxBody)
	if maxBody < 0 || maxBody > st.t.opts.MaxStringSize {
		L.RaiseError("%s: max_body must be 0 to %d", fn, st.t.opts.MaxStringSize)
	}
	insecure := o.boolean("insecure", false)
	tr := st.t.http.get(st.t, insecure)
	if ca := o.str("ca", ""); ca != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(ca)) {
			L.RaiseError("%s: ca: no PEM certificate found", fn)
		}
		tr = newTransport(pool, insecure)
		defer tr.CloseIdleConnections()
	}
	client := &http.Client{Transport: tr}
	if !o.boolean("follow_redirects", true) {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return fail(L, "%s %s: %v", method, url, err)
	}
	headers := o.stringMap("headers")
	for _, k := range sortedKeys(headers) {
		v := headers[k]
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "recon-lua/1")
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return fail(L, "%s %s: %v", method, url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxBody)+1))
	truncated := len(data) > maxBody
	if truncated {
		data = data[:maxBody]
	} else if err != nil {
		return fail(L, "%s %s: reading the body: %v", method, url, unwrapURLError(err))
	}
	elapsed := time.Since(start)

	t := L.CreateTable(0, 10)
	t.RawSetString("status", glua.LNumber(resp.StatusCode))
	t.RawSetString("status_line", glua.LString(resp.Status))
	t.RawSetString("proto", glua.LString(resp.Proto))
	t.RawSetString("url", glua.LString(resp.Request.URL.String()))
	h := L.CreateTable(0, len(resp.Header))
	names := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		h.RawSetString(strings.ToLower(k), glua.LString(strings.Join(resp.Header[k], ", ")))
	}
	t.RawSetString("headers", h)
	t.RawSetString("body", glua.LString(data))
	t.RawSetString("body_truncated", glua.LBool(truncated))
	t.RawSetString("elapsed", glua.LNumber(elapsed.Seconds()))
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		leaf := resp.TLS.PeerCertificates[0]
		ti := L.CreateTable(0, 4)
		ti.RawSetString("version", glua.LString(tls.VersionName(resp.TLS.Version)))
		ti.RawSetString("cipher", glua.LString(tls.CipherSuiteName(resp.TLS.CipherSuite)))
		ti.RawSetString("not_after", glua.LNumber(leaf.NotAfter.Unix()))
		ti.RawSetString("days_left", glua.LNumber(daysLeft(leaf.NotAfter)))
		t.RawSetString("tls", ti)
	}
	L.Push(t)
	return 1
}

// unwrapURLError drops net/http's `Get "url": ` prefix: the message
// already names method and URL.
func unwrapURLError(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func daysLeft(t time.Time) float64 {
	d := time.Until(t).Hours() / 24
	return float64(int64(d*100)) / 100 // two decimals: stable output
}
