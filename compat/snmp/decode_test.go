package snmp

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

var testSource = netip.MustParseAddrPort("192.0.2.10:40000")

// testDecoder is configured like the integration tests' receivers.
func testDecoder(t testing.TB, allowed ...string) (*decoder, *builder, *counters) {
	t.Helper()
	var users []*usmUser
	for i := range testUsers {
		u, err := testUsers[i].validate()
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	prefixes, err := ParsePrefixes(allowed)
	if err != nil {
		t.Fatal(err)
	}
	st := &counters{}
	d := newDecoder([]string{"public", "v1comm"}, prefixes, users, "\x80\x00\x1f\x88\x05recon-test", st)
	mib, err := LoadMIB(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, &builder{mib: mib, check: "snmptrap", checkID: model.CheckID("", "snmptrap")}, st
}

func readPacket(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(packetDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeCapturedPackets decodes datagrams captured from the net-snmp
// tools (testdata/snmp/packets, regenerated with -snmp.capture).
func TestDecodeCapturedPackets(t *testing.T) {
	cases := []struct {
		file   string
		reason reason
		output string
		tags   map[string]string
		reply  bool
	}{
		{"v1_linkdown.bin", accepted, "IF-MIB::linkDown", map[string]string{"version": "1", "agent_addr": "192.0.2.7", "trap_oid": linkDownOID}, false},
		{"v1_heartbeat.bin", accepted, heartbeatOID, map[string]string{"version": "1", "enterprise": "1.3.6.1.4.1.8072.2.3"}, false},
		{"v2c_linkdown.bin", accepted, "IF-MIB::linkDown", map[string]string{"version": "2c", "community": "public", "pdu": "trap"}, false},
		{"v2c_inform.bin", accepted, "IF-MIB::linkDown", map[string]string{"pdu": "inform"}, true},
		{"v2c_octets.bin", accepted, "1.3.6.1.4.1.99999.0.1", nil, false},
		{"v2c_wrong_community.bin", rCommunity, "", nil, false},
		{"v2c_get.bin", rUnsupported, "", nil, false},
		{"v3_ops_authpriv.bin", accepted, "IF-MIB::linkDown", map[string]string{"version": "3", "user": "ops"}, false},
		{"v3_legacy_authpriv.bin", accepted, "IF-MIB::linkDown", map[string]string{"user": "legacy"}, false},
		{"v3_md5_authnopriv.bin", accepted, "IF-MIB::linkDown", map[string]string{"user": "md5"}, false},
		{"v3_plain.bin", accepted, "IF-MIB::linkDown", map[string]string{"user": "plain"}, false},
		{"v3_pinned.bin", accepted, "IF-MIB::linkDown", map[string]string{"user": "pinned"}, false},
		{"v3_pinned_other_engine.bin", rAuth, "", nil, false},
		{"v3_wrong_auth.bin", rAuth, "", nil, false},
		{"v3_wrong_priv.bin", rAuth, "", nil, false},
		{"v3_unknown_user.bin", rUnknownUser, "", nil, false},
		{"v3_lower_level.bin", rAuth, "", nil, false},
		{"v3_discovery.bin", rDiscovery, "", nil, true},
	}
	d, b, _ := testDecoder(t)
	for _, tc := range cases {
		o := d.decode(readPacket(t, tc.file), testSource, time.Now())
		if o.reason != tc.reason {
			t.Errorf("%s: reason %q (%v), want %q", tc.file, reasonNames[o.reason], o.err, reasonNames[tc.reason])
			continue
		}
		if (o.reply != nil) != tc.reply {
			t.Errorf("%s: reply %v, want %v", tc.file, o.reply != nil, tc.reply)
		}
		if tc.reason != accepted {
			if o.ev != nil {
				t.Errorf("%s: refused but an event was returned", tc.file)
			}
			continue
		}
		r := b.result(o.ev, time.Now(), testSource)
		if r.Output != tc.output {
			t.Errorf("%s: output %q, want %q", tc.file, r.Output, tc.output)
		}
		for k, v := range tc.tags {
			if r.Tags[k] != v {
				t.Errorf("%s: tag %s=%q, want %q", tc.file, k, r.Tags[k], v)
			}
		}
		if r.Target != "192.0.2.10" {
			t.Errorf("%s: target %q", tc.file, r.Target)
		}
	}
}

// TestVarbindValues: every SNMP type becomes a metric of the right kind.
func TestVarbindValues(t *testing.T) {
	d, b, _ := testDecoder(t)
	o := d.decode(readPacket(t, "v2c_octets.bin"), testSource, time.Now())
	if o.ev == nil {
		t.Fatal(o.err)
	}
	r := b.result(o.ev, time.Now(), testSource)
	want := map[string]model.Value{
		"IF-MIB::ifPhysAddress.3": model.String("00:11:22:aa:bb:cc"), // PhysAddress hint 1x:
		"1.3.6.1.4.1.99999.1.1":   model.String("0x00ff10"),          // binary, no hint
		"1.3.6.1.4.1.99999.1.2":   model.String("héllo wörld"),
		"1.3.6.1.4.1.99999.1.3":   model.Uint(4294967295), // Counter32
		"1.3.6.1.4.1.99999.1.4":   model.String("192.0.2.1"),
		"1.3.6.1.4.1.99999.1.5":   model.String("IF-MIB::ifOperStatus"),
		"1.3.6.1.4.1.99999.1.6":   model.Uint(100), // TimeTicks
		"1.3.6.1.4.1.99999.1.7":   model.Uint(7),   // Gauge32 (u)
		"1.3.6.1.4.1.99999.1.8":   model.Int(-5),
		"SNMPv2-MIB::sysUpTime.0": model.Uint(1),
	}
	for name, v := range want {
		m, ok := metric(r, name)
		if !ok {
			t.Errorf("%s missing; metrics %v", name, r.Metrics)
			continue
		}
		if !m.Value.Equal(v) {
			t.Errorf("%s = %v (%v), want %v (%v)", name, m.Value, m.Value.Kind(), v, v.Kind())
		}
	}
	if len(r.Metrics) != len(want) {
		t.Errorf("%d metrics, want %d: %v", len(r.Metrics), len(want), r.Metrics)
	}
}

func TestDecodeSourceRefused(t *testing.T) {
	d, _, _ := testDecoder(t, "10.0.0.0/8", "2001:db8::/32")
	pkt := readPacket(t, "v2c_linkdown.bin")
	if o := d.decode(pkt, testSource, time.Now()); o.reason != rSource {
		t.Errorf("192.0.2.10: %v", reasonNames[o.reason])
	}
	for _, src := range []string{"10.1.2.3:162", "[2001:db8::1]:162", "[::ffff:10.0.0.1]:5000"} {
		if o := d.decode(pkt, netip.MustParseAddrPort(src), time.Now()); o.reason != accepted {
			t.Errorf("%s: %v %v", src, reasonNames[o.reason], o.err)
		}
	}
}

// TestDecodeBadPackets: malformed input of every kind is refused, never
// accepted, never a panic.
func TestDecodeBadPackets(t *testing.T) {
	d, _, _ := testDecoder(t)
	v2c := readPacket(t, "v2c_linkdown.bin")
	v3 := readPacket(t, "v3_ops_authpriv.bin")
	flip := func(b []byte, i int) []byte { c := clone(b); c[i] ^= 0xff; return c }
	cases := map[string][]byte{
		"empty":                 {},
		"one byte":              {0x30},
		"not a sequence":        {0x04, 0x01, 0x00},
		"length past the end":   {0x30, 0x10, 0x02, 0x01, 0x01},
		"indefinite length":     {0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00},
		"huge length":           {0x30, 0x84, 0xff, 0xff, 0xff, 0xff},
		"trailing bytes":        append(clone(v2c), 0x00),
		"version 2":             {0x30, 0x05, 0x02, 0x01, 0x02, 0x04, 0x00},
		"no community":          {0x30, 0x03, 0x02, 0x01, 0x01},
		"community, no pdu":     {0x30, 0x0b, 0x02, 0x01, 0x01, 0x04, 0x06, 'p', 'u', 'b', 'l', 'i', 'c'},
		"truncated v2c":         v2c[:len(v2c)-5],
		"truncated v3":          v3[:len(v3)-5],
		"v3 tampered payload":   flip(v3, len(v3)-3),
		"v3 tampered user":      flip(v3, 40),
		"v3 flags priv no auth": {0x30, 0x12, 0x02, 0x01, 0x03, 0x30, 0x0d, 0x02, 0x01, 0x01, 0x02, 0x02, 0x05, 0xdc, 0x04, 0x01, 0x02, 0x02, 0x01, 0x03},
		"random":                []byte("\x30\x29\x02\x01\x01\x04\x06public\xa7\x1c\x02\x04garbage garbage garbage"),
	}
	for name, b := range cases {
		o := d.decode(b, testSource, time.Now())
		if o.ev != nil || o.reason == accepted {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPeekHeader(t *testing.T) {
	h, err := peekHeader(readPacket(t, "v3_ops_authpriv.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if h.version != 3 || h.user != "ops" || h.secModel != 3 || h.flags&3 != 3 || len(h.engineID) < 5 {
		t.Errorf("%+v", h)
	}
	h, err = peekHeader(readPacket(t, "v2c_linkdown.bin"))
	if err != nil || h.version != 1 || h.community != "public" {
		t.Errorf("%+v %v", h, err)
	}
	for _, bad := range [][]byte{nil, {0x30}, {0x30, 0x00}, {0x30, 0x01, 0x02}, {0x1f, 0x01, 0x00}, {0x30, 0x02, 0x02, 0x06}} {
		if _, err := peekHeader(bad); err == nil {
			t.Errorf("% x: no error", bad)
		}
	}
}

func TestInformDuplicateKey(t *testing.T) {
	c := newRecentInforms(2, time.Minute)
	now := time.Now()
	c.add("a", now)
	c.add("b", now)
	if !c.seen("a", now) || !c.seen("b", now) || c.seen("c", now) {
		t.Fatal("seen")
	}
	c.add("c", now) // evicts a
	if c.seen("a", now) || !c.seen("c", now) {
		t.Error("ring eviction")
	}
	if c.seen("b", now.Add(2*time.Minute)) {
		t.Error("expired entry seen")
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true}, {"*", "anything", true}, {"IF-MIB::link*", "IF-MIB::linkDown", true},
		{"link?own", "linkDown", true}, {"link?own", "linkDDown", false}, {"*Down", "IF-MIB::linkUp", false},
		{"Gi0/*", "Gi0/1", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false}, {"", "", true}, {"", "x", false},
		{"1.3.6.*.5", "1.3.6.1.4.5", true},
	} {
		if got := glob(c.pat, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v", c.pat, c.s, got)
		}
	}
}

func TestFormatOctets(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		hint string
		want string
	}{
		{[]byte("eth0"), "", "eth0"},
		{[]byte("eth0\x00\x00"), "", "eth0"},
		{[]byte{0, 0x1a, 0xff}, "", "0x001aff"},
		{[]byte{0xc3, 0x28}, "255a", "0xc328"}, // invalid UTF-8 despite a text hint
		{[]byte{0, 0x11, 0x22, 0xaa, 0xbb, 0xcc}, "1x:", "00:11:22:aa:bb:cc"},
		{[]byte{7, 0xe6, 11, 24, 17, 5, 30, 0, '+', 0, 0}, "2d-1d-1d,1d:1d:1d.1d,1a1d:1d", "2022-11-24,17:5:30.0,+0:0"},
		{[]byte{}, "1x:", ""},
		{[]byte("line\tone\nline two"), "", "line\tone\nline two"},
		{[]byte("bell\x07"), "", "0x62656c6c07"},
	} {
		if got := formatOctets(c.b, c.hint); got != c.want {
			t.Errorf("formatOctets(% x, %q) = %q, want %q", c.b, c.hint, got, c.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	pub := func(ReceiverConfig) {}
	_ = pub
	for name, cfg := range map[string]ReceiverConfig{
		"bad listen":         {Listen: "nonsense"},
		"bad cidr":           {AllowedSources: []string{"10.0.0.0/33"}},
		"bad source":         {AllowedSources: []string{"host.example"}},
		"bad auth proto":     {User: []UserConfig{{Name: "u", AuthProtocol: "SHA3", AuthPassphrase: "12345678"}}},
		"short passphrase":   {User: []UserConfig{{Name: "u", AuthProtocol: "SHA", AuthPassphrase: "short"}}},
		"priv without auth":  {User: []UserConfig{{Name: "u", PrivProtocol: "AES", PrivPassphrase: "12345678"}}},
		"priv pass no proto": {User: []UserConfig{{Name: "u", AuthProtocol: "SHA", AuthPassphrase: "12345678", PrivPassphrase: "12345678"}}},
		"bad priv proto":     {User: []UserConfig{{Name: "u", AuthProtocol: "SHA", AuthPassphrase: "12345678", PrivProtocol: "3DES", PrivPassphrase: "12345678"}}},
		"no user name":       {User: []UserConfig{{AuthProtocol: "SHA", AuthPassphrase: "12345678"}}},
		"duplicate user":     {User: []UserConfig{{Name: "u"}, {Name: "u"}}},
		"bad engine id":      {EngineID: "zz"},
		"short engine id":    {EngineID: "0x0102"},
		"bad user engine id": {User: []UserConfig{{Name: "u", EngineID: "0x01"}}},
		"bad rule status":    {Rule: []RuleConfig{{Trap: "*", Status: "FINE"}}},
		"empty rule status":  {Rule: []RuleConfig{{Trap: "*"}}},
		"bad rule varbind":   {Rule: []RuleConfig{{Trap: "*", Varbind: "ifIndex", Status: "OK"}}},
		"negative queue":     {QueueSize: -1},
		"missing mib dir":    {MIBDirs: []string{"/nonexistent/mibs"}},
		"empty community":    {Communities: []string{""}},
	} {
		_, err := NewReceiver(cfg, (&collector{}).publish, nil)
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "snmp") {
			t.Errorf("%s: error without context: %v", name, err)
		}
	}
	if _, err := NewReceiver(ReceiverConfig{}, nil, nil); err == nil {
		t.Error("nil publish accepted")
	}
}

// FuzzDecodePacket feeds arbitrary datagrams through the whole packet
// path: header peek, community/USM checks, gosnmp decoding, v3
// authentication and decryption, translation and result building.
func FuzzDecodePacket(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(packetDir, "*.bin"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x03})
	d, b, _ := testDecoder(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		o := d.decode(data, testSource, time.Now())
		if o.ev != nil {
			r := b.result(o.ev, time.Now(), testSource)
			if r.Type != TrapType || r.Tags["version"] == "" {
				t.Fatalf("result %+v", r)
			}
		}
	})
}
