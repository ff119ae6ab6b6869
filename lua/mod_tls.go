package lua

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// buildTLS:
//
//	tls.connect(host [, port] [, opts]) → info | nil, err
//
// It completes a handshake whatever the certificate (port default 443),
// then verifies the chain itself, so an expired or untrusted certificate is
// reported, not an error. opts: timeout, server_name (SNI and the name
// verified; default host), ca (PEM roots). info: verified, verify_error,
// version, cipher, server_name, days_left, not_after, subject, issuer (of
// the leaf) and chain = {{subject, issuer, serial, not_before, not_after,
// days_left, dns_names, ip_addresses, is_ca, sha256}, ...}.
func (st *state) buildTLS() *glua.LTable {
	L := st.L
	m := L.NewTable()
	m.RawSetString("connect", L.NewFunction(st.tlsConnect))
	return m
}

func (st *state) tlsConnect(L *glua.LState) int {
	host := L.CheckString(1)
	optArg := 3
	if _, ok := L.Get(2).(*glua.LTable); ok {
		optArg = 2
	}
	addr := host
	switch L.Get(2).(type) {
	case *glua.LNilType, *glua.LTable:
		if _, _, err := net.SplitHostPort(host); err != nil {
			addr = joinHostPort(host, "443")
		}
	default:
		addr = hostPort(L, host, 2, "tls.connect")
	}
	o := getOpts(L, optArg, "tls.connect", "timeout", "server_name", "ca")
	cfg := st.dialTLSConfig(L, "tls.connect", addr, o)
	verifyName := cfg.ServerName
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true // verified below, to report rather than fail
	if net.ParseIP(cfg.ServerName) != nil {
		cfg.ServerName = "" // no SNI for addresses
	}
	ctx := st.run.ctx
	if d := o.duration("timeout", 0); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	d := tls.Dialer{Config: cfg}
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(L, "tls.connect %s: %v", addr, netErr(err))
	}
	elapsed := time.Since(start)
	cs := c.(*tls.Conn).ConnectionState()
	c.Close()
	if len(cs.PeerCertificates) == 0 {
		return fail(L, "tls.connect %s: the server sent no certificate", addr)
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, verr := leaf.Verify(x509.VerifyOptions{DNSName: verifyName, Roots: roots, Intermediates: inter})

	t := L.CreateTable(0, 12)
	t.RawSetString("verified", glua.LBool(verr == nil))
	if verr != nil {
		t.RawSetString("verify_error", glua.LString(verr.Error()))
	}
	t.RawSetString("version", glua.LString(tls.VersionName(cs.Version)))
	t.RawSetString("cipher", glua.LString(tls.CipherSuiteName(cs.CipherSuite)))
	t.RawSetString("server_name", glua.LString(verifyName))
	t.RawSetString("elapsed", glua.LNumber(elapsed.Seconds()))
	t.RawSetString("days_left", glua.LNumber(daysLeft(leaf.NotAfter)))
	t.RawSetString("not_after", glua.LNumber(leaf.NotAfter.Unix()))
	t.RawSetString("subject", glua.LString(leaf.Subject.String()))
	t.RawSetString("issuer", glua.LString(leaf.Issuer.String()))
	chain := L.CreateTable(len(cs.PeerCertificates), 0)
	for _, c := range cs.PeerCertificates {
		chain.Append(certTable(L, c))
	}
	t.RawSetString("chain", chain)
	L.Push(t)
	return 1
}

func certTable(L *glua.LState, c *x509.Certificate) *glua.LTable {
	t := L.CreateTable(0, 10)
	t.RawSetString("subject", glua.LString(c.Subject.String()))
	t.RawSetString("issuer", glua.LString(c.Issuer.String()))
	t.RawSetString("serial", glua.LString(c.SerialNumber.Text(16)))
	t.RawSetString("not_before", glua.LNumber(c.NotBefore.Unix()))
	t.RawSetString("not_after", glua.LNumber(c.NotAfter.Unix()))
	t.RawSetString("days_left", glua.LNumber(daysLeft(c.NotAfter)))
	t.RawSetString("is_ca", glua.LBool(c.IsCA))
	names := L.CreateTable(len(c.DNSNames), 0)
	for _, n := range c.DNSNames {
		names.Append(glua.LString(n))
	}
	t.RawSetString("dns_names", names)
	ips := L.CreateTable(len(c.IPAddresses), 0)
	for _, ip := range c.IPAddresses {
		ips.Append(glua.LString(ip.String()))
	}
	t.RawSetString("ip_addresses", ips)
	sum := sha256.Sum256(c.Raw)
	t.RawSetString("sha256", glua.LString(hex.EncodeToString(sum[:])))
	return t
}
