package lua

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// tcpConn is a connection opened by a script. It is closed when the run
// ends whatever the script does, and any blocked read or write ends with
// the run's context.
type tcpConn struct {
	c       net.Conn
	buf     []byte // received but not yet returned
	timeout time.Duration
	closed  bool
	connect time.Duration
}

const defaultExpectMax = 64 << 10

// buildTCP:
//
//	tcp.connect(host [, port] [, opts]) → conn | nil, err
//	  opts: timeout (connect and default per operation), tls (boolean),
//	  insecure, server_name, ca (PEM)
//	conn:send(data [, opts])            → bytes sent | nil, err
//	conn:receive([n] [, opts])          → up to n bytes (default 4096) as they arrive | nil, err
//	conn:expect(s [, opts])             → everything received through the first s | nil, err
//	  opts: timeout, regex (s is a Go regexp), max (bytes to wait through, default 64 KiB)
//	conn:close()
//	conn.connect_time                   → seconds the connect (and TLS handshake) took
func (st *state) buildTCP() *glua.LTable {
	L := st.L
	meta := L.NewTable()
	methods := L.NewTable()
	meta.RawSetString("__index", L.NewFunction(func(L *glua.LState) int {
		tc := checkConn(L)
		switch L.CheckString(2) {
		case "connect_time":
			L.Push(glua.LNumber(tc.connect.Seconds()))
		case "remote":
			L.Push(glua.LString(tc.c.RemoteAddr().String()))
		default:
			L.Push(methods.RawGetString(L.CheckString(2)))
		}
		return 1
	}))
	meta.RawSetString("__metatable", glua.LFalse)
	meta.RawSetString("__tostring", L.NewFunction(func(L *glua.LState) int {
		tc := checkConn(L)
		L.Push(glua.LString("tcp.conn(" + tc.c.RemoteAddr().String() + ")"))
		return 1
	}))
	st.metas["tcp.conn"] = meta
	methods.RawSetString("send", L.NewFunction(st.tcpSend))
	methods.RawSetString("receive", L.NewFunction(st.tcpReceive))
	methods.RawSetString("expect", L.NewFunction(st.tcpExpect))
	methods.RawSetString("close", L.NewFunction(func(L *glua.LState) int {
		tc := checkConn(L)
		tc.close()
		return 0
	}))

	m := L.NewTable()
	m.RawSetString("connect", L.NewFunction(st.tcpConnect))
	return m
}

func checkConn(L *glua.LState) *tcpConn {
	ud := L.CheckUserData(1)
	tc, ok := ud.Value.(*tcpConn)
	if !ok {
		L.ArgError(1, "tcp connection expected")
	}
	return tc
}

func (tc *tcpConn) close() {
	if !tc.closed {
		tc.closed = true
		tc.c.Close()
	}
}

// dialTLSConfig builds the client TLS configuration of tcp and tls calls.
func (st *state) dialTLSConfig(L *glua.LState, fn, host string, o opts) *tls.Config {
	cfg := &tls.Config{RootCAs: st.t.opts.RootCAs, InsecureSkipVerify: o.boolean("insecure", false)}
	cfg.ServerName = o.str("server_name", "")
	if cfg.ServerName == "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			cfg.ServerName = h
		}
	}
	if ca := o.str("ca", ""); ca != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(ca)) {
			L.RaiseError("%s: ca: no PEM certificate found", fn)
		}
		cfg.RootCAs = pool
	}
	return cfg
}

func (st *state) tcpConnect(L *glua.LState) int {
	host := L.CheckString(1)
	addr := hostPort(L, host, 2, "tcp.connect")
	optArg := 3
	if _, ok := L.Get(2).(*glua.LTable); ok {
		optArg = 2
	}
	o := getOpts(L, optArg, "tcp.connect", "timeout", "tls", "insecure", "server_name", "ca")
	timeout := o.duration("timeout", 0)
	useTLS := o.boolean("tls", false)
	var cfg *tls.Config
	if useTLS {
		cfg = st.dialTLSConfig(L, "tcp.connect", addr, o)
	}
	ctx := st.run.ctx
	cctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(cctx, "tcp", addr)
	if err != nil {
		return fail(L, "tcp.connect %s: %v", addr, netErr(err))
	}
	if useTLS {
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(cctx); err != nil {
			c.Close()
			return fail(L, "tcp.connect %s: TLS handshake: %v", addr, netErr(err))
		}
		c = tc
	}
	conn := &tcpConn{c: c, timeout: timeout, connect: time.Since(start)}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	st.onEnd(func() { stop(); conn.close() })
	ud := L.NewUserData()
	ud.Value = conn
	ud.Metatable = st.metas["tcp.conn"]
	L.Push(ud)
	return 1
}

