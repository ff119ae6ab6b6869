package snmp

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// -snmp.capture regenerates testdata/snmp/packets: datagrams the real
// net-snmp tools send, used as decoder table tests and fuzz seeds.
var capture = flag.Bool("snmp.capture", false, "regenerate testdata/snmp/packets from the net-snmp tools")

const packetDir = "../../testdata/snmp/packets"

// capturedPackets names each captured datagram and the tool arguments
// that produce it (the address and trap arguments are added).
var capturedPackets = []struct {
	file string
	tool string
	args []string
}{
	{"v1_linkdown.bin", "snmptrap", []string{"-v1", "-c", "v1comm", "%ADDR%", "1.3.6.1.4.1.8072.3.2.10", "192.0.2.7", "2", "0", "4242", ifIndexOID + ".3", "i", "3", ifOperOID + ".3", "i", "2"}},
	{"v1_heartbeat.bin", "snmptrap", []string{"-v1", "-c", "v1comm", "%ADDR%", "1.3.6.1.4.1.8072.2.3", "192.0.2.8", "6", "1", "77", hbRateOID + ".0", "i", "60", hbNameOID + ".0", "s", "beat"}},
	{"v2c_linkdown.bin", "snmptrap", append([]string{"-v2c", "-c", "public", "%ADDR%", "12345"}, linkDownArgs...)},
	{"v2c_wrong_community.bin", "snmptrap", append([]string{"-v2c", "-c", "private", "%ADDR%", "12345"}, linkDownArgs...)},
	{"v2c_inform.bin", "snmpinform", append([]string{"-v2c", "-c", "public", "-t", "0.2", "-r", "0", "%ADDR%", "12345"}, linkDownArgs...)},
	{"v2c_octets.bin", "snmptrap", []string{"-v2c", "-c", "public", "%ADDR%", "1", "1.3.6.1.4.1.99999.0.1",
		"1.3.6.1.2.1.2.2.1.6.3", "x", "001122AABBCC", "1.3.6.1.4.1.99999.1.1", "x", "00FF10", "1.3.6.1.4.1.99999.1.2", "s", "héllo wörld",
		"1.3.6.1.4.1.99999.1.3", "c", "4294967295", "1.3.6.1.4.1.99999.1.4", "a", "192.0.2.1", "1.3.6.1.4.1.99999.1.5", "o", "1.3.6.1.2.1.2.2.1.8",
		"1.3.6.1.4.1.99999.1.6", "t", "100", "1.3.6.1.4.1.99999.1.7", "u", "7", "1.3.6.1.4.1.99999.1.8", "i", "-5"}},
	{"v3_ops_authpriv.bin", "snmptrap", append(append(v3Args("ops", "authPriv", "SHA-256", "ops-auth-secret", "AES", "ops-priv-secret"), "%ADDR%", ""), linkDownArgs...)},
	{"v3_legacy_authpriv.bin", "snmptrap", append(append(v3Args("legacy", "authPriv", "SHA", "legacy-auth-pw", "DES", "legacy-priv-pw"), "%ADDR%", ""), linkDownArgs...)},
	{"v3_md5_authnopriv.bin", "snmptrap", append(append(v3Args("md5", "authNoPriv", "MD5", "md5-auth-pass", "", ""), "%ADDR%", ""), linkDownArgs...)},
	{"v3_plain.bin", "snmptrap", append(append(v3Args("plain", "noAuthNoPriv", "", "", "", ""), "%ADDR%", ""), linkDownArgs...)},
	{"v3_pinned.bin", "snmptrap", append(append(v3Args("pinned", "authPriv", "SHA-512", "pinned-auth-pw", "AES-256", "pinned-priv-pw"), "-e", "0x8000000001020304", "%ADDR%", ""), linkDownArgs...)},
	{"v3_pinned_other_engine.bin", "snmptrap", append(append(v3Args("pinned", "authPriv", "SHA-512", "pinned-auth-pw", "AES-256", "pinned-priv-pw"), "-e", "0x8000000001020305", "%ADDR%", ""), linkDownArgs...)},
	{"v3_wrong_auth.bin", "snmptrap", append(append(v3Args("ops", "authPriv", "SHA-256", "wrong-auth-secret", "AES", "ops-priv-secret"), "%ADDR%", ""), linkDownArgs...)},
	{"v3_wrong_priv.bin", "snmptrap", append(append(v3Args("ops", "authPriv", "SHA-256", "ops-auth-secret", "AES", "wrong-priv-secret"), "%ADDR%", ""), linkDownArgs...)},
	{"v3_unknown_user.bin", "snmptrap", append(append(v3Args("nobody", "authPriv", "SHA-256", "ops-auth-secret", "AES", "ops-priv-secret"), "%ADDR%", ""), linkDownArgs...)},
	{"v3_lower_level.bin", "snmptrap", append(append(v3Args("ops", "authNoPriv", "SHA-256", "ops-auth-secret", "", ""), "%ADDR%", ""), linkDownArgs...)},
	{"v3_discovery.bin", "snmpinform", append(append(append([]string{"-t", "0.2", "-r", "0"}, v3Args("ops", "authPriv", "SHA-256", "ops-auth-secret", "AES", "ops-priv-secret")...), "%ADDR%", ""), linkDownArgs...)},
	{"v2c_get.bin", "snmpget", []string{"-v2c", "-c", "public", "-t", "0.2", "-r", "0", "%ADDR%", "1.3.6.1.2.1.1.3.0"}},
}

// capturePackets writes the packets; TestMain runs it for -snmp.capture.
func capturePackets() error {
	if err := os.MkdirAll(packetDir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "snmp-capture")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, c := range capturedPackets {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		args := append([]string{}, c.args...)
		for i, a := range args {
			if a == "%ADDR%" {
				args[i] = pc.LocalAddr().String()
			}
		}
		got := make(chan []byte, 1)
		go func() {
			buf := make([]byte, 65536)
			pc.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				got <- nil
				return
			}
			got <- append([]byte(nil), buf[:n]...)
		}()
		// Informs and gets time out: only the first datagram matters.
		if _, _, err := runNetSNMP(tmp, c.tool, args...); err != nil {
			return err
		}
		b := <-got
		pc.Close()
		if b == nil {
			return fmt.Errorf("%s: nothing received", c.file)
		}
		if err := os.WriteFile(filepath.Join(packetDir, c.file), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
