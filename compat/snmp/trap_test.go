package snmp

import (
	"fmt"
	"os"

	"github.com/reconmon/recon/internal/testutil"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/reconmon/recon/agent/model"
)

// Numeric OIDs, so the tests do not depend on net-snmp finding MIBs.
const (
	linkDownOID  = "1.3.6.1.6.3.1.1.5.3"
	ifIndexOID   = "1.3.6.1.2.1.2.2.1.1"
	ifAdminOID   = "1.3.6.1.2.1.2.2.1.7"
	ifOperOID    = "1.3.6.1.2.1.2.2.1.8"
	heartbeatOID = "1.3.6.1.4.1.8072.2.3.0.1"
	hbRateOID    = "1.3.6.1.4.1.8072.2.3.2.1"
	hbNameOID    = "1.3.6.1.4.1.8072.2.3.2.2"
)

var linkDownArgs = []string{linkDownOID, ifIndexOID + ".3", "i", "3", ifAdminOID + ".3", "i", "1", ifOperOID + ".3", "i", "2"}

// users of the v3 tests: two authPriv users with different protocols,
// one authNoPriv, one noAuthNoPriv.
var testUsers = []UserConfig{
	{Name: "ops", AuthProtocol: "SHA256", AuthPassphrase: "ops-auth-secret", PrivProtocol: "AES", PrivPassphrase: "ops-priv-secret"},
	{Name: "legacy", AuthProtocol: "SHA", AuthPassphrase: "legacy-auth-pw", PrivProtocol: "DES", PrivPassphrase: "legacy-priv-pw"},
	{Name: "md5", AuthProtocol: "MD5", AuthPassphrase: "md5-auth-pass"},
	{Name: "plain"},
	{Name: "pinned", AuthProtocol: "SHA512", AuthPassphrase: "pinned-auth-pw", PrivProtocol: "AES256", PrivPassphrase: "pinned-priv-pw", EngineID: "0x8000000001020304"},
}

func v3Args(user, level, auth, authPass, priv, privPass string) []string {
	a := []string{"-v3", "-u", user, "-l", level}
	if auth != "" {
		a = append(a, "-a", auth, "-A", authPass)
	}
	if priv != "" {
		a = append(a, "-x", priv, "-X", privPass)
	}
	return a
}

func assertLinkDown(t *testing.T, r model.Result) {
	t.Helper()
	if r.Output != "IF-MIB::linkDown" || r.Tags["trap_oid"] != linkDownOID || r.Tags["trap_name"] != "IF-MIB::linkDown" || r.Type != TrapType {
		t.Errorf("output %q trap_oid %q trap_name %q type %q", r.Output, r.Tags["trap_oid"], r.Tags["trap_name"], r.Type)
	}
	if m, ok := metric(r, "IF-MIB::ifIndex.3"); !ok || m.Value.Kind() != model.KindInt || m.Value.Int() != 3 {
		t.Errorf("IF-MIB::ifIndex.3 = %+v (present %v)", m, ok)
	}
	if m, ok := metric(r, "IF-MIB::ifOperStatus.3"); !ok || m.Value.Int() != 2 {
		t.Errorf("IF-MIB::ifOperStatus.3 = %+v (present %v)", m, ok)
	}
	if !strings.Contains(r.LongOutput, "IF-MIB::ifOperStatus.3 = down(2)") {
		t.Errorf("long output %q lacks the enum label", r.LongOutput)
	}
	if r.Target != "127.0.0.1" || r.Status != model.Warning || r.StateType != model.Hard {
		t.Errorf("target %q status %v state %v", r.Target, r.Status, r.StateType)
	}
}

