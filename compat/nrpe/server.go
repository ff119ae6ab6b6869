// Package nrpe is a drop-in for the nrpe daemon: it answers the real
// check_nrpe over protocol v2 (1036-byte packets) and v3/v4 (variable
// length), in plain text (check_nrpe -n) and TLS on the same port, runs
// the configured commands with the Nagios runner (so timeouts kill whole
// process groups), and turns every run into a result for the pipeline so
// NRPE-served checks are trended too.
package nrpe

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios"
)

// ProgramVersion is what _NRPE_CHECK reports.
const ProgramVersion = "4.1.0"

// helloCommand is check_nrpe's version query.
const helloCommand = "_NRPE_CHECK"

// DefaultNastyMetachars are the characters nrpe refuses in requests.
const DefaultNastyMetachars = "|`&><'\\[]{};\r\n"

// maxArgs is nrpe's MAX_COMMAND_ARGUMENTS.
const maxArgs = 16

// Config is the [nrpe] section.
type Config struct {
	// Listen address (default 0.0.0.0:5666).
	Listen string `toml:"listen"`
	// AllowedHosts are client addresses or CIDRs (default 127.0.0.1 and ::1).
	AllowedHosts []string `toml:"allowed_hosts"`
	// AllowArguments lets check_nrpe -a fill $ARGn$ (nrpe's dont_blame_nrpe; default false).
	AllowArguments bool `toml:"allow_arguments"`
	// NastyMetachars are refused in requests (default nrpe's |`&><'\[]{}; and newlines).
	NastyMetachars *string `toml:"nasty_metachars"`
	// TLS is "auto" (TLS and plaintext on one port, told apart by the first byte; default), "required" or "off".
	TLS string `toml:"tls"`
	// TLSCert is the server certificate (default: an ephemeral self-signed one, like nrpe's anonymous mode).
	TLSCert string `toml:"tls_cert"`
	// TLSKey is the key of tls_cert.
	TLSKey string `toml:"tls_key"`
	// TLSClientCA makes client certificates mandatory, verified against this CA bundle.
	TLSClientCA string `toml:"tls_client_ca"`
	// CommandTimeout kills a command's process group (default 60s).
	CommandTimeout config.Duration `toml:"command_timeout"`
	// ConnectionTimeout bounds a whole connection (default 300s).
	ConnectionTimeout config.Duration `toml:"connection_timeout"`
	// MaxConnections served at once; more are refused and counted (default 256).
	MaxConnections int `toml:"max_connections"`
	// CommandPrefix is prepended to every command line.
	CommandPrefix string `toml:"command_prefix"`
	// Command maps command names to command lines ([nrpe.command] table).
	Command map[string]string `toml:"command"`
}

// Defaults fills unset fields with nrpe's defaults.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "0.0.0.0:5666"
	}
	if c.AllowedHosts == nil {
		c.AllowedHosts = []string{"127.0.0.1", "::1"}
	}
	if c.NastyMetachars == nil {
		s := DefaultNastyMetachars
		c.NastyMetachars = &s
	}
	if c.TLS == "" {
		c.TLS = "auto"
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = config.Duration(60 * time.Second)
	}
	if c.ConnectionTimeout == 0 {
		c.ConnectionTimeout = config.Duration(300 * time.Second)
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 256
	}
}

// Publisher delivers results to the pipeline.
type Publisher func(ctx context.Context, rs ...model.Result) error

// Server is the NRPE daemon.
type Server struct {
	cfg      Config
	runner   *nagios.Type
	publish  Publisher
	agent    string
	log      *slog.Logger
	allowed  []netip.Prefix
	commands map[string]string
	tlsConf  *tls.Config

	ln     net.Listener
	wg     sync.WaitGroup
	conns  chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	stats  stats
}

type stats struct {
	connections, refusedHost, refusedBusy, badPackets, commands, unknownCommands, argsRefused, timeouts atomic.Uint64
}

// Stats are the server's counters.
type Stats struct {
	Connections, RefusedHost, RefusedBusy, BadPackets, Commands, UnknownCommands, ArgsRefused, Timeouts uint64
}

// New validates cfg and prepares the server; it opens nothing.
func New(cfg Config, runner *nagios.Type, publish Publisher, agent string, log *slog.Logger) (*Server, error) {
	cfg.Defaults()
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, runner: runner, publish: publish, agent: agent, log: log.With("source", "nrpe"),
		commands: map[string]string{}, conns: make(chan struct{}, cfg.MaxConnections)}
	for _, h := range cfg.AllowedHosts {
		p, err := parseHost(h)
		if err != nil {
			return nil, fmt.Errorf("nrpe: allowed_hosts: %w", err)
		}
		s.allowed = append(s.allowed, p)
	}
	for name, line := range cfg.Command {
		if name == "" || strings.ContainsAny(name, "!") {
			return nil, fmt.Errorf("nrpe: command name %q is invalid", name)
		}
		if cfg.CommandPrefix != "" {
			line = cfg.CommandPrefix + " " + line
		}
		// Validate macros now so a typo is a config error, not a failing
		// request at 3 a.m. Arguments are checked with placeholders.
		if _, err := s.argv(line, placeholderArgs()); err != nil {
			return nil, fmt.Errorf("nrpe: command %q: %w", name, err)
		}
		s.commands[name] = line
	}
	switch cfg.TLS {
	case "auto", "required":
		tc, err := s.buildTLS()
		if err != nil {
			return nil, err
		}
		s.tlsConf = tc
	case "off":
	default:
		return nil, fmt.Errorf("nrpe: tls %q: want auto, required or off", cfg.TLS)
	}
	return s, nil
}

