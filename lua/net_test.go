package lua

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/reconmon/recon/agent/model"
)

func httpTestServer(t *testing.T, tlsOn bool) (*httptest.Server, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Test", "yes")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		io.WriteString(w, "hello world")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %s %s", r.Method, b, r.Header.Get("X-Req"), r.Host, r.Header.Get("User-Agent"))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/hello", http.StatusFound) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 3<<20)) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/status/"), "%d", &code)
		w.WriteHeader(code)
		io.WriteString(w, "status page")
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some tests
	if tlsOn {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	ca := ""
	if tlsOn {
		ca = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	}
	return srv, ca
}

func TestHTTPModule(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	srv, _ := httpTestServer(t, false)
	cfg := withConfig(map[string]any{"base": srv.URL})
	cases := []struct{ src, want string }{
		{`local r = assert(http.get(ctx.config.base .. "/hello"))
		  return {status="OK", output=r.status .. " " .. r.body .. " " .. r.headers["x-test"] .. " " .. r.headers["x-multi"] .. " " .. r.proto .. " " .. tostring(r.elapsed > 0)}`,
			"200 hello world yes a, b HTTP/1.1 true"},
		{`local r = assert(http.post(ctx.config.base .. "/echo", "payload", {headers = {["X-Req"] = "h1", Host = "virt.example"}}))
		  return {status="OK", output=r.body}`, "POST payload h1 virt.example recon-lua/1"},
		{`local r = assert(http.request("put", ctx.config.base .. "/echo", {body = "b2", headers = {["User-Agent"] = "mine"}}))
		  return {status="OK", output=r.body}`, "PUT b2  " + strings.TrimPrefix(srv.URL, "http://") + " mine"},
		{`local r = assert(http.get(ctx.config.base .. "/redirect"))
		  return {status="OK", output=r.status .. " " .. r.url}`, "200 " + srv.URL + "/hello"},
		{`local r = assert(http.get(ctx.config.base .. "/redirect", {follow_redirects = false}))
		  return {status="OK", output=r.status .. " " .. r.headers.location}`, "302 /hello"},
		{`local r = assert(http.get(ctx.config.base .. "/big"))
		  return {status="OK", output=#r.body .. " " .. tostring(r.body_truncated)}`, "1048576 true"},
		{`local r = assert(http.get(ctx.config.base .. "/big", {max_body = 10}))
		  return {status="OK", output=#r.body .. " " .. tostring(r.body_truncated)}`, "10 true"},
		{`local r = assert(http.get(ctx.config.base .. "/status/503"))
		  return {status="OK", output=r.status .. " " .. r.status_line .. " " .. r.body}`, "503 503 Service Unavailable status page"},
		{`local r, err = http.get(ctx.config.base .. "/slow", {timeout = 0.2})
		  return {status="OK", output=tostring(r) .. " " .. err}`, "nil GET " + srv.URL + "/slow: context deadline exceeded"},
		{`local r, err = http.get("http://127.0.0.1:1/")
		  return {status="OK", output=tostring(r) .. " " .. err}`, "nil GET http://127.0.0.1:1/: dial tcp 127.0.0.1:1: connect: connection refused"},
		{`local r, err = http.get("file:///etc/passwd")
		  return {status="OK", output=err}`, `GET file:///etc/passwd: unsupported protocol scheme "file"`},
		{`local r, err = http.request("BAD METHOD", ctx.config.base)
		  return {status="OK", output=err}`, "BAD METHOD " + srv.URL + `: net/http: invalid method "BAD METHOD"`},
	}
	for _, c := range cases {
		if got := evalLua(t, typ, c.src, cfg); got != c.want {
			t.Errorf("%s\n got %q\nwant %q", c.src, got, c.want)
		}
	}
	res := runSrc(t, typ, `http.get(ctx.config.base .. "/big", {max_body = 1e9})`, cfg)
	wantStatus(t, res, model.Unknown, "max_body must be 0 to")
}