func TestTrapV2c(t *testing.T) {
	rc, c, addr := startReceiver(t, ReceiverConfig{Communities: []string{"public"}, Agent: "a1"})
	out, code := netsnmp(t, "snmptrap", append([]string{"-v2c", "-c", "public", addr, "12345"}, linkDownArgs...)...)
	if code != 0 {
		t.Fatalf("snmptrap exit %d: %s", code, out)
	}
	r := c.wait(t, 1, 5*time.Second)[0]
	assertLinkDown(t, r)
	if r.Tags["version"] != "2c" || r.Tags["community"] != "public" || r.Tags["pdu"] != "trap" {
		t.Errorf("tags %v", r.Tags)
	}
	if m, ok := metric(r, "SNMPv2-MIB::sysUpTime.0"); !ok || m.Value.Kind() != model.KindUint || m.Value.Uint() != 12345 {
		t.Errorf("sysUpTime.0 = %+v", m)
	}
	if _, ok := metric(r, "SNMPv2-MIB::snmpTrapOID.0"); ok {
		t.Error("snmpTrapOID.0 kept as a metric; it is the trap_oid tag")
	}
	if r.CheckID != model.CheckID("a1", "snmptrap") || r.Check != "snmptrap" || r.Agent != "a1" {
		t.Errorf("identity %v %q %q", r.CheckID, r.Check, r.Agent)
	}
	if st := rc.Stats(); st.Received != 1 || st.Decoded != 1 || st.Published != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestTrapV1(t *testing.T) {
	_, c, addr := startReceiver(t, ReceiverConfig{Communities: []string{"v1comm"}})
	// Generic linkDown (2) and an enterprise-specific trap of
	// NET-SNMP-EXAMPLES-MIB, whose v2 OID is enterprise.0.specific.
	out, code := netsnmp(t, "snmptrap", "-v1", "-c", "v1comm", addr, "1.3.6.1.4.1.8072.3.2.10", "192.0.2.7", "2", "0", "4242",
		ifIndexOID+".3", "i", "3", ifOperOID+".3", "i", "2")
	if code != 0 {
		t.Fatalf("snmptrap exit %d: %s", code, out)
	}
	out, code = netsnmp(t, "snmptrap", "-v1", "-c", "v1comm", addr, "1.3.6.1.4.1.8072.2.3", "192.0.2.8", "6", "1", "77",
		hbRateOID+".0", "i", "60", hbNameOID+".0", "s", "beat")
	if code != 0 {
		t.Fatalf("snmptrap exit %d: %s", code, out)
	}
	rs := c.wait(t, 2, 5*time.Second)
	if rs[0].Tags["agent_addr"] == "192.0.2.8" {
		rs[0], rs[1] = rs[1], rs[0]
	}
	ld, hb := rs[0], rs[1]
	if ld.Output != "IF-MIB::linkDown" || ld.Tags["trap_oid"] != linkDownOID || ld.Tags["version"] != "1" ||
		ld.Tags["agent_addr"] != "192.0.2.7" || ld.Tags["enterprise"] != "1.3.6.1.4.1.8072.3.2.10" || ld.Target != "127.0.0.1" {
		t.Errorf("v1 linkDown: output %q tags %v target %q", ld.Output, ld.Tags, ld.Target)
	}
	if m, ok := metric(ld, "SNMPv2-MIB::sysUpTime.0"); !ok || m.Value.Uint() != 4242 {
		t.Errorf("v1 time-stamp as sysUpTime.0: %+v", m)
	}
	if m, ok := metric(ld, "IF-MIB::ifIndex.3"); !ok || m.Value.Int() != 3 {
		t.Errorf("ifIndex.3 = %+v", m)
	}
	if hb.Output != "NET-SNMP-EXAMPLES-MIB::netSnmpExampleHeartbeatNotification" || hb.Tags["trap_oid"] != heartbeatOID {
		t.Errorf("v1 enterprise-specific: output %q trap_oid %q", hb.Output, hb.Tags["trap_oid"])
	}
	if m, ok := metric(hb, "NET-SNMP-EXAMPLES-MIB::netSnmpExampleHeartbeatRate.0"); !ok || m.Value.Int() != 60 {
		t.Errorf("heartbeat rate: %+v", hb.Metrics)
	}
	if m, ok := metric(hb, "NET-SNMP-EXAMPLES-MIB::netSnmpExampleHeartbeatName.0"); !ok || m.Value.Str() != "beat" {
		t.Errorf("heartbeat name: %+v", hb.Metrics)
	}
}

// TestTrapHeartbeatFromMIBFile: the names come from the MIB file in
// /usr/share/snmp/mibs (libsnmp-base), not from the built-in table.
func TestTrapHeartbeatFromMIBFile(t *testing.T) {
	mibFile := DefaultMIBDir + "/NET-SNMP-EXAMPLES-MIB.txt"
	if _, err := os.Stat(mibFile); err != nil {
		testutil.MissingPeer(t, "%s (Debian libsnmp-base)", mibFile)
	}
	_, c, addr := startReceiver(t, ReceiverConfig{Communities: []string{"public"}, MIBDirs: []string{DefaultMIBDir}})
	out, code := netsnmp(t, "snmptrap", "-v2c", "-c", "public", addr, "", heartbeatOID, hbRateOID+".0", "i", "30")
	if code != 0 {
		t.Fatalf("snmptrap exit %d: %s", code, out)
	}
	r := c.wait(t, 1, 5*time.Second)[0]
	if r.Output != "NET-SNMP-EXAMPLES-MIB::netSnmpExampleHeartbeatNotification" || r.Tags["trap_oid"] != heartbeatOID {
		t.Errorf("output %q", r.Output)
	}
	if m, ok := metric(r, "NET-SNMP-EXAMPLES-MIB::netSnmpExampleHeartbeatRate.0"); !ok || m.Value.Int() != 30 {
		t.Errorf("metrics %+v", r.Metrics)
	}
	// Without the MIB directory the same trap is kept, numeric.
	_, c2, addr2 := startReceiver(t, ReceiverConfig{Communities: []string{"public"}, MIBDirs: []string{}})
	if out, code := netsnmp(t, "snmptrap", "-v2c", "-c", "public", addr2, "", heartbeatOID, hbRateOID+".0", "i", "30"); code != 0 {
		t.Fatalf("snmptrap exit %d: %s", code, out)
	}
	r = c2.wait(t, 1, 5*time.Second)[0]
	if r.Output != heartbeatOID || r.Tags["trap_name"] != heartbeatOID {
		t.Errorf("untranslatable trap: output %q", r.Output)
	}
	if m, ok := metric(r, hbRateOID+".0"); !ok || m.Value.Int() != 30 {
		t.Errorf("untranslatable varbind: %+v", r.Metrics)
	}
}

func TestTrapV3Users(t *testing.T) {
	rc, c, addr := startReceiver(t, ReceiverConfig{User: testUsers})
	cases := []struct {
		name string
		args []string
	}{
		{"ops", v3Args("ops", "authPriv", "SHA-256", "ops-auth-secret", "AES", "ops-priv-secret")},
		{"legacy", v3Args("legacy", "authPriv", "SHA", "legacy-auth-pw", "DES", "legacy-priv-pw")},
		{"md5", v3Args("md5", "authNoPriv", "MD5", "md5-auth-pass", "", "")},
		{"plain", v3Args("plain", "noAuthNoPriv", "", "", "", "")},
		{"pinned", append(v3Args("pinned", "authPriv", "SHA-512", "pinned-auth-pw", "AES-256", "pinned-priv-pw"), "-e", "0x8000000001020304")},
	}
	for i, tc := range cases {
		args := append(append(append([]string{}, tc.args...), addr, ""), linkDownArgs...)
		if out, code := netsnmp(t, "snmptrap", args...); code != 0 {
			t.Fatalf("%s: snmptrap exit %d: %s", tc.name, code, out)
		}
		r := c.wait(t, i+1, 5*time.Second)[i]
		assertLinkDown(t, r)
		if r.Tags["version"] != "3" || r.Tags["user"] != tc.name {
			t.Errorf("%s: tags %v", tc.name, r.Tags)
		}
	}
	if st := rc.Stats(); st.AuthFailures != 0 || st.Published != uint64(len(cases)) {
		t.Errorf("stats %+v", st)
	}
}

func TestTrapV3Refused(t *testing.T) {
	rc, c, addr := startReceiver(t, ReceiverConfig{User: testUsers, Communities: []string{"public"}})
	refused := []struct {
		name string
		args []string
		stat func(ReceiverStats) uint64
	}{
		{"wrong auth passphrase", v3Args("ops", "authPriv", "SHA-256", "wrong-auth-secret", "AES", "ops-priv-secret"), func(s ReceiverStats) uint64 { return s.AuthFailures }},
		{"wrong priv passphrase", v3Args("ops", "authPriv", "SHA-256", "ops-auth-secret", "AES", "wrong-priv-secret"), func(s ReceiverStats) uint64 { return s.AuthFailures }},
		{"wrong auth protocol", v3Args("ops", "authPriv", "SHA", "ops-auth-secret", "AES", "ops-priv-secret"), func(s ReceiverStats) uint64 { return s.AuthFailures }},
		{"lower security level", v3Args("ops", "authNoPriv", "SHA-256", "ops-auth-secret", "", ""), func(s ReceiverStats) uint64 { return s.AuthFailures }},
		{"no auth for an auth user", v3Args("ops", "noAuthNoPriv", "", "", "", ""), func(s ReceiverStats) uint64 { return s.AuthFailures }},
		{"unknown user", v3Args("nobody", "authPriv", "SHA-256", "ops-auth-secret", "AES", "ops-priv-secret"), func(s ReceiverStats) uint64 { return s.UnknownUsers }},
		{"pinned user from another engine", append(v3Args("pinned", "authPriv", "SHA-512", "pinned-auth-pw", "AES-256", "pinned-priv-pw"), "-e", "0x8000000001020305"), func(s ReceiverStats) uint64 { return s.AuthFailures }},
		{"wrong community", []string{"-v2c", "-c", "private"}, func(s ReceiverStats) uint64 { return s.BadCommunity }},
		{"wrong community v1", []string{"-v1", "-c", "private"}, func(s ReceiverStats) uint64 { return s.BadCommunity }},
	}
	for _, tc := range refused {
		before := tc.stat(rc.Stats())
		args := append(append([]string{}, tc.args...), addr)
		if tc.args[0] == "-v1" {
			args = append(args, "1.3.6.1.4.1.8072", "127.0.0.1", "2", "0", "")
		} else {
			args = append(append(args, ""), linkDownArgs...)
		}
		if out, code := netsnmp(t, "snmptrap", args...); code != 0 {
			t.Fatalf("%s: snmptrap exit %d: %s", tc.name, code, out)
		}
		deadline := time.Now().Add(5 * time.Second)
		for tc.stat(rc.Stats()) == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not counted; stats %+v", tc.name, rc.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A valid trap after all that still arrives, and it is the only result.
	if out, code := netsnmp(t, "snmptrap", append([]string{"-v2c", "-c", "public", addr, ""}, linkDownArgs...)...); code != 0 {
		t.Fatalf("snmptrap exit %d: %s", code, out)
	}
	c.wait(t, 1, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	if rs := c.results(); len(rs) != 1 || rs[0].Tags["community"] != "public" {
		t.Fatalf("refused traps were accepted: %d results", len(rs))
	}
}

func TestInforms(t *testing.T) {
	rc, c, addr := startReceiver(t, ReceiverConfig{User: testUsers, Communities: []string{"public"}})
	cases := []struct {
		name string
		args []string
	}{
		{"v2c", []string{"-v2c", "-c", "public"}},
		{"v3 ops", v3Args("ops", "authPriv", "SHA-256", "ops-auth-secret", "AES", "ops-priv-secret")},
		{"v3 legacy", v3Args("legacy", "authPriv", "SHA", "legacy-auth-pw", "DES", "legacy-priv-pw")},
		{"v3 md5", v3Args("md5", "authNoPriv", "MD5", "md5-auth-pass", "", "")},
		{"v3 plain", v3Args("plain", "noAuthNoPriv", "", "", "", "")},
	}
	for i, tc := range cases {
		args := append(append(append([]string{"-t", "2", "-r", "1"}, tc.args...), addr, ""), linkDownArgs...)
		out, code := netsnmp(t, "snmpinform", args...)
		if code != 0 {
			t.Fatalf("%s: snmpinform exit %d (not acknowledged): %s", tc.name, code, out)
		}
		r := c.wait(t, i+1, 5*time.Second)[i]
		assertLinkDown(t, r)
		if r.Tags["pdu"] != "inform" {
			t.Errorf("%s: tags %v", tc.name, r.Tags)
		}
	}
	st := rc.Stats()
	if st.Informs != uint64(len(cases)) || st.InformsAcked != uint64(len(cases)) {
		t.Errorf("stats %+v", st)
	}
	// Wrong credentials: not acknowledged, so snmpinform fails, and nothing
	// is stored.
	out, code := netsnmp(t, "snmpinform", append(append(append([]string{"-t", "1", "-r", "0"},
		v3Args("ops", "authPriv", "SHA-256", "wrong-auth-secret", "AES", "ops-priv-secret")...), addr, ""), linkDownArgs...)...)
	if code == 0 {
		t.Fatalf("snmpinform with a wrong passphrase exited 0: %s", out)
	}
	t.Logf("wrong passphrase: snmpinform exit %d: %s", code, strings.TrimSpace(out))
	if n := len(c.results()); n != len(cases) {
		t.Errorf("%d results after a refused inform, want %d", n, len(cases))
	}
	if rc.Stats().AuthFailures == 0 {
		t.Error("refused inform not counted")
	}
}

func TestAllowedSources(t *testing.T) {
	rc, c, addr := startReceiver(t, ReceiverConfig{Communities: []string{"public"}, AllowedSources: []string{"127.0.0.2/32", "192.0.2.0/24"}})
	// From 127.0.0.1: refused.
	if out, code := netsnmp(t, "snmptrap", append([]string{"-v2c", "-c", "public", addr, ""}, linkDownArgs...)...); code != 0 {
		t.Fatalf("snmptrap exit %d: %s", code, out)
	}
	// From 127.0.0.2 (net-snmp's clientaddr): accepted.
	if out, code := netsnmp(t, "snmptrap", append([]string{"--clientaddr=127.0.0.2", "-v2c", "-c", "public", addr, ""}, linkDownArgs...)...); code != 0 {
		t.Fatalf("snmptrap exit %d: %s", code, out)
	}
	r := c.wait(t, 1, 5*time.Second)[0]
	if r.Target != "127.0.0.2" {
		t.Errorf("target %q, want 127.0.0.2", r.Target)
	}
	deadline := time.Now().Add(5 * time.Second)
	for rc.Stats().SourceRefused != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("source refusal not counted: %+v", rc.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(c.results()); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
}

func TestStatusRules(t *testing.T) {
	_, c, addr := startReceiver(t, ReceiverConfig{Communities: []string{"public"}, Rule: []RuleConfig{
		{Trap: "IF-MIB::linkDown", Varbind: "ifOperStatus.*=up", Status: "OK"},
		{Trap: "linkDown", Varbind: "IF-MIB::ifIndex.*=1?", Status: "UNKNOWN"},
		{Trap: "IF-MIB::link*", Status: "CRITICAL"},
		{Trap: ".1.3.6.1.4.1.8072.2.3.0.*", Status: "OK"},
	}})
	send := func(args ...string) {
		t.Helper()
		if out, code := netsnmp(t, "snmptrap", append([]string{"-v2c", "-c", "public", addr, ""}, args...)...); code != 0 {
			t.Fatalf("snmptrap exit %d: %s", code, out)
		}
	}
	send(linkDownOID, ifIndexOID+".3", "i", "3", ifOperOID+".3", "i", "1")    // oper up: OK (enum label)
	send(linkDownOID, ifIndexOID+".12", "i", "12", ifOperOID+".12", "i", "2") // index 1?: UNKNOWN
	send(linkDownOID, ifIndexOID+".3", "i", "3", ifOperOID+".3", "i", "2")    // CRITICAL
	send(heartbeatOID, hbRateOID+".0", "i", "1")                              // numeric glob: OK
	send("1.3.6.1.4.1.99999.1", "1.3.6.1.4.1.99999.2.0", "s", "x")            // no rule: WARNING
	rs := c.wait(t, 5, 10*time.Second)
	want := []model.Status{model.OK, model.Unknown, model.Critical, model.OK, model.Warning}
	for i, r := range rs {
		if r.Status != want[i] {
			t.Errorf("trap %d (%s %s): status %v, want %v", i, r.Output, r.LongOutput, r.Status, want[i])
		}
	}
	if rs[4].Output != "1.3.6.1.4.1.99999.1" || rs[4].Tags["trap_oid"] != "1.3.6.1.4.1.99999.1" {
		t.Errorf("unknown trap kept as %q", rs[4].Output)
	}
	if m, ok := metric(rs[4], "1.3.6.1.4.1.99999.2.0"); !ok || m.Value.Str() != "x" {
		t.Errorf("unknown varbind: %+v", rs[4].Metrics)
	}
}

// TestInformEngine: a configured engine_id is the one informs go to; a
// sender that knows it skips discovery; a sender with stale boots/time
// gets an authenticated notInTimeWindow report, resynchronizes and is
// acknowledged; a stale engine ID is answered with unknownEngineID.
func TestInformEngine(t *testing.T) {
	const engine = "0x80001f8805aabbccdd0102"
	rc, c, addr := startReceiver(t, ReceiverConfig{User: testUsers, EngineID: engine})
	if got := fmt.Sprintf("0x%x", rc.EngineID()); got != engine {
		t.Fatalf("engine ID %s", got)
	}
	ops := v3Args("ops", "authPriv", "SHA-256", "ops-auth-secret", "AES", "ops-priv-secret")
	inform := func(extra ...string) (string, int) {
		return netsnmp(t, "snmpinform", append(append(append(append([]string{"-t", "1", "-r", "1"}, ops...), extra...), addr, ""), linkDownArgs...)...)
	}
	if out, code := inform("-e", engine); code != 0 {
		t.Fatalf("inform to the known engine: exit %d: %s", code, out)
	}
	if st := rc.Stats(); st.UnknownEngineIDs != 0 || st.InformsAcked != 1 {
		t.Errorf("discovery happened although the engine was known: %+v", st)
	}
	// Boots 1, time 1: far outside the window. (Without -Z net-snmp
	// sends 0/0 and resynchronizes the same way.)
	before := rc.Stats().NotInTimeWindow
	if out, code := inform("-e", engine, "-Z", "1,1"); code != 0 {
		t.Fatalf("inform with stale boots/time: exit %d: %s", code, out)
	}
	if st := rc.Stats(); st.NotInTimeWindow <= before || st.InformsAcked != 2 {
		t.Errorf("time window: %+v", st)
	}
	c.wait(t, 2, 5*time.Second)
	// A stale engine ID: refused with a report, not stored.
	out, code := inform("-e", "0x80001f8805aabbccdd0103")
	t.Logf("stale engine ID: exit %d: %s", code, strings.TrimSpace(out))
	if st := rc.Stats(); st.UnknownEngineIDs == 0 {
		t.Errorf("stale engine ID not counted: %+v", st)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(c.results()); n != 2+boolToInt(code == 0) {
		t.Errorf("%d results", n)
	}
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestInformRetransmission: the same inform twice (a lost response) is
// acknowledged twice and stored once.
func TestInformRetransmission(t *testing.T) {
	rc, c, addr := startReceiver(t, ReceiverConfig{Communities: []string{"public"}})
	conn := dialUDP(t, addr)
	pkt := readPacket(t, "v2c_inform.bin")
	buf := make([]byte, 2048)
	for i := range 2 {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		resp, err := (&gosnmp.GoSNMP{}).SnmpDecodePacket(buf[:n])
		if err != nil || resp.PDUType != gosnmp.GetResponse || resp.Community != "public" {
			t.Fatalf("response %d: %+v %v", i, resp, err)
		}
	}
	c.wait(t, 1, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	if n := len(c.results()); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
	if st := rc.Stats(); st.InformsAcked != 2 || st.InformDuplicates != 1 {
		t.Errorf("stats %+v", st)
	}
}
