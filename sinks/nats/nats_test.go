package nats

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

// natsServer is an embedded NATS server with JetStream that can be
// restarted on the same port and store.
type natsServer struct {
	t    testing.TB
	dir  string
	port int
	srv  *server.Server
}

func startNATS(t testing.TB) *natsServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	n := &natsServer{t: t, dir: t.TempDir(), port: port}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *natsServer) start() {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: n.port, JetStream: true, StoreDir: n.dir, NoLog: true, NoSigs: true})
	if err != nil {
		n.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		n.t.Fatal("nats-server not ready")
	}
	n.srv = s
}

func (n *natsServer) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newSink(t testing.TB, url, agent string) *Sink {
	s, err := Type{}.New(&sink.Spec{Name: "nats", Settings: &Settings{Connection: Connection{URL: url}}},
		sink.Env{Agent: agent, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*Sink)
}

func results(agent, check string, from, n int) []model.Result {
	rs := make([]model.Result, n)
	for i := range rs {
		rs[i] = model.Result{CheckID: model.CheckID(agent, check), Check: check, Agent: agent, Status: model.OK,
			Time: time.Unix(1700000000, int64(from+i)), Metrics: []model.Metric{{Name: "seq", Value: model.Int(int64(from + i))}}}
	}
	return rs
}

// memStore is an idempotent writer keyed like the real stores.
type memStore struct {
	mu     sync.Mutex
	rows   map[string]int // key → copies written
	fail   int
	writes int
}

func (m *memStore) WriteBatch(_ context.Context, b []model.Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail > 0 {
		m.fail--
		return fmt.Errorf("store down")
	}
	m.writes++
	for i := range b {
		m.rows[b[i].Key()]++
	}
	return nil
}

func (m *memStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

func streamMsgs(t *testing.T, url, stream string) uint64 {
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(context.Background())
	return info.State.Msgs
}

func TestPublishDeduplicatesAndSubjects(t *testing.T) {
	ns := startNATS(t)
	s := newSink(t, ns.url(), "web.1")
	batch := results("web.1", "disk /", 0, 50)
	if err := s.WriteBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	// A retried batch (the pipeline retries after an error) is dropped by
	// JetStream's message-ID de-duplication.
	if err := s.WriteBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, ns.url(), "RECON"); n != 50 {
		t.Errorf("stream holds %d messages, want 50", n)
	}
	if got := s.Subject(&batch[0]); got != "recon.results.web_1.disk_/" {
		t.Errorf("subject %q", got)
	}
}

func TestIngestSharesWorkAndParksPoison(t *testing.T) {
	ns := startNATS(t)
	s := newSink(t, ns.url(), "a1")
	st := &memStore{rows: map[string]int{}, fail: 2}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ings []*Ingester
	for i := 0; i < 2; i++ {
		in, err := NewIngester(IngestConfig{Connection: Connection{URL: ns.url()}, Batch: 20, MaxWait: 0}, st, quiet())
		if err != nil {
			t.Fatal(err)
		}
		ings = append(ings, in)
		go in.Run(ctx)
	}
	for i := 0; i < 10; i++ {
		if err := s.WriteBatch(ctx, results("a1", "c", i*100, 100)); err != nil {
			t.Fatal(err)
		}
	}
	// A poison message: right subject, garbage body.
	nc, _ := natsgo.Connect(ns.url())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	bad := natsgo.NewMsg("recon.results.a1.c")
	bad.Header.Set(EncodingHeader, Encoding)
	bad.Data = []byte{1, 2, 3}
	if _, err := js.PublishMsg(ctx, bad); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for st.count() < 1000 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := st.count(); n != 1000 {
		t.Fatalf("stored %d of 1000", n)
	}
	for k, c := range st.rows {
		if c != 1 && st.writes > 0 {
			// Duplicates can only come from a redelivery; the real
			// stores drop them, but nothing here redelivers.
			t.Errorf("%s written %d times", k, c)
			break
		}
	}
	a, b := ings[0].Stats(), ings[1].Stats()
	if a.Ingested == 0 || b.Ingested == 0 {
		t.Errorf("both ingesters must work: %+v %+v", a, b)
	}
	if a.WriteErrors+b.WriteErrors != 2 {
		t.Errorf("store failures not retried: %+v %+v", a, b)
	}
	for time.Now().Before(deadline) && a.Poison+b.Poison == 0 {
		time.Sleep(50 * time.Millisecond)
		a, b = ings[0].Stats(), ings[1].Stats()
	}
	if a.Poison+b.Poison != 1 {
		t.Fatalf("poison message not parked: %+v %+v", a, b)
	}
	dl, err := js.Stream(ctx, "RECON_DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	m, err := dl.GetLastMsgForSubject(ctx, "recon.deadletter")
	if err != nil || m.Header.Get("Recon-Error") == "" || string(m.Data) != "\x01\x02\x03" {
		t.Errorf("dead letter: %v %+v", err, m)
	}
	// The work queue is empty: everything acknowledged.
	deadline = time.Now().Add(10 * time.Second)
	for streamMsgs(t, ns.url(), "RECON") != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := streamMsgs(t, ns.url(), "RECON"); n != 0 {
		t.Errorf("%d messages left in the work queue", n)
	}
}

// TestNATSRestart: publishing fails while NATS is down (the pipeline keeps
// the batch in the spool and retries) and works again after the restart,
// with the stream's contents intact.
func TestNATSRestart(t *testing.T) {
	ns := startNATS(t)
	s := newSink(t, ns.url(), "a1")
	if err := s.WriteBatch(context.Background(), results("a1", "c", 0, 10)); err != nil {
		t.Fatal(err)
	}
	ns.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := s.WriteBatch(ctx, results("a1", "c", 10, 10))
	cancel()
	if err == nil {
		t.Fatal("publish succeeded with NATS down")
	}
	ns.start()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err = s.WriteBatch(context.Background(), results("a1", "c", 10, 10))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
	if n := streamMsgs(t, ns.url(), "RECON"); n != 20 {
		t.Errorf("stream holds %d, want 20", n)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Connection{{Stream: "a.b"}, {SubjectPrefix: "x.>"}, {Replicas: 9},
		{URL: "ftp://x"}, {URL: "nats://a:4222,"}, {URL: "http://u:hunter2@x"}} {
		_, err := (Type{}).New(&sink.Spec{Settings: &Settings{Connection: c}}, sink.Env{})
		if err == nil {
			t.Errorf("%+v accepted", c)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%+v: the error shows the password: %v", c, err)
		}
	}
	for _, u := range []string{"nats://a:4222", "tls://a:4222, nats://b:4222", "a:4222", "WSS://a"} {
		if _, err := (Type{}).New(&sink.Spec{Settings: &Settings{Connection: Connection{URL: u}}}, sink.Env{}); err != nil {
			t.Errorf("%q refused: %v", u, err)
		}
	}
}
