package snmp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
	"golang.org/x/net/ipv4"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/testutil"
)

// The trap benchmarks compare recon's receiver with net-snmp's snmptrapd
// under the same generator: a separate process (this test binary with
// RECON_SNMP_TRAPGEN set) that sends pre-encoded v2c traps over UDP with
// sendmmsg, at a fixed rate or as fast as it can.

const genEnv = "RECON_SNMP_TRAPGEN"

// runTrapGenerator is the generator process: RECON_SNMP_TRAPGEN is
// "addr rate duration [gosnmp]" (rate 0 = unthrottled). It prints
// "sent N". With "gosnmp" it sends with gosnmp's SendTrap, one datagram
// per call, as the spec's flood figure is defined; otherwise pre-encoded
// datagrams in sendmmsg batches, which is faster.
func runTrapGenerator(spec string) error {
	f := strings.Fields(spec)
	if len(f) == 4 && f[3] == "gosnmp" {
		return gosnmpFlood(f[0], f[2])
	}
	if len(f) != 3 {
		return fmt.Errorf("%s=%q: want \"addr rate duration [gosnmp]\"", genEnv, spec)
	}
	rate, err := strconv.Atoi(f[1])
	if err != nil {
		return err
	}
	dur, err := time.ParseDuration(f[2])
	if err != nil {
		return err
	}
	ua, err := net.ResolveUDPAddr("udp4", f[0])
	if err != nil {
		return err
	}
	conn, err := net.DialUDP("udp4", nil, ua)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetWriteBuffer(8 << 20)
	pc := ipv4.NewPacketConn(conn)
	const batch = 64
	pkts := make([][]byte, 1024)
	for i := range pkts {
		pkts[i] = v2cTrap("public", i)
	}
	msgs := make([]ipv4.Message, batch)
	sent, next := 0, 0
	start := time.Now()
	for {
		el := time.Since(start)
		if el >= dur {
			break
		}
		n := batch
		if rate > 0 {
			due := int(float64(rate) * el.Seconds())
			n = min(due-sent, batch)
			if n <= 0 {
				time.Sleep(200 * time.Microsecond)
				continue
			}
		}
		for i := range n {
			msgs[i].Buffers = [][]byte{pkts[next%len(pkts)]}
			next++
		}
		for off := 0; off < n; {
			w, err := pc.WriteBatch(msgs[off:n], 0)
			if err != nil {
				return err
			}
			off += w
		}
		sent += n
	}
	fmt.Printf("sent %d\n", sent)
	return nil
}

// gosnmpFlood sends v2c linkDown traps with gosnmp's SendTrap for dur.
func gosnmpFlood(addr, dur string) error {
	d, err := time.ParseDuration(dur)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return err
	}
	g := &gosnmp.GoSNMP{Target: host, Port: uint16(p), Version: gosnmp.Version2c, Community: "public", Timeout: time.Second, MaxOids: gosnmp.MaxOids}
	if err := g.Connect(); err != nil {
		return err
	}
	defer g.Conn.Close()
	trap := gosnmp.SnmpTrap{Variables: []gosnmp.SnmpPDU{
		{Name: "." + oidSysUpTime, Type: gosnmp.TimeTicks, Value: uint32(1)},
		{Name: "." + oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: "." + linkDownOID},
		{Name: "." + ifIndexOID + ".1", Type: gosnmp.Integer, Value: 1},
	}}
	sent := 0
	for start := time.Now(); time.Since(start) < d; {
		for range 100 {
			if _, err := g.SendTrap(trap); err != nil {
				return err
			}
			sent++
		}
	}
	fmt.Printf("sent %d\n", sent)
	return nil
}

// generate runs the generator process and returns how many traps it sent.
func generate(b *testing.B, addr string, rate int, dur time.Duration, mode string) int {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s %s", genEnv, addr, rate, dur, mode))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("generator: %v: %s", err, out)
	}
	var n int
	if _, err := fmt.Sscanf(string(out), "sent %d", &n); err != nil {
		b.Fatalf("generator output %q", out)
	}
	return n
}

