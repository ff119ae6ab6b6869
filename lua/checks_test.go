package lua

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/testutil/pgtest"
)

// runBuiltin runs a bundled check once with config and grants.
func runBuiltin(t *testing.T, typ *Type, name, target string, cfg map[string]any, allow ...string) model.Result {
	t.Helper()
	r := prepareFile(t, typ, "builtin:"+name, withTarget(target), withConfig(cfg), withAllow(allow...))
	return runWith(r, 10*time.Second, nil)
}

func TestBuiltinHTTP(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	srv, _ := httpTestServer(t, false)
	tsrv, ca := httpTestServer(t, true)
	host := strings.TrimPrefix(srv.URL, "http://")

	res := runBuiltin(t, typ, "http", host, map[string]any{"url": srv.URL + "/hello", "body_match": "^hello\\s+w"})
	wantStatus(t, res, model.OK, "GET "+srv.URL+"/hello: HTTP 200, 11 bytes in")
	if m := metric(t, res, "size"); m.Value != model.Int(11) || m.Unit != "B" {
		t.Errorf("size %+v", m)
	}
	if m := metric(t, res, "status_code"); m.Value != model.Int(200) {
		t.Errorf("status_code %+v", m)
	}
	if m := metric(t, res, "time"); m.Unit != "s" || m.Value.Kind() != model.KindFloat {
		t.Errorf("time %+v", m)
	}
	// Default URL from the target.
	res = runBuiltin(t, typ, "http", host, map[string]any{"expect_status": "404"})
	wantStatus(t, res, model.OK, "HTTP 404")
	res = runBuiltin(t, typ, "http", host, map[string]any{"url": srv.URL + "/status/503"})
	wantStatus(t, res, model.Critical, "HTTP 503", "(expected 200-399)")
	res = runBuiltin(t, typ, "http", host, map[string]any{"url": srv.URL + "/status/503", "expect_status": []any{int64(200), "500-599"}})
	wantStatus(t, res, model.OK)
	res = runBuiltin(t, typ, "http", host, map[string]any{"url": srv.URL + "/hello", "body_contains": "goodbye"})
	wantStatus(t, res, model.Critical, `body does not contain "goodbye"`)
	res = runBuiltin(t, typ, "http", host, map[string]any{"url": srv.URL + "/hello", "body_match": "^bye"})
	wantStatus(t, res, model.Critical, "body does not match /^bye/")
	// Latency thresholds: /slow takes 3s but the request times out at 0.5s;
	// a fast page against a 0 ms warning threshold is WARNING.
	res = runBuiltin(t, typ, "http", host, map[string]any{"url": srv.URL + "/slow", "timeout": "500ms"})
	wantStatus(t, res, model.Critical, "context deadline exceeded")
	res = runBuiltin(t, typ, "http", host, map[string]any{"url": srv.URL + "/hello", "warn_ms": int64(0), "crit_ms": int64(10000)})
	wantStatus(t, res, model.Warning, "HTTP 200")
	if m := metric(t, res, "time"); m.Warn != "0" || m.Crit != "10" {
		t.Errorf("time thresholds %+v", m)
	}
	// TLS: verified against the given CA, refused without.
	res = runBuiltin(t, typ, "http", "", map[string]any{"url": tsrv.URL + "/hello", "ca": ca})
	wantStatus(t, res, model.OK, "HTTP 200")
	res = runBuiltin(t, typ, "http", "", map[string]any{"url": tsrv.URL + "/hello"})
	wantStatus(t, res, model.Critical, "certificate signed by unknown authority")
	res = runBuiltin(t, typ, "http", "127.0.0.1:1", nil)
	wantStatus(t, res, model.Critical, "connection refused")
}