// deadline of one operation: its timeout, the connection's, or none
// (the run's context still ends it).
func (tc *tcpConn) deadline(o opts) time.Time {
	d := o.duration("timeout", tc.timeout)
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

func (st *state) tcpSend(L *glua.LState) int {
	tc := checkConn(L)
	data := L.CheckString(2)
	o := getOpts(L, 3, "conn:send", "timeout")
	if tc.closed {
		return fail(L, "conn:send: connection closed")
	}
	_ = tc.c.SetWriteDeadline(tc.deadline(o))
	n, err := io.WriteString(tc.c, data)
	if err != nil {
		return fail(L, "conn:send: %v", st.opErr(err))
	}
	L.Push(glua.LNumber(n))
	return 1
}

func (st *state) tcpReceive(L *glua.LState) int {
	tc := checkConn(L)
	n := 4096
	optArg := 2
	if v, ok := L.Get(2).(glua.LNumber); ok {
		n = int(v)
		optArg = 3
		if n <= 0 || n > st.t.opts.MaxStringSize {
			L.ArgError(2, fmt.Sprintf("conn:receive: n must be 1 to %d", st.t.opts.MaxStringSize))
		}
	}
	o := getOpts(L, optArg, "conn:receive", "timeout")
	if len(tc.buf) > 0 {
		k := min(n, len(tc.buf))
		L.Push(glua.LString(tc.buf[:k]))
		tc.buf = tc.buf[k:]
		return 1
	}
	if tc.closed {
		return fail(L, "conn:receive: connection closed")
	}
	_ = tc.c.SetReadDeadline(tc.deadline(o))
	buf := make([]byte, n)
	k, err := tc.c.Read(buf)
	if k > 0 {
		L.Push(glua.LString(buf[:k]))
		return 1
	}
	if err == io.EOF {
		return fail(L, "conn:receive: connection closed by peer")
	}
	return fail(L, "conn:receive: %v", st.opErr(err))
}

func (st *state) tcpExpect(L *glua.LState) int {
	tc := checkConn(L)
	want := L.CheckString(2)
	o := getOpts(L, 3, "conn:expect", "timeout", "regex", "max")
	var re *regexp.Regexp
	if o.boolean("regex", false) {
		var err error
		if re, err = st.t.regexps.get(want); err != nil {
			L.RaiseError("conn:expect: invalid regex: %v", err)
		}
	}
	max := o.integer("max", defaultExpectMax)
	if max <= 0 || max > st.t.opts.MaxStringSize {
		L.RaiseError("conn:expect: max must be 1 to %d", st.t.opts.MaxStringSize)
	}
	find := func() int { // end of the match in tc.buf, or -1
		if re != nil {
			if loc := re.FindIndex(tc.buf); loc != nil {
				return loc[1]
			}
			return -1
		}
		if i := bytes.Index(tc.buf, []byte(want)); i >= 0 {
			return i + len(want)
		}
		return -1
	}
	dl := tc.deadline(o)
	start := time.Now()
	chunk := make([]byte, 4096)
	for {
		if end := find(); end >= 0 {
			L.Push(glua.LString(tc.buf[:end]))
			tc.buf = tc.buf[end:]
			return 1
		}
		if len(tc.buf) >= max {
			return fail(L, "conn:expect %q: not found in the first %d bytes: %q", want, len(tc.buf), excerpt(tc.buf))
		}
		if tc.closed {
			return fail(L, "conn:expect %q: connection closed; received %q", want, excerpt(tc.buf))
		}
		_ = tc.c.SetReadDeadline(dl)
		k, err := tc.c.Read(chunk[:min(len(chunk), max-len(tc.buf))])
		tc.buf = append(tc.buf, chunk[:k]...)
		if err != nil && k == 0 {
			if err == io.EOF {
				return fail(L, "conn:expect %q: connection closed by peer after %d bytes: %q", want, len(tc.buf), excerpt(tc.buf))
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && st.run.ctx.Err() == nil {
				return fail(L, "conn:expect %q: timed out after %v; received %q", want,
					time.Since(start).Round(time.Millisecond), excerpt(tc.buf))
			}
			return fail(L, "conn:expect %q: %v; received %q", want, st.opErr(err), excerpt(tc.buf))
		}
	}
}

// opErr says "timed out" for deadline errors, whichever deadline it was.
func (st *state) opErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if st.run.ctx.Err() != nil {
			return fmt.Errorf("stopped: %w", context.Cause(st.run.ctx))
		}
		return errors.New("timed out")
	}
	return netErr(err)
}

// netErr shortens net.OpError chains to their cause.
func netErr(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

func excerpt(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