func TestHTTPSVerification(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	srv, ca := httpTestServer(t, true)
	cfg := withConfig(map[string]any{"url": srv.URL + "/hello", "ca": ca})
	got := evalLua(t, typ, `local r, err = http.get(ctx.config.url) return {status="OK", output=tostring(r) .. " " .. err}`, cfg)
	if !strings.Contains(got, "certificate signed by unknown authority") {
		t.Fatalf("untrusted certificate accepted: %q", got)
	}
	got = evalLua(t, typ, `local r = assert(http.get(ctx.config.url, {ca = ctx.config.ca}))
		return {status="OK", output=r.body .. " " .. r.tls.version .. " " .. tostring(r.tls.days_left > 0)}`, cfg)
	if !strings.HasPrefix(got, "hello world TLS 1.3 true") {
		t.Fatalf("with ca: %q", got)
	}
	got = evalLua(t, typ, `local r = assert(http.get(ctx.config.url, {insecure = true})) return {status="OK", output=r.body}`, cfg)
	if got != "hello world" {
		t.Fatalf("insecure: %q", got)
	}
	res := runSrc(t, typ, `http.get(ctx.config.url, {ca = "junk"})`, cfg)
	wantStatus(t, res, model.Unknown, "ca: no PEM certificate found")
}

func TestTCPModule(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	addr := serveTCP(t, "220 smtp.example ESMTP ready\r\n", func(line string) string {
		switch line {
		case "QUIT":
			return ""
		case "SLOW":
			time.Sleep(500 * time.Millisecond)
			return "late\r\n"
		}
		return "250 " + line + "\r\n"
	})
	host, port, _ := net.SplitHostPort(addr)
	cfg := withConfig(map[string]any{"host": host, "port": port, "addr": addr})
	cases := []struct{ src, want string }{
		{`local c = assert(tcp.connect(ctx.config.host, tonumber(ctx.config.port), {timeout = "2s"}))
		  local banner = assert(c:expect("\r\n"))
		  assert(c:send("HELO me\r\n"))
		  local reply = assert(c:expect([[^250 .*\r\n]], {regex = true}))
		  c:send("QUIT\r\n")
		  return {status="OK", output=banner:gsub("\r\n", "") .. "|" .. reply:gsub("\r\n", "") .. "|" .. tostring(c.connect_time >= 0)}`,
			"220 smtp.example ESMTP ready|250 HELO me|true"},
		{`local c = assert(tcp.connect(ctx.config.addr)) local d = assert(c:receive(3)) local e = assert(c:receive())
		  return {status="OK", output=d .. "|" .. e:gsub("\r\n", "")}`, "220| smtp.example ESMTP ready"},
		{`local c = assert(tcp.connect(ctx.config.addr, {timeout = 0.1})) c:expect("\n") c:send("SLOW\n")
		  local d, err = c:expect("late") return {status="OK", output=tostring(d) .. " " .. err}`, `nil conn:expect "late": timed out after`},
		{`local c = assert(tcp.connect(ctx.config.addr)) c:send("QUIT\n")
		  local d, err = c:expect("never") return {status="OK", output=err}`,
			`conn:expect "never": connection closed by peer after 30 bytes: "220 smtp.example ESMTP ready\r\n"`},
		{`local c = assert(tcp.connect(ctx.config.addr)) local d, err = c:expect("xyz", {max = 10})
		  return {status="OK", output=err}`, `conn:expect "xyz": not found in the first 10 bytes: "220 smtp.e"`},
		{`local c = assert(tcp.connect(ctx.config.addr)) c:close() local n, err = c:send("x") return {status="OK", output=err .. " " .. tostring(c)}`,
			"conn:send: connection closed tcp.conn(" + addr + ")"},
		{`local c, err = tcp.connect("127.0.0.1", 1) return {status="OK", output=err}`,
			"tcp.connect 127.0.0.1:1: connect: connection refused"},
	}
	for _, c := range cases {
		if got := evalLua(t, typ, c.src, cfg); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s\n got %q\nwant %q", c.src, got, c.want)
		}
	}
}

// A connection the script leaves open is closed when its run ends.
func TestTCPClosedAtRunEnd(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	closed := make(chan struct{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c) // returns at EOF: the client closed
		close(closed)
	}()
	evalLua(t, typ, `conn = assert(tcp.connect("`+l.Addr().String()+`")) return {status="OK"}`)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("connection left open after the run")
	}
}