func TestBuiltinTLS(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	ca := newCA(t)
	day := 24 * time.Hour
	ok := serveTLS(t, ca.leaf(t, time.Now().Add(100*day), "svc.example"), "")
	soon := serveTLS(t, ca.leaf(t, time.Now().Add(20*day+time.Hour), "svc.example"), "")
	verySoon := serveTLS(t, ca.leaf(t, time.Now().Add(3*day+time.Hour), "svc.example"), "")
	expired := serveTLS(t, ca.leaf(t, time.Now().Add(-day), "svc.example"), "")
	base := map[string]any{"ca": ca.pem, "server_name": "svc.example"}
	cfg := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	res := runBuiltin(t, typ, "tls", ok, cfg(nil))
	wantStatus(t, res, model.OK, "certificate CN=svc.example expires in 100.0 days")
	if m := metric(t, res, "days_left"); m.Warn != "30:" || m.Crit != "7:" || m.Unit != "d" {
		t.Errorf("days_left %+v", m)
	}
	if f, _ := metric(t, res, "days_left").Value.Float(); f < 99.9 || f > 100.1 {
		t.Errorf("days_left %v", f)
	}
	wantStatus(t, runBuiltin(t, typ, "tls", soon, cfg(nil)), model.Warning, "expires in 20.0 days")
	wantStatus(t, runBuiltin(t, typ, "tls", verySoon, cfg(nil)), model.Critical, "expires in 3.0 days")
	wantStatus(t, runBuiltin(t, typ, "tls", soon, cfg(map[string]any{"warn_days": int64(10), "crit_days": int64(5)})), model.OK)
	wantStatus(t, runBuiltin(t, typ, "tls", expired, cfg(nil)), model.Critical, "is not trusted: x509: certificate has expired")
	res = runBuiltin(t, typ, "tls", ok, map[string]any{"server_name": "svc.example"})
	wantStatus(t, res, model.Critical, "not trusted", "unknown authority")
	wantStatus(t, runBuiltin(t, typ, "tls", ok, map[string]any{"server_name": "svc.example", "allow_untrusted": true}), model.OK)
	host, port, _ := net.SplitHostPort(ok)
	res = runBuiltin(t, typ, "tls", "", cfg(map[string]any{"host": host, "port": port}))
	wantStatus(t, res, model.OK)
	wantStatus(t, runBuiltin(t, typ, "tls", "127.0.0.1:1", nil), model.Critical, "connection refused")
}

func TestBuiltinDNS(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	srv := startDNS(t, testZone(), false)
	res := runBuiltin(t, typ, "dns", "web.example.test", map[string]any{"server": srv.addr, "expect": []any{"192.0.2.11"}})
	wantStatus(t, res, model.OK, "web.example.test A: 192.0.2.10, 192.0.2.11 (")
	if m := metric(t, res, "answers"); m.Value != model.Int(2) {
		t.Errorf("answers %+v", m)
	}
	res = runBuiltin(t, typ, "dns", "web.example.test", map[string]any{"server": srv.addr, "expect": "192.0.2.99"})
	wantStatus(t, res, model.Critical, "missing 192.0.2.99")
	res = runBuiltin(t, typ, "dns", "", map[string]any{"name": "example.test", "type": "MX", "server": srv.addr, "expect": "mx2.example.test"})
	wantStatus(t, res, model.OK, "example.test MX: mx1.example.test, mx2.example.test")
	res = runBuiltin(t, typ, "dns", "nope.example.test", map[string]any{"server": srv.addr})
	wantStatus(t, res, model.Critical, "NXDOMAIN")
	res = runBuiltin(t, typ, "dns", "example.test", map[string]any{"type": "AAAA", "server": srv.addr})
	wantStatus(t, res, model.Critical, "no answer")
	res = runBuiltin(t, typ, "dns", "web.example.test", map[string]any{"server": srv.addr, "warn_ms": int64(0)})
	wantStatus(t, res, model.Warning)
}

