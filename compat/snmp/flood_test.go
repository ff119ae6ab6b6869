package snmp

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/testutil"
)

// v2cTrap encodes a v2c linkDown trap for ifIndex idx.
func v2cTrap(community string, idx int) []byte {
	p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: community, PDUType: gosnmp.SNMPv2Trap, RequestID: uint32(idx),
		Variables: []gosnmp.SnmpPDU{
			{Name: "." + oidSysUpTime, Type: gosnmp.TimeTicks, Value: uint32(idx)},
			{Name: "." + oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: "." + linkDownOID},
			{Name: "." + ifIndexOID + ".1", Type: gosnmp.Integer, Value: idx},
		}}
	b, err := p.MarshalMsg()
	if err != nil {
		panic(err) // constant input
	}
	return b
}

func dialUDP(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestGarbageFlood: a flood of random datagrams (up to 64 KiB) keeps the
// queue within its bounds and memory bounded, and valid traps sent during
// and after the flood arrive.
func TestGarbageFlood(t *testing.T) {
	const queueBytes = 4 << 20
	rc, c, addr := startReceiver(t, ReceiverConfig{Communities: []string{"public"}, QueueSize: 4096, QueueBytes: queueBytes})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	dur := 3 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	var maxQueue int64
	var sentGarbage [2]int
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := dialUDP(t, addr)
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			buf := make([]byte, 65000)
			for ctx.Err() == nil {
				n := rng.IntN(1400) + 1
				if rng.IntN(50) == 0 {
					n = 60000 + rng.IntN(5000) // some near the UDP maximum
				}
				for i := range buf[:n] {
					buf[i] = byte(rng.Uint32())
				}
				if rng.IntN(4) == 0 {
					buf[0] = 0x30 // looks like a BER sequence
				}
				if _, err := conn.Write(buf[:n]); err == nil {
					sentGarbage[w]++
				}
			}
		}()
	}
	// Valid traps during the flood; some may be dropped with the garbage
	// when the queue is full, and that is counted.
	valid := dialUDP(t, addr)
	during := 0
	for i := 0; ctx.Err() == nil; i++ {
		valid.Write(v2cTrap("public", i))
		during++
		if q := rc.Stats().QueueBytes; q > maxQueue {
			maxQueue = q
		}
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := rc.Stats()
	t.Logf("garbage sent %d, valid during %d; stats %+v; max queue bytes %d; heap %d -> %d MiB",
		sentGarbage[0]+sentGarbage[1], during, st, maxQueue, before.HeapInuse>>20, after.HeapInuse>>20)
	if maxQueue > queueBytes {
		t.Errorf("queue held %d bytes, limit %d", maxQueue, queueBytes)
	}
	// Heap after the flood: the queue bound plus the reader's buffers,
	// nothing that grows with the number of packets.
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 32<<20 {
		t.Errorf("heap grew by %d MiB during the flood", grown>>20)
	}
	if st.Malformed == 0 || st.Received < uint64(during) {
		t.Errorf("garbage not counted as malformed: %+v", st)
	}
	if got := len(c.results()); got == 0 {
		t.Error("no valid trap arrived during the flood")
	}
	// After the flood every valid trap arrives.
	n0 := len(c.results())
	for i := range 100 {
		valid.Write(v2cTrap("public", 100000+i))
		time.Sleep(time.Millisecond)
	}
	c.wait(t, n0+100, 10*time.Second)
	for _, r := range c.results() {
		if r.Output != "IF-MIB::linkDown" {
			t.Fatalf("garbage became a result: %+v", r)
		}
	}
}

// blockingPublisher blocks until released, like a pipeline whose spools
// are full.
type blockingPublisher struct {
	collector
	release chan struct{}
}

func (b *blockingPublisher) publish(ctx context.Context, rs ...model.Result) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.collector.publish(ctx, rs...)
}