func TestTLSConnect(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	ca := newCA(t)
	good := serveTLS(t, ca.leaf(t, time.Now().Add(90*24*time.Hour), "svc.example", "127.0.0.1"), "hi\n")
	expired := serveTLS(t, ca.leaf(t, time.Now().Add(-24*time.Hour), "svc.example"), "")
	cfg := withConfig(map[string]any{"good": good, "expired": expired, "ca": ca.pem})
	got := evalLua(t, typ, `local i = assert(tls.connect(ctx.config.good, {ca = ctx.config.ca, server_name = "svc.example"}))
		return {status="OK", output=string.format("%s %s %.0f %s %d %s %s %s", tostring(i.verified), i.version, i.days_left,
		  i.subject, #i.chain, i.chain[1].dns_names[1], i.chain[2].subject, tostring(i.chain[2].is_ca))}`, cfg)
	if got != "true TLS 1.3 90 CN=svc.example 2 svc.example CN=recon test CA true" {
		t.Fatalf("good: %q", got)
	}
	// By IP address (no SNI), verified against the IP SAN.
	host, port, _ := net.SplitHostPort(good)
	got = evalLua(t, typ, `local i = assert(tls.connect("`+host+`", `+port+`, {ca = ctx.config.ca})) return {status="OK", output=tostring(i.verified)}`, cfg)
	if got != "true" {
		t.Fatalf("by address: %q", got)
	}
	// Untrusted, wrong name and expired certificates are reported, not errors.
	for src, want := range map[string]string{
		`tls.connect(ctx.config.good, {server_name = "svc.example"})`:                        "false x509: certificate signed by unknown authority",
		`tls.connect(ctx.config.good, {ca = ctx.config.ca, server_name = "other.example"})`:  "false x509: certificate is valid for svc.example",
		`tls.connect(ctx.config.expired, {ca = ctx.config.ca, server_name = "svc.example"})`: "false x509: certificate has expired",
	} {
		got := evalLua(t, typ, `local i = assert(`+src+`) return {status="OK", output=tostring(i.verified) .. " " .. i.verify_error .. " " .. i.days_left}`, cfg)
		if !strings.HasPrefix(got, want) {
			t.Errorf("%s: %q, want prefix %q", src, got, want)
		}
	}
	got = evalLua(t, typ, `local i, err = tls.connect("127.0.0.1", 1) return {status="OK", output=err}`, cfg)
	if !strings.Contains(got, "connection refused") {
		t.Fatalf("refused: %q", got)
	}
}

func testZone() map[string][]dnsmessage.Resource {
	return map[string][]dnsmessage.Resource{
		zoneKey("web.example.test.", dnsmessage.TypeA):    {aRR("web.example.test.", "192.0.2.10", 300), aRR("web.example.test.", "192.0.2.11", 60)},
		zoneKey("web.example.test.", dnsmessage.TypeAAAA): {aaaaRR("web.example.test.", "2001:db8::10", 300)},
		zoneKey("www.example.test.", dnsmessage.TypeA): {
			rr("www.example.test.", 30, dnsmessage.TypeCNAME, &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("web.example.test.")}),
			aRR("web.example.test.", "192.0.2.10", 300)},
		zoneKey("www.example.test.", dnsmessage.TypeCNAME): {
			rr("www.example.test.", 30, dnsmessage.TypeCNAME, &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("web.example.test.")})},
		zoneKey("example.test.", dnsmessage.TypeMX): {
			rr("example.test.", 300, dnsmessage.TypeMX, &dnsmessage.MXResource{Pref: 10, MX: dnsmessage.MustNewName("mx1.example.test.")}),
			rr("example.test.", 300, dnsmessage.TypeMX, &dnsmessage.MXResource{Pref: 20, MX: dnsmessage.MustNewName("mx2.example.test.")})},
		zoneKey("example.test.", dnsmessage.TypeTXT): {
			rr("example.test.", 300, dnsmessage.TypeTXT, &dnsmessage.TXTResource{TXT: []string{"v=spf1 ", "-all"}})},
		zoneKey("_x._tcp.example.test.", dnsmessage.TypeSRV): {
			rr("_x._tcp.example.test.", 300, dnsmessage.TypeSRV, &dnsmessage.SRVResource{Priority: 1, Weight: 5, Port: 8080,
				Target: dnsmessage.MustNewName("web.example.test.")})},
		zoneKey("10.2.0.192.in-addr.arpa.", dnsmessage.TypePTR): {
			rr("10.2.0.192.in-addr.arpa.", 300, dnsmessage.TypePTR, &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName("web.example.test.")})},
	}
}

