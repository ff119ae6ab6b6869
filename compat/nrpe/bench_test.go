package nrpe

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/reconmon/recon/internal/testutil"
)

// query sends one plain v4 request and reads the response.
func query(addr, command string) (Packet, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return Packet{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	b, err := Packet{Version: Version4, Type: TypeQuery, Buffer: command}.Marshal()
	if err != nil {
		return Packet{}, err
	}
	if _, err := c.Write(b); err != nil {
		return Packet{}, err
	}
	return ReadPacket(c)
}

func benchServer(b *testing.B, addr string) {
	b.SetParallelism(2) // 4 concurrent clients on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := query(addr, "check_dummy")
			if err != nil {
				b.Error(err)
				return
			}
			if p.ResultCode != 0 || p.Buffer != "OK: ok" {
				b.Errorf("response %+v", p)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}

// BenchmarkNRPERequests compares requests/s served by recon's NRPE server
// and by the real nrpe daemon (nagios-nrpe-server) for the same command,
// same client, same run.
func BenchmarkNRPERequests(b *testing.B) {
	dummy := testutil.RequireBinary(b, plugins+"/check_dummy")
	b.Run("recon", func(b *testing.B) {
		s, _ := startServer(b, Config{Listen: "127.0.0.1:0", TLS: "off",
			Command: map[string]string{"check_dummy": dummy + " 0 ok"}, MaxConnections: 1024})
		defer s.Close()
		benchServer(b, s.Addr().String())
	})
	b.Run("nrpe", func(b *testing.B) {
		bin := testutil.RequireBinary(b, "/usr/sbin/nrpe")
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cfg := filepath.Join(b.TempDir(), "nrpe.cfg")
		os.WriteFile(cfg, []byte("server_port="+strconv.Itoa(port)+"\nserver_address=127.0.0.1\nallowed_hosts=127.0.0.1\n"+
			"nrpe_user=nobody\nnrpe_group=nogroup\ncommand_timeout=60\ncommand[check_dummy]="+dummy+" 0 ok\n"), 0o644)
		cmd := exec.Command(bin, "-c", cfg, "-f", "-n")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		addr := "127.0.0.1:" + strconv.Itoa(port)
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := query(addr, "check_dummy"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("nrpe did not come up")
			}
			time.Sleep(20 * time.Millisecond)
		}
		benchServer(b, addr)
	})
}
