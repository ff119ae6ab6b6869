package lua

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"
	"golang.org/x/net/dns/dnsmessage"
)

var dnsTypes = map[string]dnsmessage.Type{
	"A": dnsmessage.TypeA, "AAAA": dnsmessage.TypeAAAA, "CNAME": dnsmessage.TypeCNAME, "MX": dnsmessage.TypeMX,
	"TXT": dnsmessage.TypeTXT, "NS": dnsmessage.TypeNS, "PTR": dnsmessage.TypePTR, "SRV": dnsmessage.TypeSRV,
}

var rcodeNames = map[dnsmessage.RCode]string{
	dnsmessage.RCodeSuccess: "NOERROR", dnsmessage.RCodeFormatError: "FORMERR", dnsmessage.RCodeServerFailure: "SERVFAIL",
	dnsmessage.RCodeNameError: "NXDOMAIN", dnsmessage.RCodeNotImplemented: "NOTIMP", dnsmessage.RCodeRefused: "REFUSED",
}

func rcodeName(r dnsmessage.RCode) string {
	if n, ok := rcodeNames[r]; ok {
		return n
	}
	return fmt.Sprintf("RCODE%d", r)
}

// buildDNS:
//
//	dns.lookup(name [, type] [, opts]) → answers, info | nil, err, info
//
// type: A (default), AAAA, CNAME, MX, TXT, NS, PTR (name may be an
// address), SRV. opts: server ("host" or "host:port"), timeout, tcp.
// With a server the query goes to that server exactly as asked (no
// /etc/hosts, no search domains) and info has rcode, authoritative, ttl
// (smallest of the answers) and rtt; without one the system resolver
// answers. answers: strings (addresses, names, TXT joined), for MX
// {pref=, host=}, for SRV {priority=, weight=, port=, target=}.
func (st *state) buildDNS() *glua.LTable {
	L := st.L
	m := L.NewTable()
	m.RawSetString("lookup", L.NewFunction(st.dnsLookup))
	return m
}

func (st *state) dnsLookup(L *glua.LState) int {
	name := L.CheckString(1)
	typ := "A"
	optArg := 2
	if s, ok := L.Get(2).(glua.LString); ok {
		typ = strings.ToUpper(string(s))
		optArg = 3
	}
	qtype, ok := dnsTypes[typ]
	if !ok {
		L.ArgError(2, "dns.lookup: unsupported type "+typ+" (A, AAAA, CNAME, MX, TXT, NS, PTR, SRV)")
	}
	o := getOpts(L, optArg, "dns.lookup", "server", "timeout", "tcp")
	ctx := st.run.ctx
	if d := o.duration("timeout", 0); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	server := o.str("server", "")
	if server == "" {
		return st.systemLookup(L, ctx, name, typ)
	}
	if qtype == dnsmessage.TypePTR {
		if a, err := netip.ParseAddr(name); err == nil {
			name = reverseName(a)
		}
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = joinHostPort(server, "53")
	}
	info := L.CreateTable(0, 6)
	info.RawSetString("server", glua.LString(server))
	start := time.Now()
	msg, err := dnsExchange(ctx, server, name, qtype, o.boolean("tcp", false))
	info.RawSetString("rtt", glua.LNumber(time.Since(start).Seconds()))
	if err != nil {
		L.Push(glua.LNil)
		L.Push(glua.LString(fmt.Sprintf("dns.lookup %s %s @%s: %v", name, typ, server, err)))
		L.Push(info)
		return 3
	}
	info.RawSetString("rcode", glua.LString(rcodeName(msg.RCode)))
	info.RawSetString("authoritative", glua.LBool(msg.Authoritative))
	if msg.RCode != dnsmessage.RCodeSuccess {
		L.Push(glua.LNil)
		L.Push(glua.LString(fmt.Sprintf("dns.lookup %s %s @%s: %s", name, typ, server, rcodeName(msg.RCode))))
		L.Push(info)
		return 3
	}
	answers := L.NewTable()
	var minTTL uint32
	found := false
	for _, rr := range msg.Answers {
		if rr.Header.Type != qtype {
			continue // the CNAME chain leading to the answer
		}
		if !found || rr.Header.TTL < minTTL {
			minTTL = rr.Header.TTL
		}
		found = true
		answers.Append(dnsValue(L, rr.Body))
	}
	if found {
		info.RawSetString("ttl", glua.LNumber(minTTL))
	}
	L.Push(answers)
	L.Push(info)
	return 2
}

