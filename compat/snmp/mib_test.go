package snmp

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reconmon/recon/internal/testutil"
)

const testMIBDir = "../../testdata/snmp/mibs"

// TestLoadMIBTestdata: good modules resolve (SMIv2, SMIv1 TRAP-TYPE,
// textual conventions), broken and non-MIB files are skipped and named,
// unresolvable symbols (missing import, a cycle) are skipped, the rest of
// their module kept.
func TestLoadMIBTestdata(t *testing.T) {
	m, err := LoadMIB([]string{testMIBDir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Modules, ","); got != "RECON-ORPHAN-MIB,RECON-TEST-MIB,RECON-V1-MIB" {
		t.Errorf("modules %s", got)
	}
	for _, f := range []string{"RECON-BROKEN-MIB.txt", "README", "junk.bin"} {
		if m.Failed[filepath.Join(testMIBDir, f)] == nil {
			t.Errorf("%s not reported as failed: %v", f, m.Failed)
		}
	}
	for oid, want := range map[string]string{
		"1.3.6.1.4.1.99999":         "RECON-TEST-MIB::reconTestMIB",
		"1.3.6.1.4.1.99999.1.1.0":   "RECON-TEST-MIB::reconState.0",
		".1.3.6.1.4.1.99999.0.1":    "RECON-TEST-MIB::reconStateChange",
		"1.3.6.1.4.1.99999.2.0.7":   "RECON-V1-MIB::reconV1Alarm", // RFC 3584: enterprise.0.specific
		"1.3.6.1.4.1.99999.2.1.5":   "RECON-V1-MIB::reconV1Counter.5",
		"1.3.6.1.4.1.99998":         "RECON-ORPHAN-MIB::rooted",
		"1.3.6.1.4.1.99999.0.2":     "1.3.6.1.4.1.99999.0.2", // below a notification prefix: numeric
		"1.3.6.1.4.1.12345.1":       "1.3.6.1.4.1.12345.1",
		"1.3.6.1.2.1.2.2.1.8.12":    "IF-MIB::ifOperStatus.12",
		"1.3.6.1.6.3.1.1.5.4":       "IF-MIB::linkUp",
		"1.3.6.1.6.3.1.1.5.1":       "SNMPv2-MIB::coldStart",
		"1.3.6.1.6.3.1.1.5.2":       "SNMPv2-MIB::warmStart",
		"1.3.6.1.6.3.1.1.5.5":       "SNMPv2-MIB::authenticationFailure",
		"1.3.6.1.6.3.1.1.4.1.0":     "SNMPv2-MIB::snmpTrapOID.0",
		"1.3.6.1.2.1.1.3.0":         "SNMPv2-MIB::sysUpTime.0",
		"1.3.6.1.2.1.31.1.1.1.6.10": "IF-MIB::ifHCInOctets.10",
	} {
		if got := m.Translate(oid); got != want {
			t.Errorf("Translate(%s) = %q, want %q", oid, got, want)
		}
	}
	n, _, _ := m.Lookup("1.3.6.1.4.1.99999.1.1.0")
	if n.Enum[2] != "degraded" || n.Syntax != "ReconState" {
		t.Errorf("reconState: %+v", n)
	}
	n, _, _ = m.Lookup("1.3.6.1.4.1.99999.1.2.0")
	if n.Hint != "1x-" {
		t.Errorf("reconMac hint %q", n.Hint)
	}
	if got := formatOctets([]byte{0, 1, 2, 0xaa, 0xbb, 0xcc}, n.Hint); got != "00-01-02-aa-bb-cc" {
		t.Errorf("reconMac formatted %q", got)
	}
	n, _, _ = m.Lookup("1.3.6.1.4.1.99999.1.3.0")
	if n.Hint != "255a" {
		t.Errorf("reconLabel hint %q (DisplayString from the built-in TCs)", n.Hint)
	}
	if _, err := m.Resolve("RECON-ORPHAN-MIB::orphan"); err == nil {
		t.Error("orphan (missing import) resolved")
	}
	if _, err := m.Resolve("loopA"); err == nil {
		t.Error("a cyclic definition resolved")
	}
}

func TestResolve(t *testing.T) {
	m, err := LoadMIB([]string{testMIBDir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"1.3.6.1.2.1.1.3.0":              "1.3.6.1.2.1.1.3.0",
		".1.3.6.1.2.1.1.3.0":             "1.3.6.1.2.1.1.3.0",
		"SNMPv2-MIB::sysUpTime.0":        "1.3.6.1.2.1.1.3.0",
		"sysUpTime.0":                    "1.3.6.1.2.1.1.3.0",
		"IF-MIB::ifTable":                "1.3.6.1.2.1.2.2",
		"ifHCInOctets.3":                 "1.3.6.1.2.1.31.1.1.1.6.3",
		"RECON-TEST-MIB::reconState.0":   "1.3.6.1.4.1.99999.1.1.0",
		"  reconStateChange ":            "1.3.6.1.4.1.99999.0.1",
		"RECON-V1-MIB::reconV1Counter.1": "1.3.6.1.4.1.99999.2.1.1",
	} {
		got, err := m.Resolve(in)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "nosuchObject", "IF-MIB::nosuch", "NO-MODULE::ifIndex", "ifIndex.x", "ifIndex.", "1.3..6", "1.3.-6", "ifIndex.99999999999"} {
		if got, err := m.Resolve(bad); err == nil {
			t.Errorf("Resolve(%q) = %q, want an error", bad, got)
		}
	}
	if got := m.Short("1.3.6.1.2.1.31.1.1.1.6.3"); got != "ifHCInOctets.3" {
		t.Errorf("Short = %q", got)
	}
}

// TestLoadMIBDebian loads net-snmp's own MIBs as Debian installs them.
func TestLoadMIBDebian(t *testing.T) {
	if _, err := os.Stat(filepath.Join(DefaultMIBDir, "NET-SNMP-EXAMPLES-MIB.txt")); err != nil {
		testutil.MissingPeer(t, "%s (Debian libsnmp-base)", DefaultMIBDir)
	}
	m, err := LoadMIB([]string{DefaultMIBDir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Failed) != 0 {
		t.Errorf("failed: %v", m.Failed)
	}
	for _, mod := range []string{"NET-SNMP-MIB", "NET-SNMP-EXAMPLES-MIB", "UCD-SNMP-MIB", "NET-SNMP-AGENT-MIB"} {
		found := false
		for _, x := range m.Modules {
			found = found || x == mod
		}
		if !found {
			t.Errorf("%s not loaded: %v", mod, m.Modules)
		}
	}
	for oid, want := range map[string]string{
		heartbeatOID:                "NET-SNMP-EXAMPLES-MIB::netSnmpExampleHeartbeatNotification",
		hbRateOID + ".0":            "NET-SNMP-EXAMPLES-MIB::netSnmpExampleHeartbeatRate.0",
		"1.3.6.1.4.1.2021.10.1.3.1": "UCD-SNMP-MIB::laLoad.1",
		"1.3.6.1.4.1.8072.3.2.10":   "NET-SNMP-TC::linux",
		"1.3.6.1.4.1.8072.4.0.3":    "NET-SNMP-AGENT-MIB::nsNotifyRestart",
	} {
		if got := m.Translate(oid); got != want {
			t.Errorf("Translate(%s) = %q, want %q", oid, got, want)
		}
	}
}

func TestLoadMIBMissingDir(t *testing.T) {
	if _, err := LoadMIB([]string{"/nonexistent/mibs"}, testLogger(t)); err == nil {
		t.Error("no error for a missing directory")
	}
	m, err := LoadMIB(nil, nil)
	if err != nil || m.Translate(linkDownOID) != "IF-MIB::linkDown" {
		t.Errorf("built-in only: %v", err)
	}
}

// FuzzParseMIB feeds arbitrary text through gosmi's parser and recon's
// resolver, next to a real module it may import from.
func FuzzParseMIB(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testMIBDir, "*"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("X DEFINITIONS ::= BEGIN a OBJECT IDENTIFIER ::= { a 1 } END"))
	base, err := os.ReadFile(filepath.Join(testMIBDir, "RECON-TEST-MIB.txt"))
	if err != nil {
		f.Fatal(err)
	}
	baseMod, err := parseModule(bytes.NewReader(base))
	if err != nil {
		f.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		mod, err := parseModule(bytes.NewReader(data))
		m := buildMIB(BuiltinMIB(), []string{"base", "fuzz"}, []parsedFile{{mod: baseMod}, {mod: mod, err: err}}, log)
		for _, n := range m.byOID {
			m.Translate(n.OID + ".1")
			m.Resolve(n.Module + "::" + n.Name)
		}
	})
}
