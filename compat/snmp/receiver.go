package snmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/reconmon/recon/agent/model"
)

// Receiver is the SNMP trap receiver, a source: it pushes a result per
// trap or inform into the pipeline.
//
// One goroutine reads datagrams (recvmmsg batches, a large SO_RCVBUF) into
// a bounded queue and does nothing else; when the queue is full the
// datagram is dropped and counted, so the socket is drained at the rate
// the kernel delivers whatever the decoders or the pipeline do. Worker
// goroutines authenticate, decode, translate and publish in batches, and
// acknowledge informs once published.
type Receiver struct {
	cfg     ReceiverConfig
	publish func(ctx context.Context, rs ...model.Result) error
	log     *slog.Logger
	dec     *decoder
	b       *builder
	st      counters
	workers int
	informs *recentInforms
	logs    [nReasons + 3]rateLimit

	queue  chan packet
	qbytes atomic.Int64

	mu         sync.Mutex
	state      int // 0 new, 1 running, 2 closed
	conn       *net.UDPConn
	rcvbuf     int
	dropCount  bool          // the kernel reports its drops (SO_RXQ_OVFL)
	kernDrops  atomic.Uint64 // the kernel's count
	ctx        context.Context
	cancel     context.CancelFunc
	readerDone chan struct{}
	wg         sync.WaitGroup
}

// packet is one datagram waiting for a worker.
type packet struct {
	data []byte
	from netip.AddrPort
	at   time.Time
}

// ReceiverStats are the receiver's counters, exported on /metrics.
type ReceiverStats struct {
	Received         uint64 // datagrams read from the socket
	Decoded          uint64 // traps and informs authenticated and decoded
	Published        uint64 // results the pipeline accepted
	DroppedQueueFull uint64 // datagrams dropped because the queue was full (packets or bytes)
	AuthFailures     uint64 // v3 wrong digest, undecryptable, wrong security level or engine
	UnknownUsers     uint64 // v3 user not configured
	UnknownEngineIDs uint64 // v3 engine discovery requests and informs for a stale engine ID
	NotInTimeWindow  uint64 // v3 informs outside the 150 s window
	BadCommunity     uint64 // v1/v2c community not allowed
	SourceRefused    uint64 // source not in allowed_sources
	Malformed        uint64 // not an SNMP message gosnmp can decode
	Unsupported      uint64 // SNMP messages that are not traps or informs
	Informs          uint64 // informs decoded
	InformsAcked     uint64 // responses sent for published informs
	InformDuplicates uint64 // retransmitted informs answered again, not republished
	ReportsSent      uint64 // v3 report PDUs sent (discovery, errors)
	PublishErrors    uint64 // results the pipeline did not accept (shutdown)
	SendErrors       uint64 // responses that could not be sent
	ReadErrors       uint64 // socket read errors
	KernelDrops      uint64 // datagrams the kernel dropped because the socket buffer was full (Linux)
	QueueDepth       int    // datagrams waiting for a worker now
	QueueBytes       int64  // their bytes
	ReceiveBuffer    int    // socket receive buffer the kernel granted
}

const (
	// readBatch datagrams per recvmmsg; maxDatagram is the largest UDP
	// payload.
	readBatch   = 32
	maxDatagram = 65535
	// publishBatch bounds the results a worker publishes at once.
	publishBatch = 256
	// closeGrace is how long Close lets workers publish what is queued.
	closeGrace = 5 * time.Second
	logEvery   = 10 * time.Second
)

// extra rate-limited log kinds after the refusal reasons
const (
	logQueueFull = int(nReasons) + iota
	logPublish
	logRead
)

