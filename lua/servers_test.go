package lua

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// testCA issues certificates for local TLS servers.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "recon test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// leaf issues a server certificate valid until notAfter for names (DNS
// names or IP addresses).
func (ca *testCA) leaf(t testing.TB, notAfter time.Time, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// serveTLS runs a TLS server that completes handshakes with cert, sends
// banner (if any) and closes. It returns host:port.
func serveTLS(t testing.TB, cert tls.Certificate, banner string) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				if banner != "" {
					io.WriteString(c, banner)
				}
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return l.Addr().String()
}

// serveTCP runs a line server: it writes banner on connect, then answers
// each line it reads with reply(line) until reply returns "".
func serveTCP(t testing.TB, banner string, reply func(line string) string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, banner)
				if reply == nil {
					io.Copy(io.Discard, c)
					return
				}
				buf := make([]byte, 4096)
				var pending string
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					pending += string(buf[:n])
					for {
						i := strings.IndexByte(pending, '\n')
						if i < 0 {
							break
						}
						line := strings.TrimRight(pending[:i], "\r")
						pending = pending[i+1:]
						r := reply(line)
						if r == "" {
							return
						}
						io.WriteString(c, r)
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// dnsServer is a tiny authoritative server for tests: UDP and TCP on the
// same port, answers from a fixed zone, NXDOMAIN for unknown names.
type dnsServer struct {
	addr     string
	zone     map[string][]dnsmessage.Resource // "name./TYPE"
	truncate bool                             // UDP answers are truncated (forces TCP)
	udpQ     atomic.Int64
	tcpQ     atomic.Int64
	mu       sync.Mutex
}

func zoneKey(name string, typ dnsmessage.Type) string {
	return strings.ToLower(name) + "/" + typ.String()
}

func rr(name string, ttl uint32, typ dnsmessage.Type, body dnsmessage.ResourceBody) dnsmessage.Resource {
	return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Type: typ,
		Class: dnsmessage.ClassINET, TTL: ttl}, Body: body}
}

func aRR(name, ip string, ttl uint32) dnsmessage.Resource {
	return rr(name, ttl, dnsmessage.TypeA, &dnsmessage.AResource{A: netip.MustParseAddr(ip).As4()})
}

func aaaaRR(name, ip string, ttl uint32) dnsmessage.Resource {
	return rr(name, ttl, dnsmessage.TypeAAAA, &dnsmessage.AAAAResource{AAAA: netip.MustParseAddr(ip).As16()})
}

func startDNS(t testing.TB, zone map[string][]dnsmessage.Resource, truncate bool) *dnsServer {
	t.Helper()
	s := &dnsServer{zone: zone, truncate: truncate}
	var pc net.PacketConn
	var tl net.Listener
	for i := 0; ; i++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tl, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if i > 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	s.addr = pc.LocalAddr().String()
	t.Cleanup(func() { pc.Close(); tl.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.udpQ.Add(1)
			if out := s.answer(buf[:n], true); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				s.tcpQ.Add(1)
				out := s.answer(q, false)
				if out == nil {
					return
				}
				binary.BigEndian.PutUint16(l[:], uint16(len(out)))
				c.Write(append(l[:], out...))
			}()
		}
	}()
	return s
}

func (s *dnsServer) answer(q []byte, udp bool) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
		return nil
	}
	qq := m.Questions[0]
	reply := dnsmessage.Message{Header: dnsmessage.Header{ID: m.ID, Response: true, Authoritative: true,
		RecursionDesired: m.RecursionDesired}, Questions: m.Questions}
	s.mu.Lock()
	answers, known := s.zone[zoneKey(qq.Name.String(), qq.Type)]
	if !known {
		for k := range s.zone {
			if strings.HasPrefix(k, strings.ToLower(qq.Name.String())+"/") {
				known = true // the name exists with other types: NOERROR, no data
			}
		}
	}
	s.mu.Unlock()
	switch {
	case !known:
		reply.RCode = dnsmessage.RCodeNameError
	case udp && s.truncate:
		reply.Truncated = true
	default:
		reply.Answers = append(reply.Answers, answers...)
	}
	out, err := reply.Pack()
	if err != nil {
		return nil
	}
	return out
}