// trapSink is a receiver under test: counted delivers how many traps it
// has processed so far.
type trapSink struct {
	addr    string
	counted func() int
}

// settle waits until the count reaches want or stops moving.
func settle(s trapSink, start, want int) int {
	last, stable := s.counted(), 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		n := s.counted()
		if n-start >= want {
			return n - start
		}
		if n == last {
			if stable++; stable >= 6 {
				break
			}
		} else {
			stable = 0
		}
		last = n
	}
	return s.counted() - start
}

// trial sends at rate for dur and returns traps sent and received.
func trial(b *testing.B, s trapSink, rate int, dur time.Duration, mode string) (sent, got int) {
	start := s.counted()
	sent = generate(b, s.addr, rate, dur, mode)
	return sent, settle(s, start, sent)
}

// losslessRate finds the highest rate with no loss: doubling from 5,000/s
// until a trial loses traps, then bisecting to within 5%. A rate the
// generator cannot reach ends the search at what it reached.
func losslessRate(b *testing.B, s trapSink, dur time.Duration) float64 {
	lo, hi := 0.0, 0.0
	for rate := 5000.0; rate <= 1e6; rate *= 2 {
		sent, got := trial(b, s, int(rate), dur, "")
		achieved := float64(sent) / dur.Seconds()
		b.Logf("rate %.0f/s: sent %d (%.0f/s), received %d", rate, sent, achieved, got)
		if got < sent {
			hi = rate
			break
		}
		lo = achieved
		if achieved < 0.9*rate {
			return lo // the generator's limit, not the receiver's
		}
	}
	for hi > 1000 && hi-lo > 0.05*hi {
		mid := (lo + hi) / 2
		sent, got := trial(b, s, int(mid), dur, "")
		b.Logf("rate %.0f/s: sent %d, received %d", mid, sent, got)
		if got < sent {
			hi = mid
		} else {
			lo = mid
		}
	}
	return lo
}

func benchDuration() time.Duration {
	if testing.Short() {
		return time.Second
	}
	return 2 * time.Second
}

// reconSink starts a receiver whose publish only counts (the pipeline's
// own throughput is measured by its benchmarks).
func reconSink(b *testing.B) trapSink {
	var n atomic.Int64
	r, err := NewReceiver(ReceiverConfig{Listen: "127.0.0.1:0", Communities: []string{"public"}},
		func(_ context.Context, rs ...model.Result) error { n.Add(int64(len(rs))); return nil },
		slog.New(slog.DiscardHandler)) // log lines would break the benchmark output lines

	if err != nil {
		b.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		st := r.Stats()
		b.Logf("recon stats: received %d published %d dropped_queue_full %d kernel_drops %d", st.Received, st.Published, st.DroppedQueueFull, st.KernelDrops)
		r.Close()
	})
	return trapSink{addr: r.Addr().String(), counted: func() int { return int(n.Load()) }}
}