func dnsValue(L *glua.LState, body dnsmessage.ResourceBody) glua.LValue {
	switch b := body.(type) {
	case *dnsmessage.AResource:
		return glua.LString(netip.AddrFrom4(b.A).String())
	case *dnsmessage.AAAAResource:
		return glua.LString(netip.AddrFrom16(b.AAAA).String())
	case *dnsmessage.CNAMEResource:
		return glua.LString(trimDot(b.CNAME.String()))
	case *dnsmessage.NSResource:
		return glua.LString(trimDot(b.NS.String()))
	case *dnsmessage.PTRResource:
		return glua.LString(trimDot(b.PTR.String()))
	case *dnsmessage.TXTResource:
		return glua.LString(strings.Join(b.TXT, ""))
	case *dnsmessage.MXResource:
		t := L.CreateTable(0, 2)
		t.RawSetString("pref", glua.LNumber(b.Pref))
		t.RawSetString("host", glua.LString(trimDot(b.MX.String())))
		return t
	case *dnsmessage.SRVResource:
		return srvTable(L, b.Priority, b.Weight, b.Port, trimDot(b.Target.String()))
	}
	return glua.LNil
}

func srvTable(L *glua.LState, prio, weight, port uint16, target string) *glua.LTable {
	t := L.CreateTable(0, 4)
	t.RawSetString("priority", glua.LNumber(prio))
	t.RawSetString("weight", glua.LNumber(weight))
	t.RawSetString("port", glua.LNumber(port))
	t.RawSetString("target", glua.LString(target))
	return t
}

func trimDot(s string) string { return strings.TrimSuffix(s, ".") }