func placeholderArgs() []string {
	a := make([]string, maxArgs)
	for i := range a {
		a[i] = "x"
	}
	return a
}

func parseHost(h string) (netip.Prefix, error) {
	if strings.Contains(h, "/") {
		p, err := netip.ParsePrefix(h)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR (host names are not supported)", h)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// buildTLS loads the configured certificate or, like nrpe without
// certificates, makes an ephemeral self-signed one so that check_nrpe's
// default (encrypted, unauthenticated) mode works out of the box.
func (s *Server) buildTLS() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case s.cfg.TLSCert != "" && s.cfg.TLSKey != "":
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("nrpe: tls_cert/tls_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case s.cfg.TLSCert != "" || s.cfg.TLSKey != "":
		return nil, errors.New("nrpe: tls_cert and tls_key must be set together")
	default:
		cert, err := selfSigned()
		if err != nil {
			return nil, fmt.Errorf("nrpe: generate certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if s.cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(s.cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("nrpe: tls_client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nrpe: tls_client_ca %s: no certificates", s.cfg.TLSClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host, Organization: []string{"recon nrpe"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Start listens and serves until Close.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("nrpe: listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go s.accept()
	s.log.Info("NRPE server listening", "addr", ln.Addr().String(), "tls", s.cfg.TLS,
		"commands", len(s.commands), "allow_arguments", s.cfg.AllowArguments)
	return nil
}

// Addr is the listening address (after Start).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, cancels running commands and waits for handlers.
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	err := s.ln.Close()
	s.cancel()
	s.wg.Wait()
	return err
}

// Counters reports the stats for /metrics.
func (s *Server) Counters() map[string]uint64 {
	st := s.Stats()
	return map[string]uint64{"connections": st.Connections, "refused_host": st.RefusedHost, "refused_busy": st.RefusedBusy,
		"bad_packets": st.BadPackets, "commands": st.Commands, "unknown_commands": st.UnknownCommands,
		"arguments_refused": st.ArgsRefused, "timeouts": st.Timeouts}
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{s.stats.connections.Load(), s.stats.refusedHost.Load(), s.stats.refusedBusy.Load(),
		s.stats.badPackets.Load(), s.stats.commands.Load(), s.stats.unknownCommands.Load(),
		s.stats.argsRefused.Load(), s.stats.timeouts.Load()}
}

func (s *Server) accept() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, do not spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.stats.connections.Add(1)
		if !s.allowedHost(c.RemoteAddr()) {
			s.stats.refusedHost.Add(1)
			s.log.Warn("connection refused: host not in allowed_hosts", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		select {
		case s.conns <- struct{}{}:
		default:
			s.stats.refusedBusy.Add(1)
			s.log.Warn("connection refused: max_connections reached", "remote", c.RemoteAddr().String(), "max", s.cfg.MaxConnections)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.conns }()
			s.handle(c)
		}()
	}
}

func (s *Server) allowedHost(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (s *Server) handle(raw net.Conn) {
	defer raw.Close()
	remote := raw.RemoteAddr().String()
	raw.SetDeadline(time.Now().Add(s.cfg.ConnectionTimeout.D()))
	br := bufio.NewReader(raw)
	var conn net.Conn = &bufferedConn{Conn: raw, r: br}
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	isTLS := first[0] == 0x16 // TLS handshake record; NRPE packets start with 0x00
	switch {
	case isTLS && s.tlsConf == nil:
		s.stats.badPackets.Add(1)
		s.log.Warn("TLS connection refused: tls = \"off\"", "remote", remote)
		return
	case !isTLS && s.cfg.TLS == "required":
		s.stats.badPackets.Add(1)
		s.log.Warn("plaintext connection refused: tls = \"required\" (check_nrpe -n is not allowed)", "remote", remote)
		return
	case isTLS:
		tc := tls.Server(conn, s.tlsConf)
		if err := tc.HandshakeContext(s.ctx); err != nil {
			s.stats.badPackets.Add(1)
			s.log.Warn("TLS handshake failed", "remote", remote, "err", err)
			return
		}
		conn = tc
	}
	req, err := ReadPacket(conn)
	if err != nil || req.Type != TypeQuery {
		s.stats.badPackets.Add(1)
		s.log.Warn("bad request", "remote", remote, "err", err, "type", req.Type)
		return
	}
	code, text := s.execute(remote, req.Buffer)
	// Deadline for the reply: the command may have used most of it.
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	resp := Packet{Version: req.Version, Type: TypeResponse, ResultCode: code, Buffer: text}
	b, err := resp.Marshal()
	if err != nil {
		s.log.Error("encode response", "err", err)
		return
	}
	if _, err := conn.Write(b); err != nil {
		s.log.Warn("send response", "remote", remote, "err", err)
	}
	if tc, ok := conn.(*tls.Conn); ok {
		tc.CloseWrite()
	}
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// execute runs one request and returns the result code and text.
func (s *Server) execute(remote, query string) (int, string) {
	if strings.ContainsAny(query, *s.cfg.NastyMetachars) {
		s.stats.argsRefused.Add(1)
		s.log.Warn("request refused: it contains characters from nasty_metachars", "remote", remote)
		return int(model.Unknown), "NRPE: Request contained illegal metachars"
	}
	name, argstr, hasArgs := strings.Cut(query, "!")
	if name == "" {
		s.stats.badPackets.Add(1)
		return int(model.Unknown), "NRPE: Request contained no query"
	}
	if name == helloCommand {
		return int(model.OK), "NRPE v" + ProgramVersion
	}
	var args []string
	if hasArgs {
		if !s.cfg.AllowArguments {
			s.stats.argsRefused.Add(1)
			s.log.Warn("request refused: command arguments are disabled (allow_arguments = false)", "remote", remote, "command", name)
			return int(model.Unknown), "NRPE: Request contained command arguments, but allow_arguments is off"
		}
		args = strings.Split(argstr, "!")
		if len(args) > maxArgs {
			args = args[:maxArgs]
		}
		for _, a := range args {
			if a == "" {
				s.stats.argsRefused.Add(1)
				return int(model.Unknown), "NRPE: Request contained an empty command argument"
			}
			if strings.Contains(a, "$(") {
				s.stats.argsRefused.Add(1)
				return int(model.Unknown), "NRPE: Request contained a command substitution"
			}
		}
	}
	line, ok := s.commands[name]
	if !ok {
		s.stats.unknownCommands.Add(1)
		return int(model.Unknown), fmt.Sprintf("NRPE: Command '%s' not defined", name)
	}
	s.stats.commands.Add(1)
	argv, err := s.argv(line, args)
	if err != nil {
		return int(model.Unknown), fmt.Sprintf("NRPE: Command '%s': %v", name, err)
	}
	timeout := s.cfg.CommandTimeout.D()
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	start := time.Now()
	x := s.runner.Run(ctx, argv, nagios.ExecOptions{})
	res := nagios.Interpret(x, argv[0], fmt.Sprintf(" after %v", timeout))
	code, text := int(res.Status), strings.TrimRight(string(x.Stdout), "\n")
	switch {
	case x.TimedOut:
		s.stats.timeouts.Add(1)
		code, text = int(model.Unknown), fmt.Sprintf("NRPE: Command timed out after %d seconds", int(timeout.Seconds()))
	case x.StartErr != nil || x.Signal != 0 || x.ExitCode < 0 || x.ExitCode > 3:
		if text == "" {
			text = res.Output
		}
	case text == "":
		code, text = int(model.Unknown), "NRPE: Unable to read output"
	}
	s.record(name, remote, args, start, res)
	return code, text
}

// argv builds the command line for a request, as nrpe does: $ARGn$ macros
// replaced by the request's arguments, then run without a shell unless the
// line needs one (nrpe always uses a shell; arguments never reach one
// unfiltered because of nasty_metachars).
func (s *Server) argv(line string, args []string) ([]string, error) {
	m := &nagios.Macros{Args: args}
	argv, err := s.runner.CommandLine(line, false, m)
	if err == nil {
		return argv, nil
	}
	if _, serr := nagios.SplitCommand(line); serr != nil && strings.Contains(serr.Error(), "needs a shell") {
		return s.runner.CommandLine(line, true, &nagios.Macros{Args: args})
	}
	return nil, err
}

// record publishes the run as a result, so NRPE-served checks are trended.
func (s *Server) record(name, remote string, args []string, start time.Time, res model.Result) {
	if s.publish == nil {
		return
	}
	host, _, _ := net.SplitHostPort(remote)
	check := "nrpe:" + name
	res.CheckID, res.Check, res.Type, res.Agent, res.Target, res.Time = model.CheckID(s.agent, check), check, "nrpe", s.agent, host, start
	res.StateType, res.Attempt = model.Hard, 1
	if len(args) > 0 {
		res.Tags = map[string]string{"args": strings.Join(args, "!")}
	}
	if err := s.publish(s.ctx, res); err != nil {
		s.log.Error("NRPE result not delivered to the pipeline", "command", name, "err", err)
	}
}

// Commands lists the configured command names, sorted.
func (s *Server) Commands() []string {
	names := make([]string, 0, len(s.commands))
	for n := range s.commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