func TestBuiltinTCP(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	ssh := serveTCP(t, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", nil)
	res := runBuiltin(t, typ, "tcp", "127.0.0.1", map[string]any{"port": portOf(ssh), "expect": "SSH-"})
	wantStatus(t, res, model.OK, "127.0.0.1 port "+portOf(ssh)+" open in", ": SSH-2.0-OpenSSH_9.2p1 Debian-2")
	metric(t, res, "connect_time")
	metric(t, res, "time")
	res = runBuiltin(t, typ, "tcp", "127.0.0.1", map[string]any{"port": portOf(ssh), "expect_regex": `OpenSSH_(\d+)`})
	wantStatus(t, res, model.OK, "OpenSSH_9")
	res = runBuiltin(t, typ, "tcp", "127.0.0.1", map[string]any{"port": portOf(ssh), "expect": "220 ", "timeout": "300ms"})
	wantStatus(t, res, model.Critical, `conn:expect "220 ": timed out`)
	smtp := serveTCP(t, "220 ready\r\n", func(line string) string {
		if line == "QUIT" {
			return "221 bye\r\n"
		}
		return "500 what\r\n"
	})
	res = runBuiltin(t, typ, "tcp", "127.0.0.1", map[string]any{"port": portOf(smtp), "send": "QUIT\r\n", "expect": "221"})
	wantStatus(t, res, model.OK, "221 bye")
	ts := serveTLS(t, newCA(t).leaf(t, time.Now().Add(time.Hour), "127.0.0.1"), "* OK IMAP ready\r\n")
	res = runBuiltin(t, typ, "tcp", "127.0.0.1", map[string]any{"port": portOf(ts), "tls": true, "insecure": true, "expect": "OK"})
	wantStatus(t, res, model.OK, "* OK IMAP ready")
	wantStatus(t, runBuiltin(t, typ, "tcp", "127.0.0.1", map[string]any{"port": int64(1)}), model.Critical, "connection refused")
	wantStatus(t, runBuiltin(t, typ, "tcp", "127.0.0.1", nil), model.Unknown, "config.port is required")
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

var sharedPG *pgtest.Cluster

func TestBuiltinPostgres(t *testing.T) {
	c := pgtest.Shared(t, &sharedPG)
	dsn := c.NewDatabase(t)
	typ, _ := newTestType(t, Options{})
	res := runBuiltin(t, typ, "postgres", "", map[string]any{"dsn": dsn}, "pg")
	wantStatus(t, res, model.OK, "SELECT 1: 1 rows in")
	for _, n := range []string{"time", "connect_time", "query_time", "rows", "value"} {
		metric(t, res, n)
	}
	res = runBuiltin(t, typ, "postgres", "", map[string]any{"dsn": dsn, "query": "SELECT 42 AS lag", "warn": "40", "crit": "100"}, "pg")
	wantStatus(t, res, model.Warning, "SELECT 1: 1 rows")
	if m := metric(t, res, "value"); m.Value != model.Int(42) || m.Warn != "40" {
		t.Errorf("value %+v", m)
	}
	res = runBuiltin(t, typ, "postgres", "", map[string]any{"dsn": dsn, "query": "SELECT * FROM generate_series(1, 3)", "min_rows": int64(5)}, "pg")
	wantStatus(t, res, model.Critical, "returned 3 rows, want at least 5")
	res = runBuiltin(t, typ, "postgres", "", map[string]any{"dsn": dsn, "query": "SELECT * FROM missing_table"}, "pg")
	wantStatus(t, res, model.Critical, `relation "missing_table" does not exist`)
	res = runBuiltin(t, typ, "postgres", "", map[string]any{"dsn": dsn + " port=1"}, "pg")
	wantStatus(t, res, model.Critical, "connect:")
	res = runBuiltin(t, typ, "postgres", "", map[string]any{"dsn": dsn})
	wantStatus(t, res, model.Unknown, `module pg is not allowed for this check: add "pg"`)
	res = runBuiltin(t, typ, "postgres", "", map[string]any{"dsn": dsn, "query": "SELECT pg_sleep(5)", "timeout": "300ms"}, "pg")
	wantStatus(t, res, model.Critical)
}

// The pg module's value conversions, with a real server.
func TestPGModule(t *testing.T) {
	c := pgtest.Shared(t, &sharedPG)
	dsn := c.NewDatabase(t)
	typ, _ := newTestType(t, Options{})
	got := evalLua(t, typ, `
local rows, info = assert(pg.query(ctx.config.dsn, [[
  SELECT 1::int2 AS i2, 2::int8 AS i8, 1.5::float8 AS f, 12.25::numeric AS n, 'txt' AS s, true AS b, NULL AS z,
         '1970-01-02T00:00:00Z'::timestamptz AS ts, '90 seconds'::interval AS iv,
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '10.1.2.3'::inet AS ip, ARRAY[1,2] AS arr,
         $1::text AS p1, $2::int AS p2]], {"param", 7}))
local r = rows[1]
return {status="OK", output=string.format("%d %d %g %g %s %s %s %d %d %s %s %d %s %d | %s %d %s",
  r.i2, r.i8, r.f, r.n, r.s, tostring(r.b), tostring(r.z), r.ts, r.iv, r.u, r.ip, #r.arr, r.p1, r.p2,
  info.command, info.rows, tostring(info.truncated))}`, withAllow("pg"), withConfig(map[string]any{"dsn": dsn}))
	want := "1 2 1.5 12.25 txt true nil 86400 90 a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 10.1.2.3 2 param 7 | SELECT 1 1 false"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	got = evalLua(t, typ, `local rows, info = assert(pg.query(ctx.config.dsn, "SELECT generate_series(1, 50) AS x", {max_rows = 10}))
		return {status="OK", output=#rows .. " " .. tostring(info.truncated)}`, withAllow("pg"), withConfig(map[string]any{"dsn": dsn}))
	if got != "10 true" {
		t.Fatalf("max_rows: %q", got)
	}
	got = evalLua(t, typ, `local rows, err = pg.query("host=/nonexistent", "select 1") return {status="OK", output=err}`, withAllow("pg"))
	if !strings.HasPrefix(got, "pg.query: connect:") {
		t.Fatalf("bad dsn: %q", got)
	}
}