func TestDNSModule(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	srv := startDNS(t, testZone(), false)
	cfg := withConfig(map[string]any{"server": srv.addr})
	list := `local function list(a) local t = {} for i, v in ipairs(a) do
	  if type(v) == "table" then v = (v.pref or v.priority) .. ":" .. (v.host or (v.target .. ":" .. v.port)) end t[i] = v end
	  table.sort(t) return table.concat(t, ",") end `
	cases := []struct{ src, want string }{
		{`local a, i = assert(dns.lookup("web.example.test", "A", {server = ctx.config.server}))
		  return {status="OK", output=list(a) .. " " .. i.rcode .. " " .. tostring(i.authoritative) .. " " .. i.ttl .. " " .. tostring(i.rtt >= 0)}`,
			"192.0.2.10,192.0.2.11 NOERROR true 60 true"},
		{`local a = assert(dns.lookup("web.example.test.", "aaaa", {server = ctx.config.server})) return {status="OK", output=list(a)}`, "2001:db8::10"},
		{`local a = assert(dns.lookup("www.example.test", {server = ctx.config.server})) return {status="OK", output=list(a)}`, "192.0.2.10"},
		{`local a = assert(dns.lookup("www.example.test", "CNAME", {server = ctx.config.server})) return {status="OK", output=list(a)}`, "web.example.test"},
		{`local a = assert(dns.lookup("example.test", "MX", {server = ctx.config.server})) return {status="OK", output=list(a)}`, "10:mx1.example.test,20:mx2.example.test"},
		{`local a = assert(dns.lookup("example.test", "TXT", {server = ctx.config.server})) return {status="OK", output=list(a)}`, "v=spf1 -all"},
		{`local a = assert(dns.lookup("_x._tcp.example.test", "SRV", {server = ctx.config.server})) return {status="OK", output=list(a)}`, "1:web.example.test:8080"},
		{`local a = assert(dns.lookup("192.0.2.10", "PTR", {server = ctx.config.server})) return {status="OK", output=list(a)}`, "web.example.test"},
		{`local a, i = dns.lookup("example.test", "AAAA", {server = ctx.config.server}) return {status="OK", output=#a .. " " .. i.rcode .. " " .. tostring(i.ttl)}`, "0 NOERROR nil"},
		{`local a, err, i = dns.lookup("nope.example.test", "A", {server = ctx.config.server})
		  return {status="OK", output=tostring(a) .. " " .. err .. " " .. i.rcode}`,
			"nil dns.lookup nope.example.test A @" + srv.addr + ": NXDOMAIN NXDOMAIN"},
		{`local a, err = dns.lookup("web.example.test", "A", {server = "127.0.0.1:1", timeout = 0.3}) return {status="OK", output=err}`,
			"dns.lookup web.example.test A @127.0.0.1:1: "},
		{`local a = assert(dns.lookup("web.example.test", "A", {server = ctx.config.server, tcp = true})) return {status="OK", output=list(a)}`, "192.0.2.10,192.0.2.11"},
		{`local a = assert(dns.lookup("localhost")) return {status="OK", output=list(a)}`, "127.0.0.1"},
	}
	for _, c := range cases {
		if got := evalLua(t, typ, list+c.src, cfg); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s\n got %q\nwant %q", c.src, got, c.want)
		}
	}
	if srv.tcpQ.Load() != 1 {
		t.Errorf("%d TCP queries, want 1 (tcp = true)", srv.tcpQ.Load())
	}
	// A truncated UDP answer is retried over TCP.
	trunc := startDNS(t, testZone(), true)
	got := evalLua(t, typ, list+`local a = assert(dns.lookup("web.example.test", "A", {server = "`+trunc.addr+`"})) return {status="OK", output=list(a)}`)
	if got != "192.0.2.10,192.0.2.11" || trunc.udpQ.Load() != 1 || trunc.tcpQ.Load() != 1 {
		t.Fatalf("truncation fallback: %q udp %d tcp %d", got, trunc.udpQ.Load(), trunc.tcpQ.Load())
	}
}
