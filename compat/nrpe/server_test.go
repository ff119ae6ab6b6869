package nrpe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios"
	"github.com/reconmon/recon/internal/testutil"
)

const plugins = "/usr/lib/nagios/plugins"

type published struct {
	mu sync.Mutex
	rs []model.Result
}

func (p *published) publish(_ context.Context, rs ...model.Result) error {
	p.mu.Lock()
	p.rs = append(p.rs, rs...)
	p.mu.Unlock()
	return nil
}

func (p *published) all() []model.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]model.Result(nil), p.rs...)
}

func startServer(t testing.TB, cfg Config) (*Server, *published) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	typ, err := nagios.New(nagios.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pub := &published{}
	s, err := New(cfg, typ, pub.publish, "agent1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, pub
}

// checkNRPE runs the real check_nrpe against the server.
func checkNRPE(t *testing.T, s *Server, args ...string) (string, int) {
	t.Helper()
	bin := testutil.RequireBinary(t, plugins+"/check_nrpe")
	_, port, _ := net.SplitHostPort(s.Addr().String())
	cmd := exec.Command(bin, append([]string{"-H", "127.0.0.1", "-p", port, "-t", "20"}, args...)...)
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out)), code
}

func baseConfig(t *testing.T) Config {
	testutil.RequireBinary(t, plugins+"/check_load")
	return Config{Command: map[string]string{
		"check_load":  plugins + "/check_load -w 1000,1000,1000 -c 2000,2000,2000",
		"check_crit":  plugins + "/check_dummy 2 'it is broken'",
		"check_args":  plugins + "/check_dummy $ARG1$ '$ARG2$'",
		"check_sleep": "/bin/sleep 30",
		"check_pipe":  "echo 'OK - through a shell|x=1' | cat",
	}}
}

func TestCheckNRPEModes(t *testing.T) {
	s, pub := startServer(t, baseConfig(t))
	modes := map[string][]string{
		"tls v4": nil, "tls v3": {"-3"}, "tls v2": {"-2"},
		"plain v4": {"-n"}, "plain v3": {"-n", "-3"}, "plain v2": {"-n", "-2"},
	}
	for name, flags := range modes {
		out, code := checkNRPE(t, s, append(flags, "-c", "check_load")...)
		if code != 0 || !strings.HasPrefix(out, "LOAD OK") || !strings.Contains(out, "|load1=") {
			t.Errorf("%s: exit %d %q", name, code, out)
		}
		out, code = checkNRPE(t, s, flags...) // no -c: _NRPE_CHECK
		if code != 0 || out != "NRPE v"+ProgramVersion {
			t.Errorf("%s _NRPE_CHECK: exit %d %q", name, code, out)
		}
	}
	out, code := checkNRPE(t, s, "-n", "-c", "check_crit")
	if code != 2 || out != "CRITICAL: it is broken" {
		t.Errorf("critical: %d %q", code, out)
	}
	out, code = checkNRPE(t, s, "-c", "check_pipe")
	if code != 0 || out != "OK - through a shell|x=1" {
		t.Errorf("shell command: %d %q", code, out)
	}
	out, code = checkNRPE(t, s, "-c", "nope")
	if code != 3 || out != "NRPE: Command 'nope' not defined" {
		t.Errorf("unknown command: %d %q", code, out)
	}
	// Every command run is also a result in the pipeline.
	var found bool
	for _, r := range pub.all() {
		if r.Check == "nrpe:check_crit" && r.Status == model.Critical && r.Type == "nrpe" && r.Target == "127.0.0.1" && r.Output == "CRITICAL: it is broken" {
			found = true
		}
	}
	if !found {
		t.Errorf("check_crit not published: %+v", pub.all())
	}
}

func TestArguments(t *testing.T) {
	s, _ := startServer(t, baseConfig(t))
	out, code := checkNRPE(t, s, "-c", "check_args", "-a", "1", "hello")
	if code != 3 || !strings.Contains(out, "allow_arguments is off") {
		t.Errorf("arguments not refused: %d %q", code, out)
	}
	if s.Stats().ArgsRefused != 1 {
		t.Errorf("refusal not counted: %+v", s.Stats())
	}
	cfg := baseConfig(t)
	cfg.AllowArguments = true
	s2, pub := startServer(t, cfg)
	out, code = checkNRPE(t, s2, "-c", "check_args", "-a", "1", "hello world")
	if code != 1 || out != "WARNING: hello world" {
		t.Errorf("arguments: %d %q", code, out)
	}
	out, code = checkNRPE(t, s2, "-c", "check_args", "-a", "0", "x;rm -rf /")
	if code != 3 || !strings.Contains(out, "illegal metachars") {
		t.Errorf("nasty metachars: %d %q", code, out)
	}
	if rs := pub.all(); len(rs) != 1 || rs[0].Tags["args"] != "1!hello world" {
		t.Errorf("published: %+v", rs)
	}
}