func reverseName(a netip.Addr) string {
	var b strings.Builder
	if a.Is4() || a.Is4In6() {
		v := a.Unmap().As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.in-addr.arpa.", v[3], v[2], v[1], v[0])
		return b.String()
	}
	v := a.As16()
	const hexd = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b.WriteByte(hexd[v[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hexd[v[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa.")
	return b.String()
}

// dnsExchange sends one query to server over UDP (TCP when asked or when
// the UDP answer is truncated) and returns the matching response.
func dnsExchange(ctx context.Context, server, name string, qtype dnsmessage.Type, useTCP bool) (*dnsmessage.Message, error) {
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	qname, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, fmt.Errorf("invalid name: %v", err)
	}
	id := uint16(rand.Uint32())
	q := dnsmessage.Question{Name: qname, Type: qtype, Class: dnsmessage.ClassINET}
	b := dnsmessage.NewBuilder(make([]byte, 2, 512), dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAdditionals()
	var opt dnsmessage.ResourceHeader
	_ = opt.SetEDNS0(1232, dnsmessage.RCodeSuccess, false)
	_ = b.OPTResource(opt, dnsmessage.OPTResource{})
	pkt, err := b.Finish()
	if err != nil {
		return nil, err
	}
	if !useTCP {
		msg, err := dnsUDP(ctx, server, pkt[2:], id, q)
		if err != nil || !msg.Truncated {
			return msg, err
		}
	}
	return dnsTCP(ctx, server, pkt, id, q)
}

func dnsUDP(ctx context.Context, server string, pkt []byte, id uint16, q dnsmessage.Question) (*dnsmessage.Message, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, netErr(err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(pkt); err != nil {
		return nil, netErr(err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, errors.New("timed out")
			}
			return nil, netErr(err)
		}
		if msg, ok := parseReply(buf[:n], id, q); ok {
			return msg, nil
		}
		// Not our answer (late reply to an earlier query, spoofing): wait on.
	}
}

func dnsTCP(ctx context.Context, server string, pkt []byte, id uint16, q dnsmessage.Question) (*dnsmessage.Message, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, netErr(err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	binary.BigEndian.PutUint16(pkt, uint16(len(pkt)-2))
	if _, err := c.Write(pkt); err != nil {
		return nil, netErr(err)
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		if ctx.Err() != nil {
			return nil, errors.New("timed out")
		}
		return nil, fmt.Errorf("tcp: %v", netErr(err))
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, fmt.Errorf("tcp: %v", netErr(err))
	}
	msg, ok := parseReply(buf, id, q)
	if !ok {
		return nil, errors.New("tcp: malformed or mismatched response")
	}
	return msg, nil
}

// parseReply accepts only a well-formed response to our question.
func parseReply(b []byte, id uint16, q dnsmessage.Question) (*dnsmessage.Message, bool) {
	var msg dnsmessage.Message
	if err := msg.Unpack(b); err != nil {
		return nil, false
	}
	if msg.ID != id || !msg.Response || len(msg.Questions) != 1 {
		return nil, false
	}
	got := msg.Questions[0]
	if got.Type != q.Type || got.Class != q.Class || !strings.EqualFold(got.Name.String(), q.Name.String()) {
		return nil, false
	}
	return &msg, true
}

// systemLookup asks the host's resolver (/etc/hosts, resolv.conf).
func (st *state) systemLookup(L *glua.LState, ctx context.Context, name, typ string) int {
	var r net.Resolver
	start := time.Now()
	answers := L.NewTable()
	var err error
	switch typ {
	case "A", "AAAA":
		network := "ip4"
		if typ == "AAAA" {
			network = "ip6"
		}
		var addrs []netip.Addr
		addrs, err = r.LookupNetIP(ctx, network, name)
		for _, a := range addrs {
			answers.Append(glua.LString(a.Unmap().String()))
		}
	case "CNAME":
		var c string
		c, err = r.LookupCNAME(ctx, name)
		if err == nil {
			answers.Append(glua.LString(trimDot(c)))
		}
	case "MX":
		var mxs []*net.MX
		mxs, err = r.LookupMX(ctx, name)
		for _, mx := range mxs {
			t := L.CreateTable(0, 2)
			t.RawSetString("pref", glua.LNumber(mx.Pref))
			t.RawSetString("host", glua.LString(trimDot(mx.Host)))
			answers.Append(t)
		}
	case "TXT":
		var txts []string
		txts, err = r.LookupTXT(ctx, name)
		for _, s := range txts {
			answers.Append(glua.LString(s))
		}
	case "NS":
		var nss []*net.NS
		nss, err = r.LookupNS(ctx, name)
		for _, ns := range nss {
			answers.Append(glua.LString(trimDot(ns.Host)))
		}
	case "PTR":
		var names []string
		if a, perr := netip.ParseAddr(strings.TrimSuffix(name, ".")); perr == nil {
			names, err = r.LookupAddr(ctx, a.String())
		} else {
			names, err = r.LookupAddr(ctx, ptrToAddr(name))
		}
		for _, n := range names {
			answers.Append(glua.LString(trimDot(n)))
		}
	case "SRV":
		var srvs []*net.SRV
		_, srvs, err = r.LookupSRV(ctx, "", "", name)
		for _, s := range srvs {
			answers.Append(srvTable(L, s.Priority, s.Weight, s.Port, trimDot(s.Target)))
		}
	}
	info := L.CreateTable(0, 2)
	info.RawSetString("rtt", glua.LNumber(time.Since(start).Seconds()))
	info.RawSetString("server", glua.LString("system"))
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			info.RawSetString("rcode", glua.LString("NXDOMAIN"))
		}
		L.Push(glua.LNil)
		L.Push(glua.LString(fmt.Sprintf("dns.lookup %s %s: %v", name, typ, err)))
		L.Push(info)
		return 3
	}
	info.RawSetString("rcode", glua.LString("NOERROR"))
	L.Push(answers)
	L.Push(info)
	return 2
}

// ptrToAddr turns an in-addr.arpa name back into an address for the
// system resolver's LookupAddr; anything else is passed through.
func ptrToAddr(name string) string {
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	if v4, ok := strings.CutSuffix(n, ".in-addr.arpa"); ok {
		p := strings.Split(v4, ".")
		if len(p) == 4 {
			return p[3] + "." + p[2] + "." + p[1] + "." + p[0]
		}
	}
	return name
}