// NewReceiver validates cfg, loads the MIBs and returns a receiver that
// is not yet listening. publish delivers results (Pipeline.Publish).
func NewReceiver(cfg ReceiverConfig, publish func(ctx context.Context, rs ...model.Result) error, log *slog.Logger) (*Receiver, error) {
	if publish == nil {
		return nil, errors.New("snmp: NewReceiver needs a publish function")
	}
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("snmp_trap %s: %w", cfg.Name, err)
	}
	allowed, err := ParsePrefixes(cfg.AllowedSources)
	if err != nil {
		return nil, fmt.Errorf("snmp_trap %s: %w", cfg.Name, err)
	}
	var users []*usmUser
	seen := map[string]bool{}
	for i := range cfg.User {
		u, err := cfg.User[i].validate()
		if err != nil {
			return nil, fmt.Errorf("snmp_trap %s: %w", cfg.Name, err)
		}
		key := u.name + "\x00" + u.engineID
		if seen[key] {
			return nil, fmt.Errorf("snmp_trap %s: user %s defined twice for the same engine_id", cfg.Name, u.name)
		}
		seen[key] = true
		users = append(users, u)
	}
	engineID := defaultEngineID(cfg.Listen)
	if cfg.EngineID != "" {
		if engineID, err = ParseEngineID(cfg.EngineID); err != nil {
			return nil, fmt.Errorf("snmp_trap %s: %w", cfg.Name, err)
		}
	}
	rules, err := compileRules(cfg.Rule)
	if err != nil {
		return nil, fmt.Errorf("snmp_trap %s: %w", cfg.Name, err)
	}
	mib, err := LoadMIB(cfg.MIBDirs, log)
	if err != nil {
		return nil, fmt.Errorf("snmp_trap %s: %w", cfg.Name, err)
	}
	r := &Receiver{cfg: cfg, publish: publish, log: log.With("source", "snmp_trap", "name", cfg.Name),
		workers: cfg.Workers, informs: newRecentInforms(4096, 2*time.Minute)}
	if r.workers == 0 {
		r.workers = runtime.GOMAXPROCS(0)
	}
	r.dec = newDecoder(cfg.Communities, allowed, users, engineID, &r.st)
	r.b = &builder{mib: mib, rules: rules, varbindRules: hasVarbindRule(rules), check: cfg.Name, checkID: model.CheckID(cfg.Agent, cfg.Name), agent: cfg.Agent, tags: cfg.Tags}
	return r, nil
}

// MIB returns the receiver's translation table.
func (r *Receiver) MIB() *MIB { return r.b.mib }

// CheckID is the ID of the receiver's pseudo-check.
func (r *Receiver) CheckID() string { return r.b.checkID.String() }

// EngineID is the receiver's SNMPv3 engine ID (raw octets).
func (r *Receiver) EngineID() string { return r.dec.eng.Load().id }

// Start binds the socket and starts the reader and workers. The receiver
// runs until Close; ctx only bounds binding.
func (r *Receiver) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != 0 {
		return errors.New("snmp: receiver already started or closed")
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, listenNetwork(r.cfg.Listen), r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("snmp_trap %s: listen %s: %w", r.cfg.Name, r.cfg.Listen, err)
	}
	conn := pc.(*net.UDPConn)
	r.dropCount = enableDropCount(conn)
	got, err := setReadBuffer(conn, r.cfg.ReadBuffer)
	if err != nil || got < r.cfg.ReadBuffer {
		r.log.Warn("snmp_trap: socket receive buffer smaller than read_buffer; bursts may overflow it (raise net.core.rmem_max or run with CAP_NET_ADMIN)",
			"requested", r.cfg.ReadBuffer, "granted", got, "err", err)
	}
	now := time.Now()
	old := r.dec.eng.Load()
	r.dec.eng.Store(&engine{id: old.id, boots: bootsNow(now), start: now})
	r.conn, r.rcvbuf, r.state = conn, got, 1
	r.queue = make(chan packet, r.cfg.QueueSize)
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.readerDone = make(chan struct{})
	var br batchReader
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok && ua.IP.To4() != nil {
		br = ipv4.NewPacketConn(conn)
	} else {
		br = ipv6.NewPacketConn(conn)
	}
	for range r.workers {
		r.wg.Add(1)
		go r.work()
	}
	go r.read(br)
	if len(r.cfg.Communities) == 0 && len(r.cfg.User) == 0 {
		r.log.Warn("snmp_trap has neither communities nor users: every trap will be refused")
	}
	r.log.Info("snmp_trap listening", "addr", conn.LocalAddr().String(), "workers", r.workers, "queue", r.cfg.QueueSize,
		"rcvbuf", got, "mib_modules", len(r.b.mib.Modules), "users", len(r.cfg.User), "engine_id", fmt.Sprintf("%x", old.id))
	return nil
}