// snmptrapdSink starts snmptrapd tuned as the spec measures it (-n -m ”,
// a minimal format), counting one "x" line per trap in its log file.
func snmptrapdSink(b *testing.B) trapSink {
	bin := testutil.RequireBinary(b, "/usr/sbin/snmptrapd")
	dir := b.TempDir()
	conf := writeFile(b, dir, "snmptrapd.conf", "disableAuthorization yes\n")
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	logFile := filepath.Join(dir, "traps.log")
	cmd := exec.Command(bin, "-f", "-Lf", logFile, "-n", "-m", "", "-C", "-c", conf, "-F", `x\n`, "udp:"+addr)
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+dir, "SNMPCONFPATH="+dir)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Count the "x" lines appended since the last call (snmptrapd
	// flushes its log per line; a partial last line waits for the next).
	var off int64
	var lines int
	counted := func() int {
		f, err := os.Open(logFile)
		if err != nil {
			return lines
		}
		defer f.Close()
		data, _ := io.ReadAll(io.NewSectionReader(f, off, 1<<40))
		end := bytes.LastIndexByte(data, '\n')
		if end < 0 {
			return lines
		}
		for _, l := range bytes.Split(data[:end], []byte("\n")) {
			if string(l) == "x" {
				lines++
			}
		}
		off += int64(end + 1)
		return lines
	}
	// Ready once a probe trap is logged.
	probe := dialUDPB(b, addr)
	for deadline := time.Now().Add(10 * time.Second); counted() == 0; {
		if time.Now().After(deadline) {
			b.Fatal("snmptrapd did not log a probe trap")
		}
		probe.Write(v2cTrap("public", 0))
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let the probes drain
	return trapSink{addr: addr, counted: counted}
}

func dialUDPB(b *testing.B, addr string) *net.UDPConn {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// BenchmarkTrapsLossless: the highest v2c trap rate received with no
// loss, by recon and by snmptrapd, same generator, same run. Run with
// -benchtime 1x (each iteration is a whole search).
func BenchmarkTrapsLossless(b *testing.B) {
	for _, rx := range []struct {
		name string
		sink func(*testing.B) trapSink
	}{{"recon", reconSink}, {"snmptrapd", snmptrapdSink}} {
		b.Run(rx.name, func(b *testing.B) {
			s := rx.sink(b)
			var best float64
			for range b.N {
				best = max(best, losslessRate(b, s, benchDuration()))
			}
			b.ReportMetric(best, "traps/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkTrapsFlood: an unthrottled generator; the share of traps
// delivered. "gosnmp" floods as the spec defines it (gosnmp's SendTrap in
// a loop, ≈100,000/s), "sendmmsg" with batches of pre-encoded datagrams,
// which sends faster still.
func BenchmarkTrapsFlood(b *testing.B) {
	for _, gen := range []struct{ name, mode string }{{"gosnmp", "gosnmp"}, {"sendmmsg", ""}} {
		b.Run(gen.name, func(b *testing.B) {
			for _, rx := range []struct {
				name string
				sink func(*testing.B) trapSink
			}{{"recon", reconSink}, {"snmptrapd", snmptrapdSink}} {
				b.Run(rx.name, func(b *testing.B) {
					s := rx.sink(b)
					var sent, got int
					for range b.N {
						sn, g := trial(b, s, 0, benchDuration(), gen.mode)
						sent, got = sent+sn, got+g
					}
					b.Logf("sent %d, received %d", sent, got)
					b.ReportMetric(100*float64(got)/float64(sent), "delivered_%")
					b.ReportMetric(float64(sent)/benchDuration().Seconds()/float64(b.N), "sent/s")
					b.ReportMetric(0, "ns/op")
				})
			}
		})
	}
}

// BenchmarkDecodeV2c: the worker's cost per trap (decode, translate,
// build the result).
func BenchmarkDecodeV2c(b *testing.B) {
	d, bld, _ := testDecoder(b)
	pkt := v2cTrap("public", 3)
	from := netip.MustParseAddrPort("192.0.2.1:162")
	b.ReportAllocs()
	for b.Loop() {
		o := d.decode(pkt, from, time.Now())
		if o.ev == nil {
			b.Fatal(o.err)
		}
		bld.result(o.ev, time.Now(), from)
	}
}

// BenchmarkDecodeV3AuthPriv: the same for a SHA-256/AES v3 trap.
func BenchmarkDecodeV3AuthPriv(b *testing.B) {
	d, bld, _ := testDecoder(b)
	pkt := readPacket(b, "v3_ops_authpriv.bin")
	from := netip.MustParseAddrPort("192.0.2.1:162")
	b.ReportAllocs()
	for b.Loop() {
		o := d.decode(pkt, from, time.Now())
		if o.ev == nil {
			b.Fatal(o.err)
		}
		bld.result(o.ev, time.Now(), from)
	}
}
