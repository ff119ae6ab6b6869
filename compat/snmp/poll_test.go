package snmp

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/testutil"
)

const (
	snmpdCommunity = "pollcomm"
	snmpdUser      = "pollv3"
	snmpdAuth      = "poll-auth-secret"
	snmpdPriv      = "poll-priv-secret"
)

// startSnmpd runs the real net-snmp agent on a free port of 127.0.0.1
// with a private configuration: a v2c community and a v3 authPriv user.
// It returns the agent's address.
func startSnmpd(t testing.TB) string {
	t.Helper()
	bin := testutil.RequireBinary(t, "/usr/sbin/snmpd")
	dir := t.TempDir()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	conf := writeFile(t, dir, "snmpd.conf", fmt.Sprintf(`rocommunity %s 127.0.0.1
createUser %s SHA-256 "%s" AES "%s"
rouser %s priv
sysLocation recon test rack
sysContact recon@example.org
sysServices 72
`, snmpdCommunity, snmpdUser, snmpdAuth, snmpdPriv, snmpdUser))
	cmd := exec.Command(bin, "-f", "-Lo", "-C", "-c", conf, "-p", filepath.Join(dir, "snmpd.pid"), "udp:"+addr)
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+dir, "SNMPCONFPATH="+dir, "MIBS=", "MIBDIRS="+dir)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("snmpd output:\n%s", out.String())
		}
	})
	host, port, _ := net.SplitHostPort(addr)
	var p uint16
	fmt.Sscan(port, &p)
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := &gosnmp.GoSNMP{Target: host, Port: p, Community: snmpdCommunity, Version: gosnmp.Version2c, Timeout: 200 * time.Millisecond, Retries: 0}
		if g.Connect() == nil {
			_, err := g.Get([]string{"1.3.6.1.2.1.1.3.0"})
			g.Conn.Close()
			if err == nil {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("snmpd did not answer on %s:\n%s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runCheck(t *testing.T, typ *Type, target string, s *Settings) model.Result {
	t.Helper()
	r, err := typ.Prepare(&model.Check{Name: "snmp-test", Type: "snmp", Target: target, Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := r.Run(ctx, nil)
	t.Logf("%s: %s (%d metrics)", res.Status, res.Output, len(res.Metrics))
	return res
}

func TestPollGet(t *testing.T) {
	addr := startSnmpd(t)
	typ := NewType(TypeOptions{Logger: testLogger(t)})
	for _, s := range []*Settings{
		{Community: snmpdCommunity},
		{Version: "1", Community: snmpdCommunity},
		{Version: "3", User: snmpdUser, AuthProtocol: "SHA256", AuthPassphrase: snmpdAuth, PrivProtocol: "AES", PrivPassphrase: snmpdPriv},
	} {
		s.OIDs = []string{"SNMPv2-MIB::sysUpTime.0", "sysLocation.0", "1.3.6.1.2.1.1.7.0", "IF-MIB::ifNumber.0"}
		s.Crit = map[string]string{"sysServices.0": "@0:1"} // alert inside 0..1: sysServices is 72
		res := runCheck(t, typ, addr, s)
		if res.Status != model.OK {
			t.Errorf("v%s: status %v: %s", s.Version, res.Status, res.Output)
		}
		up, ok := metric(res, "sysUpTime.0")
		if !ok || up.Value.Kind() != model.KindUint || up.Value.Uint() == 0 {
			t.Errorf("v%s: sysUpTime.0 = %+v", s.Version, up)
		}
		if loc, ok := metric(res, "sysLocation.0"); !ok || loc.Value.Str() != "recon test rack" {
			t.Errorf("v%s: sysLocation.0 = %+v", s.Version, loc)
		}
		if sv, ok := metric(res, "sysServices.0"); !ok || sv.Value.Kind() != model.KindInt || sv.Crit != "@0:1" {
			t.Errorf("v%s: sysServices.0 = %+v", s.Version, sv)
		}
		if n, ok := metric(res, "ifNumber.0"); !ok || n.Value.Int() < 1 {
			t.Errorf("v%s: ifNumber.0 = %+v", s.Version, n)
		}
	}
}

func TestPollThresholds(t *testing.T) {
	addr := startSnmpd(t)
	typ := NewType(TypeOptions{Logger: testLogger(t)})
	res := runCheck(t, typ, addr, &Settings{Community: snmpdCommunity, OIDs: []string{"sysServices.0", "sysUpTime.0"},
		Warn: map[string]string{"sysServices.0": "10"}, Crit: map[string]string{"sysUp*": "1:"}})
	if res.Status != model.Warning || !strings.Contains(res.Output, "sysServices.0=72 (warning 10)") {
		t.Errorf("status %v output %q", res.Status, res.Output)
	}
	res = runCheck(t, typ, addr, &Settings{Community: snmpdCommunity, OIDs: []string{"sysServices.0"},
		Warn: map[string]string{"sysServices.0": "10"}, Crit: map[string]string{"sysServices.0": "50"}})
	if res.Status != model.Critical {
		t.Errorf("status %v output %q", res.Status, res.Output)
	}
	// A threshold on a metric that never came: UNKNOWN, saying so.
	res = runCheck(t, typ, addr, &Settings{Community: snmpdCommunity, OIDs: []string{"sysServices.0"},
		Crit: map[string]string{"ifNumber.0": "10"}})
	if res.Status != model.Unknown || !strings.Contains(res.Output, "ifNumber.0: no such metric") {
		t.Errorf("status %v output %q", res.Status, res.Output)
	}
	// A missing instance: UNKNOWN with the reason, other values kept.
	res = runCheck(t, typ, addr, &Settings{Community: snmpdCommunity, OIDs: []string{"sysServices.0", "sysServices.7"}})
	if res.Status != model.Unknown || !strings.Contains(res.Output, "sysServices.7: NoSuchInstance") || len(res.Metrics) != 1 {
		t.Errorf("status %v output %q metrics %v", res.Status, res.Output, res.Metrics)
	}
}

func TestPollWalkAndIfTable(t *testing.T) {
	addr := startSnmpd(t)
	typ := NewType(TypeOptions{Logger: testLogger(t)})
	for _, s := range []*Settings{
		{Community: snmpdCommunity},
		{Version: "1", Community: snmpdCommunity},
		{Version: "3", User: snmpdUser, AuthProtocol: "SHA-256", AuthPassphrase: snmpdAuth, PrivProtocol: "AES", PrivPassphrase: snmpdPriv},
	} {
		s.Walk = []string{"SNMPv2-MIB::system"}
		s.IfTable = true
		s.Crit = map[string]string{"ifOperStatus.lo": "1"}
		res := runCheck(t, typ, addr, s)
		if res.Status != model.OK {
			t.Errorf("v%s: %v %s", s.Version, res.Status, res.Output)
		}
		if d, ok := metric(res, "sysDescr.0"); !ok || !strings.Contains(d.Value.Str(), "Linux") {
			t.Errorf("v%s: walk sysDescr.0 = %+v", s.Version, d)
		}
		if c, ok := metric(res, "sysContact.0"); !ok || c.Value.Str() != "recon@example.org" {
			t.Errorf("v%s: walk sysContact.0 = %+v", s.Version, c)
		}
		if o, ok := metric(res, "sysObjectID.0"); !ok || o.Value.Kind() != model.KindString || o.Value.Str() == "" {
			t.Errorf("v%s: walk sysObjectID.0 = %+v", s.Version, o)
		}
		if m, ok := metric(res, "ifOperStatus.lo"); !ok || m.Value.Int() != 1 || m.Crit != "1" {
			t.Errorf("v%s: ifOperStatus.lo = %+v", s.Version, m)
		}
		if m, ok := metric(res, "ifInOctets.lo"); !ok || m.Value.Kind() != model.KindUint {
			t.Errorf("v%s: ifInOctets.lo = %+v", s.Version, m)
		}
		if s.Version != "1" {
			// Counter64 needs v2c or v3.
			if m, ok := metric(res, "ifHCInOctets.lo"); !ok || m.Value.Kind() != model.KindUint || m.Value.Uint() == 0 {
				t.Errorf("v%s: ifHCInOctets.lo = %+v", s.Version, m)
			}
		}
		if !strings.Contains(res.Output, "interfaces") {
			t.Errorf("v%s: output %q", s.Version, res.Output)
		}
	}
}

func TestPollFailures(t *testing.T) {
	addr := startSnmpd(t)
	typ := NewType(TypeOptions{Logger: testLogger(t)})
	cases := []struct {
		name string
		s    *Settings
		want string
	}{
		{"wrong community", &Settings{Community: "nope", Retries: new(int)}, "timeout"},
		{"wrong auth passphrase", &Settings{Version: "3", User: snmpdUser, AuthProtocol: "SHA256", AuthPassphrase: "wrong-secret",
			PrivProtocol: "AES", PrivPassphrase: snmpdPriv}, "authentication failed"},
		{"unknown user", &Settings{Version: "3", User: "nobody", AuthProtocol: "SHA256", AuthPassphrase: snmpdAuth,
			PrivProtocol: "AES", PrivPassphrase: snmpdPriv}, "authentication failed"},
	}
	for _, tc := range cases {
		tc.s.OIDs = []string{"sysUpTime.0"}
		r, err := typ.Prepare(&model.Check{Name: "x", Target: addr, Settings: tc.s})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res := r.Run(ctx, nil)
		cancel()
		if res.Status != model.Unknown || !strings.Contains(res.Output, tc.want) {
			t.Errorf("%s: %v %q, want UNKNOWN mentioning %q", tc.name, res.Status, res.Output, tc.want)
		}
	}
}

func TestPollPrepareErrors(t *testing.T) {
	typ := NewType(TypeOptions{MIBDirs: []string{}, Logger: testLogger(t)})
	two := 2
	bad := -1
	for name, c := range map[string]struct {
		target string
		s      *Settings
	}{
		"no target":           {"", &Settings{OIDs: []string{"sysUpTime.0"}}},
		"nothing to poll":     {"h", &Settings{}},
		"bad version":         {"h", &Settings{Version: "4", OIDs: []string{"sysUpTime.0"}}},
		"community with v3":   {"h", &Settings{Version: "3", Community: "x", User: "u", OIDs: []string{"sysUpTime.0"}}},
		"v3 without user":     {"h", &Settings{Version: "3", OIDs: []string{"sysUpTime.0"}}},
		"v3 short passphrase": {"h", &Settings{Version: "3", User: "u", AuthProtocol: "SHA", AuthPassphrase: "short", OIDs: []string{"sysUpTime.0"}}},
		"v3 bad protocol":     {"h", &Settings{Version: "3", User: "u", AuthProtocol: "SHA3", AuthPassphrase: "12345678", OIDs: []string{"sysUpTime.0"}}},
		"user with v2c":       {"h", &Settings{User: "u", OIDs: []string{"sysUpTime.0"}}},
		"unknown name":        {"h", &Settings{OIDs: []string{"noSuchThing.0"}}},
		"unknown walk":        {"h", &Settings{Walk: []string{"NO-MIB::x"}}},
		"bad instance":        {"h", &Settings{OIDs: []string{"ifIndex.eth0"}}},
		"bad threshold":       {"h", &Settings{OIDs: []string{"sysUpTime.0"}, Warn: map[string]string{"sysUpTime.0": "10:5"}}},
		"bad crit":            {"h", &Settings{OIDs: []string{"sysUpTime.0"}, Crit: map[string]string{"sysUpTime.0": "abc"}}},
		"bad port":            {"h", &Settings{Port: 70000, OIDs: []string{"sysUpTime.0"}}},
		"bad target port":     {"h:0", &Settings{OIDs: []string{"sysUpTime.0"}}},
		"bad retries":         {"h", &Settings{Retries: &bad, OIDs: []string{"sysUpTime.0"}}},
		"bad max_repetitions": {"h", &Settings{MaxRepetitions: 5000, OIDs: []string{"sysUpTime.0"}}},
	} {
		if _, err := typ.Prepare(&model.Check{Name: name, Target: c.target, Settings: c.s}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := typ.Prepare(&model.Check{Name: "x", Settings: &Settings{}, Target: "h"}); err == nil {
		t.Error("empty settings accepted")
	}
	if _, err := typ.Prepare(&model.Check{Name: "x", Settings: struct{}{}, Target: "h"}); err == nil {
		t.Error("foreign settings accepted")
	}
	for target, want := range map[string]string{"h": "h:161 2c", "h:1161": "h:1161 2c", "[::1]:16100": "[::1]:16100 2c", "::1": "[::1]:161 2c"} {
		r, err := typ.Prepare(&model.Check{Name: "x", Target: target, Settings: &Settings{Retries: &two, OIDs: []string{"sysUpTime.0"}}})
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if got := r.(*poller).describe; got != want {
			t.Errorf("target %q: %q, want %q", target, got, want)
		}
	}
}

// TestPollConcurrentRuns: runs of one check may overlap (temporal-stream
// clones); each evaluates on its own.
func TestPollConcurrentRuns(t *testing.T) {
	addr := startSnmpd(t)
	typ := NewType(TypeOptions{Logger: testLogger(t)})
	r, err := typ.Prepare(&model.Check{Name: "x", Target: addr, Settings: &Settings{Community: snmpdCommunity,
		OIDs: []string{"sysServices.0", "sysUpTime.0"}, Warn: map[string]string{"sysServices.0": "10", "sys*": "0:"}}})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan string, 8)
	for range 8 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res := r.Run(ctx, nil)
			if res.Status != model.Warning || len(res.Metrics) != 2 {
				errs <- fmt.Sprintf("%v %s", res.Status, res.Output)
				return
			}
			errs <- ""
		}()
	}
	for range 8 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