// Addr is the bound address (nil before Start).
func (r *Receiver) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil
	}
	return r.conn.LocalAddr()
}

// Close stops reading, lets the workers publish what is queued (for at
// most closeGrace) and returns. Anything not published by then is counted
// in PublishErrors.
func (r *Receiver) Close() error {
	r.mu.Lock()
	prev := r.state
	r.state = 2
	r.mu.Unlock()
	if prev != 1 {
		return nil
	}
	err := r.conn.Close()
	<-r.readerDone
	close(r.queue)
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeGrace):
		r.log.Warn("snmp_trap: the pipeline did not take the queued traps in time; they are counted as publish errors",
			"queued", len(r.queue))
		r.cancel()
		<-done
	}
	r.cancel()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Stats returns the counters.
func (r *Receiver) Stats() ReceiverStats {
	s := &r.st
	st := ReceiverStats{
		Received: s.received.Load(), Decoded: s.decoded.Load(), Published: s.published.Load(),
		DroppedQueueFull: s.droppedQueueFull.Load(), AuthFailures: s.authFailures.Load(), UnknownUsers: s.unknownUsers.Load(),
		UnknownEngineIDs: s.unknownEngine.Load(), NotInTimeWindow: s.notInTimeWindow.Load(), BadCommunity: s.badCommunity.Load(),
		SourceRefused: s.sourceRefused.Load(), Malformed: s.malformed.Load(), Unsupported: s.unsupported.Load(),
		Informs: s.informs.Load(), InformsAcked: s.informsAcked.Load(), InformDuplicates: s.informDuplicates.Load(),
		ReportsSent: s.reportsSent.Load(), PublishErrors: s.publishErrors.Load(), SendErrors: s.sendErrors.Load(),
		ReadErrors: s.readErrors.Load(), QueueBytes: r.qbytes.Load(), KernelDrops: r.kernDrops.Load(),
	}
	r.mu.Lock()
	st.ReceiveBuffer = r.rcvbuf
	if r.queue != nil {
		st.QueueDepth = len(r.queue)
	}
	r.mu.Unlock()
	return st
}

// Counters reports the stats for /metrics (recon_source_events_total).
func (r *Receiver) Counters() map[string]uint64 {
	s := r.Stats()
	return map[string]uint64{
		"received": s.Received, "decoded": s.Decoded, "published": s.Published, "dropped_queue_full": s.DroppedQueueFull,
		"auth_failures": s.AuthFailures, "unknown_users": s.UnknownUsers, "unknown_engine_ids": s.UnknownEngineIDs,
		"not_in_time_window": s.NotInTimeWindow, "bad_community": s.BadCommunity, "source_refused": s.SourceRefused,
		"malformed": s.Malformed, "unsupported": s.Unsupported, "informs": s.Informs, "informs_acked": s.InformsAcked,
		"inform_duplicates": s.InformDuplicates, "reports_sent": s.ReportsSent, "publish_errors": s.PublishErrors,
		"send_errors": s.SendErrors, "read_errors": s.ReadErrors, "kernel_drops": s.KernelDrops, "queue_depth": uint64(s.QueueDepth),
		"queue_bytes": uint64(s.QueueBytes), "receive_buffer_bytes": uint64(s.ReceiveBuffer),
	}
}

