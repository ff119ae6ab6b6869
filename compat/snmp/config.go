package snmp

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/gosnmp/gosnmp"

	"github.com/reconmon/recon/agent/model"
)

// ReceiverConfig is one [[snmp_trap]] section.
type ReceiverConfig struct {
	// Name is the pseudo-check every trap of this receiver is a result of
	// (default "snmptrap"); give each [[snmp_trap]] its own.
	Name string `toml:"name"`
	// Listen is the UDP address (default 0.0.0.0:162).
	Listen string `toml:"listen"`
	// Communities allowed for v1/v2c; empty refuses v1/v2c.
	Communities []string `toml:"communities"`
	// AllowedSources are CIDRs or addresses; empty allows any source.
	AllowedSources []string `toml:"allowed_sources"`
	// MIBDirs are directories of MIB modules (default /usr/share/snmp/mibs if it exists).
	MIBDirs []string `toml:"mib_dirs"`
	// QueueSize bounds the packets waiting between the socket reader and the decoders (default 65536).
	QueueSize int `toml:"queue_size"`
	// QueueBytes bounds the bytes of those packets (default 64 MiB).
	QueueBytes int64 `toml:"queue_bytes"`
	// Workers decode and publish (0 = GOMAXPROCS).
	Workers int `toml:"workers"`
	// ReadBuffer is the socket receive buffer requested (default 32 MiB).
	ReadBuffer int `toml:"read_buffer"`
	// EngineID is this receiver's SNMPv3 engine ID in hex, which informs are sent to (default derived from the host name and listen address).
	EngineID string `toml:"engine_id"`
	// Tags are added to every trap result.
	Tags map[string]string `toml:"tags"`
	// User are the SNMPv3 USM users.
	User []UserConfig `toml:"user"`
	// Rule map traps to statuses; the first match wins, default WARNING.
	Rule []RuleConfig `toml:"rule"`

	// Agent is the agent name (results' Agent and check ID namespace); set
	// by the wiring, not in TOML.
	Agent string `toml:"-"`
}

// UserConfig is one [[snmp_trap.user]].
type UserConfig struct {
	// Name is the USM user (security) name.
	Name string `toml:"name"`
	// AuthProtocol is MD5, SHA, SHA224, SHA256, SHA384, SHA512 or empty (noAuthNoPriv).
	AuthProtocol string `toml:"auth_protocol"`
	// AuthPassphrase is required with an auth protocol (at least 8 characters).
	AuthPassphrase string `toml:"auth_passphrase"`
	// PrivProtocol is DES, AES, AES192, AES256, AES192C, AES256C or empty.
	PrivProtocol string `toml:"priv_protocol"`
	// PrivPassphrase is required with a priv protocol (at least 8 characters).
	PrivPassphrase string `toml:"priv_passphrase"`
	// EngineID restricts this user's traps to the sender engine ID (hex); empty accepts any sender.
	EngineID string `toml:"engine_id"`
}

// RuleConfig is one [[snmp_trap.rule]].
type RuleConfig struct {
	// Trap matches the trap name (IF-MIB::linkDown or linkDown) or numeric OID; * and ? are wildcards; empty matches any.
	Trap string `toml:"trap"`
	// Varbind is an optional "name=value" that some varbind must match (wildcards on both sides).
	Varbind string `toml:"varbind"`
	// Status is OK, WARNING, CRITICAL or UNKNOWN.
	Status string `toml:"status"`
}

// Defaults.
const (
	DefaultListen     = "0.0.0.0:162"
	DefaultCheckName  = "snmptrap"
	DefaultQueueSize  = 65536
	DefaultQueueBytes = 64 << 20
	DefaultReadBuffer = 32 << 20
	DefaultMIBDir     = "/usr/share/snmp/mibs"
	minPassphrase     = 8
)

// withDefaults returns c with defaults filled in.
func (c ReceiverConfig) withDefaults() ReceiverConfig {
	if c.Name == "" {
		c.Name = DefaultCheckName
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = DefaultReadBuffer
	}
	if c.MIBDirs == nil {
		if st, err := os.Stat(DefaultMIBDir); err == nil && st.IsDir() {
			c.MIBDirs = []string{DefaultMIBDir}
		}
	}
	return c
}

// ParsePrefixes parses CIDRs or single addresses.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("allowed_sources: %q is not a CIDR: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("allowed_sources: %q is not an address or CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// ParseAuthProtocol maps a config name (net-snmp spellings accepted:
// "SHA-256") to gosnmp's constant. Empty means none.
func ParseAuthProtocol(s string) (gosnmp.SnmpV3AuthProtocol, error) {
	switch strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "")) {
	case "":
		return gosnmp.NoAuth, nil
	case "MD5":
		return gosnmp.MD5, nil
	case "SHA", "SHA1":
		return gosnmp.SHA, nil
	case "SHA224":
		return gosnmp.SHA224, nil
	case "SHA256":
		return gosnmp.SHA256, nil
	case "SHA384":
		return gosnmp.SHA384, nil
	case "SHA512":
		return gosnmp.SHA512, nil
	}
	return 0, fmt.Errorf("unknown auth_protocol %q (want MD5, SHA, SHA224, SHA256, SHA384, SHA512 or empty)", s)
}