// TestQueueFullDrops: with the pipeline blocked, the reader keeps
// draining the socket, drops what does not fit in the queue and counts
// it; once the pipeline takes results again, traps flow.
func TestQueueFullDrops(t *testing.T) {
	bp := &blockingPublisher{release: make(chan struct{})}
	r, err := NewReceiver(ReceiverConfig{Listen: "127.0.0.1:0", Communities: []string{"public"}, QueueSize: 100, Workers: 1}, bp.publish, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	conn := dialUDP(t, r.Addr().String())
	const sent = 2000
	for i := range sent {
		conn.Write(v2cTrap("public", i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := r.Stats()
		if st.Received == sent {
			// publishBatch taken by the worker + queue full + dropped.
			if st.DroppedQueueFull == 0 || st.DroppedQueueFull > sent-100 || st.QueueDepth != 100 {
				t.Errorf("stats %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader stalled behind a blocked pipeline: %+v", r.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(bp.release)
	st := r.Stats()
	want := int(sent - st.DroppedQueueFull)
	bp.wait(t, want, 10*time.Second)
	conn.Write(v2cTrap("public", 99999))
	bp.wait(t, want+1, 10*time.Second)
	if st := r.Stats(); st.Published != uint64(want+1) || st.Received != st.Published+st.DroppedQueueFull {
		t.Errorf("accounting: %+v", st)
	}
}

// TestCloseDrainsQueue: traps queued when Close is called are published,
// and a pipeline that never takes them does not hang Close beyond its
// grace period; they are counted.
func TestCloseDrainsQueue(t *testing.T) {
	c := &collector{}
	r, err := NewReceiver(ReceiverConfig{Listen: "127.0.0.1:0", Communities: []string{"public"}}, c.publish, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn := dialUDP(t, r.Addr().String())
	for i := range 500 {
		conn.Write(v2cTrap("public", i))
	}
	for r.Stats().Received < 500 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(c.results()); n != 500 {
		t.Errorf("%d of 500 published after Close", n)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := r.Start(context.Background()); err == nil {
		t.Error("Start after Close succeeded")
	}

	// A publish that fails (the pipeline shutting down): counted.
	c2 := &collector{err: errors.New("pipeline closed")}
	r2, err := NewReceiver(ReceiverConfig{Listen: "127.0.0.1:0", Communities: []string{"public"}}, c2.publish, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	dialUDP(t, r2.Addr().String()).Write(v2cTrap("public", 1))
	for r2.Stats().PublishErrors == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	r2.Close()
}

// TestUniqueTimes: results of one receiver never share a timestamp at
// microsecond resolution, even in a burst (stores key by check and time).
func TestUniqueTimes(t *testing.T) {
	rc, c, addr := startReceiver(t, ReceiverConfig{Communities: []string{"public"}})
	conn := dialUDP(t, addr)
	for i := range 3000 {
		conn.Write(v2cTrap("public", i))
	}
	rs := c.wait(t, 3000-int(rc.Stats().DroppedQueueFull), 10*time.Second)
	seen := map[int64]bool{}
	for _, r := range rs {
		us := r.Time.UnixMicro()
		if seen[us] {
			t.Fatalf("two results at %v", r.Time)
		}
		seen[us] = true
	}
}

func TestListenIPv6(t *testing.T) {
	ln, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		testutil.MissingPeer(t, "IPv6 loopback: %v", err)
	}
	ln.Close()
	_, c, addr := startReceiver(t, ReceiverConfig{Listen: "[::1]:0", Communities: []string{"public"}})
	if out, code := netsnmp(t, "snmptrap", append([]string{"-v2c", "-c", "public", "udp6:" + addr, ""}, linkDownArgs...)...); code != 0 {
		t.Fatalf("snmptrap exit %d: %s", code, out)
	}
	r := c.wait(t, 1, 5*time.Second)[0]
	if r.Target != "::1" || r.Output != "IF-MIB::linkDown" {
		t.Errorf("target %q output %q", r.Target, r.Output)
	}
}