type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

// read is the socket reader: read a batch, stamp, enqueue or drop.
func (r *Receiver) read(br batchReader) {
	defer close(r.readerDone)
	msgs := make([]ipv4.Message, readBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, maxDatagram)}
		if r.dropCount {
			msgs[i].OOB = make([]byte, oobSize)
		}
	}
	var last time.Time
	limit := r.cfg.QueueBytes
	for {
		n, err := br.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.st.readErrors.Add(1)
			r.logLimited(logRead, "snmp_trap: socket read error", "err", err)
			time.Sleep(time.Millisecond) // a persistent error must not spin
			continue
		}
		now := time.Now()
		if r.dropCount && n > 0 {
			// The counter is cumulative: the batch's last datagram has
			// the latest value.
			if c, ok := dropCount(msgs[n-1].OOB[:msgs[n-1].NN]); ok {
				r.kernDrops.Store(uint64(c))
			}
		}
		for i := range n {
			m := &msgs[i]
			r.st.received.Add(1)
			// Receive times are unique per receiver at microsecond
			// resolution: stores key results by check and time, and
			// Postgres keeps microseconds.
			at := now.Truncate(time.Microsecond)
			if !at.After(last) {
				at = last.Add(time.Microsecond)
			}
			last = at
			size := int64(m.N)
			if r.qbytes.Load()+size > limit {
				r.dropped(len(r.queue))
				continue
			}
			var from netip.AddrPort
			if ua, ok := m.Addr.(*net.UDPAddr); ok {
				from = ua.AddrPort()
				from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			}
			p := packet{data: append([]byte(nil), m.Buffers[0][:m.N]...), from: from, at: at}
			r.qbytes.Add(size)
			select {
			case r.queue <- p:
			default:
				r.qbytes.Add(-size)
				r.dropped(len(r.queue))
			}
		}
	}
}

func (r *Receiver) dropped(depth int) {
	r.st.droppedQueueFull.Add(1)
	r.logLimited(logQueueFull, "snmp_trap: queue full, trap dropped (decoders or pipeline too slow)",
		"queue_depth", depth, "queue_bytes", r.qbytes.Load(), "dropped_total", r.st.droppedQueueFull.Load())
}

// pendingAck is an inform response to send once the inform is published.
type pendingAck struct {
	to    netip.AddrPort
	reply []byte
	key   string
}

// work decodes and publishes batches of queued datagrams.
func (r *Receiver) work() {
	defer r.wg.Done()
	batch := make([]packet, 0, publishBatch)
	var acks []pendingAck
	for {
		p, ok := <-r.queue
		if !ok {
			return
		}
		batch = append(batch[:0], p)
	fill:
		for len(batch) < publishBatch {
			select {
			case p, ok := <-r.queue:
				if !ok {
					break fill
				}
				batch = append(batch, p)
			default:
				break fill
			}
		}
		results := make([]model.Result, 0, len(batch))
		acks = acks[:0]
		now := time.Now()
		for i := range batch {
			p := &batch[i]
			r.qbytes.Add(-int64(len(p.data)))
			o := r.decode(p, now)
			if o.ev == nil {
				r.refused(p, o)
				continue
			}
			r.st.decoded.Add(1)
			if o.ev.inform {
				r.st.informs.Add(1)
				key := informKey(p.from, o.ev)
				if r.informs.seen(key, now) {
					// A retransmission of an inform already published: its
					// response was lost or late. Answer, do not store twice.
					r.st.informDuplicates.Add(1)
					if r.send(o.reply, p.from) {
						r.st.informsAcked.Add(1)
					}
					continue
				}
				acks = append(acks, pendingAck{p.from, o.reply, key})
			}
			results = append(results, r.b.result(o.ev, p.at, p.from))
		}
		clear(batch)
		if len(results) == 0 {
			continue
		}
		if err := r.publish(r.ctx, results...); err != nil {
			// Informs stay unacknowledged, so their senders retry.
			r.st.publishErrors.Add(uint64(len(results)))
			r.logLimited(logPublish, "snmp_trap: pipeline did not accept traps", "count", len(results), "err", err)
			continue
		}
		r.st.published.Add(uint64(len(results)))
		for _, a := range acks {
			r.informs.add(a.key, now)
			if r.send(a.reply, a.to) {
				r.st.informsAcked.Add(1)
			}
		}
	}
}