// ParsePrivProtocol maps a config name to gosnmp's constant. Empty means
// none. AES192/AES256 extend the key as net-snmp does (Blumenthal);
// AES192C/AES256C as Cisco and others do (Reeder).
func ParsePrivProtocol(s string) (gosnmp.SnmpV3PrivProtocol, error) {
	switch strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "")) {
	case "":
		return gosnmp.NoPriv, nil
	case "DES":
		return gosnmp.DES, nil
	case "AES", "AES128":
		return gosnmp.AES, nil
	case "AES192":
		return gosnmp.AES192, nil
	case "AES256":
		return gosnmp.AES256, nil
	case "AES192C":
		return gosnmp.AES192C, nil
	case "AES256C":
		return gosnmp.AES256C, nil
	}
	return 0, fmt.Errorf("unknown priv_protocol %q (want DES, AES, AES192, AES256, AES192C, AES256C or empty)", s)
}

// ParseEngineID parses a hex engine ID ("0x8000…", "80:00:…", "80 00 …").
// RFC 3411 bounds an engine ID to 5-32 octets.
func ParseEngineID(s string) (string, error) {
	h := strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(s))
	h = strings.TrimPrefix(strings.TrimPrefix(h, "0x"), "0X")
	b, err := hex.DecodeString(h)
	if err != nil {
		return "", fmt.Errorf("engine_id %q is not hex", s)
	}
	if len(b) < 5 || len(b) > 32 {
		return "", fmt.Errorf("engine_id %q: %d octets, want 5-32", s, len(b))
	}
	return string(b), nil
}

// usmUser is a validated v3 user.
type usmUser struct {
	name     string
	auth     gosnmp.SnmpV3AuthProtocol
	authPass string
	priv     gosnmp.SnmpV3PrivProtocol
	privPass string
	engineID string // required sender engine ID for traps; "" = any
	level    gosnmp.SnmpV3MsgFlags
}

func (u *UserConfig) validate() (*usmUser, error) {
	if u.Name == "" || len(u.Name) > 32 {
		return nil, fmt.Errorf("user name %q: want 1-32 characters", u.Name)
	}
	auth, err := ParseAuthProtocol(u.AuthProtocol)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", u.Name, err)
	}
	priv, err := ParsePrivProtocol(u.PrivProtocol)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", u.Name, err)
	}
	out := &usmUser{name: u.Name, auth: auth, authPass: u.AuthPassphrase, priv: priv, privPass: u.PrivPassphrase, level: gosnmp.NoAuthNoPriv}
	if auth != gosnmp.NoAuth {
		if len(u.AuthPassphrase) < minPassphrase {
			return nil, fmt.Errorf("user %s: auth_passphrase must have at least %d characters", u.Name, minPassphrase)
		}
		out.level = gosnmp.AuthNoPriv
	} else if u.AuthPassphrase != "" {
		return nil, fmt.Errorf("user %s: auth_passphrase without auth_protocol", u.Name)
	}
	if priv != gosnmp.NoPriv {
		if auth == gosnmp.NoAuth {
			return nil, fmt.Errorf("user %s: priv_protocol needs an auth_protocol (there is no noAuthPriv)", u.Name)
		}
		if len(u.PrivPassphrase) < minPassphrase {
			return nil, fmt.Errorf("user %s: priv_passphrase must have at least %d characters", u.Name, minPassphrase)
		}
		out.level = gosnmp.AuthPriv
	} else if u.PrivPassphrase != "" {
		return nil, fmt.Errorf("user %s: priv_passphrase without priv_protocol", u.Name)
	}
	if u.EngineID != "" {
		if out.engineID, err = ParseEngineID(u.EngineID); err != nil {
			return nil, fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	return out, nil
}

// validate checks everything that can be checked without binding.
func (c *ReceiverConfig) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if c.QueueSize < 0 || c.QueueBytes < 0 || c.Workers < 0 || c.ReadBuffer < 0 {
		errs = append(errs, errors.New("queue_size, queue_bytes, workers and read_buffer must be >= 0"))
	}
	if c.QueueBytes > 0 && c.QueueBytes < 1<<16 {
		errs = append(errs, fmt.Errorf("queue_bytes %d: must hold at least one 64 KiB datagram", c.QueueBytes))
	}
	for _, s := range c.Communities {
		if s == "" || len(s) > 255 {
			errs = append(errs, fmt.Errorf("communities: %q: want 1-255 characters", s))
		}
	}
	for _, r := range c.Rule {
		if _, err := model.ParseStatus(r.Status); err != nil || strings.TrimSpace(r.Status) == "" {
			errs = append(errs, fmt.Errorf("rule trap=%q: status %q: want OK, WARNING, CRITICAL or UNKNOWN", r.Trap, r.Status))
		}
		if r.Varbind != "" && !strings.Contains(r.Varbind, "=") {
			errs = append(errs, fmt.Errorf("rule trap=%q: varbind %q: want name=value", r.Trap, r.Varbind))
		}
	}
	return errors.Join(errs...)
}