func TestCommandTimeoutKillsGroup(t *testing.T) {
	cfg := baseConfig(t)
	cfg.CommandTimeout = config.Duration(time.Second)
	s, _ := startServer(t, cfg)
	start := time.Now()
	out, code := checkNRPE(t, s, "-c", "check_sleep")
	if code != 3 || out != "NRPE: Command timed out after 1 seconds" {
		t.Errorf("timeout: %d %q", code, out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if s.Stats().Timeouts != 1 {
		t.Errorf("timeout not counted")
	}
}

func TestAllowedHosts(t *testing.T) {
	cfg := baseConfig(t)
	cfg.AllowedHosts = []string{"10.0.0.0/8"}
	s, _ := startServer(t, cfg)
	out, code := checkNRPE(t, s, "-n", "-c", "check_load")
	if code == 0 || strings.Contains(out, "LOAD") {
		t.Errorf("refused host was served: %d %q", code, out)
	}
	if s.Stats().RefusedHost == 0 {
		t.Error("refusal not counted")
	}
}

func TestTLSModes(t *testing.T) {
	cfg := baseConfig(t)
	cfg.TLS = "required"
	s, _ := startServer(t, cfg)
	if out, code := checkNRPE(t, s, "-n", "-c", "check_load"); code == 0 {
		t.Errorf("plaintext accepted with tls = required: %q", out)
	}
	if out, code := checkNRPE(t, s, "-c", "check_load"); code != 0 {
		t.Errorf("TLS refused: %d %q", code, out)
	}
	cfg.TLS = "off"
	s2, _ := startServer(t, cfg)
	if out, code := checkNRPE(t, s2, "-c", "check_load"); code == 0 {
		t.Errorf("TLS accepted with tls = off: %q", out)
	}
	if out, code := checkNRPE(t, s2, "-n", "-c", "check_load"); code != 0 {
		t.Errorf("plaintext refused with tls = off: %d %q", code, out)
	}
}

func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCert(t, dir, "ca", nil, nil)
	makeCert(t, dir, "server", ca, caKey)
	makeCert(t, dir, "client", ca, caKey)
	otherCA, otherKey := makeCert(t, dir, "otherca", nil, nil)
	makeCert(t, dir, "intruder", otherCA, otherKey)
	cfg := baseConfig(t)
	cfg.TLS = "required"
	cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	cfg.TLSClientCA = filepath.Join(dir, "ca.pem")
	s, _ := startServer(t, cfg)
	out, code := checkNRPE(t, s, "-C", filepath.Join(dir, "client.pem"), "-K", filepath.Join(dir, "client.key"),
		"-A", filepath.Join(dir, "ca.pem"), "-c", "check_load")
	if code != 0 || !strings.HasPrefix(out, "LOAD OK") {
		t.Errorf("valid client cert: %d %q", code, out)
	}
	if out, code := checkNRPE(t, s, "-c", "check_load"); code == 0 {
		t.Errorf("no client cert accepted: %q", out)
	}
	if out, code := checkNRPE(t, s, "-C", filepath.Join(dir, "intruder.pem"), "-K", filepath.Join(dir, "intruder.key"), "-c", "check_load"); code == 0 {
		t.Errorf("foreign client cert accepted: %q", out)
	}
}

// makeCert writes name.pem and name.key signed by parent (self-signed CA
// when parent is nil).
func makeCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	signer, signKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func TestConfigErrors(t *testing.T) {
	typ, _ := nagios.New(nagios.Options{})
	cases := map[string]Config{
		"allowed_hosts":      {AllowedHosts: []string{"example.com"}},
		`command "x"`:        {Command: map[string]string{"x": "check $USER9$"}},
		"tls \"maybe\"":      {TLS: "maybe"},
		"set together":       {TLSCert: "/x"},
		"tls_client_ca":      {TLSClientCA: "/nonexistent"},
		`command name "a!b"`: {Command: map[string]string{"a!b": "/bin/true"}},
	}
	for want, cfg := range cases {
		_, err := New(cfg, typ, nil, "a", nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

func TestManyConcurrentConnections(t *testing.T) {
	s, _ := startServer(t, baseConfig(t))
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			flags := []string{"-n"}
			if i%2 == 0 {
				flags = nil
			}
			out, code := checkNRPE(t, s, append(flags, "-c", "check_crit")...)
			if code != 2 {
				errs <- fmt.Sprintf("%d: %d %q", i, code, out)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