// decode runs the decoder, turning a panic (a bug in a parser, never
// expected: FuzzDecodePacket) into a counted malformed packet.
func (r *Receiver) decode(p *packet, now time.Time) (o outcome) {
	defer func() {
		if v := recover(); v != nil {
			o = refuse(rMalformed, "decoder panic: %v", v)
		}
	}()
	return r.dec.decode(p.data, p.from, now)
}

// refused counts (the decoder counts the v3 USM refusals itself, because
// reports carry those counters), answers with a report if there is one,
// and logs, rate-limited.
func (r *Receiver) refused(p *packet, o outcome) {
	switch o.reason {
	case rSource:
		r.st.sourceRefused.Add(1)
	case rMalformed:
		r.st.malformed.Add(1)
	case rUnsupported:
		r.st.unsupported.Add(1)
	case rCommunity:
		r.st.badCommunity.Add(1)
	}
	if o.reply != nil && r.send(o.reply, p.from) {
		r.st.reportsSent.Add(1)
	}
	if o.reason == rDiscovery {
		return
	}
	r.logLimited(int(o.reason), "snmp_trap: packet refused", "reason", reasonNames[o.reason], "from", p.from.String(), "err", o.err)
}

func (r *Receiver) send(b []byte, to netip.AddrPort) bool {
	if len(b) == 0 || !to.IsValid() {
		return false
	}
	if _, err := r.conn.WriteToUDPAddrPort(b, to); err != nil {
		r.st.sendErrors.Add(1)
		return false
	}
	return true
}

func informKey(from netip.AddrPort, ev *trapEvent) string {
	return from.String() + "|" + ev.version + "|" + ev.user + "|" + ev.community + "|" +
		strconv.FormatUint(uint64(ev.pkt.RequestID), 10) + "|" + strconv.FormatUint(uint64(ev.pkt.MsgID), 10)
}

// rateLimit lets one log line through per logEvery and counts the rest.
type rateLimit struct {
	last       atomic.Int64
	suppressed atomic.Uint64
}

func (r *Receiver) logLimited(kind int, msg string, args ...any) {
	l := &r.logs[kind]
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(logEvery) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	if n := l.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed_since_last_log", n)
	}
	r.log.Warn(msg, args...)
}

// recentInforms remembers published informs for a while, so that a
// retransmission is answered without being stored twice.
type recentInforms struct {
	mu   sync.Mutex
	ttl  time.Duration
	keys map[string]time.Time
	ring []string
	next int
}

func newRecentInforms(n int, ttl time.Duration) *recentInforms {
	return &recentInforms{ttl: ttl, keys: make(map[string]time.Time, n), ring: make([]string, n)}
}

func (c *recentInforms) seen(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.keys[key]
	return ok && now.Sub(t) < c.ttl
}

func (c *recentInforms) add(key string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.ring[c.next]; old != "" {
		delete(c.keys, old)
	}
	c.ring[c.next] = key
	c.next = (c.next + 1) % len(c.ring)
	c.keys[key] = now
}

// listenNetwork picks udp4/udp6 for literal addresses so that 0.0.0.0
// means IPv4 only, as it does for snmptrapd.
func listenNetwork(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "udp"
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() {
			return "udp4"
		}
		return "udp6"
	}
	return "udp"
}
