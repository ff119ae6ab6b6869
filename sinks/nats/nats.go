// Package nats is the scale-out transport: the nats sink publishes results
// to a NATS JetStream stream (subjects recon.results.<agent>.<check>) and
// Ingester is the durable consumer behind `recon ingest` that writes them
// into the Postgres trend store. Reconnoiter's noitd→stratcon split, on a
// real distributed engine.
//
// Encoding (documented, versioned): the message body is the result in
// recon's binary result encoding (agent/model codec, whose first byte is
// the encoding version, currently 1); the header Recon-Encoding names it
// ("result/1"). The message ID (Nats-Msg-Id) is the result's identity
// (check id / time in ns), so JetStream drops duplicates of a retried
// publish within its duplicate window, and the store's unique keys drop
// any later one.
package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

// EncodingHeader names the body's encoding.
const (
	EncodingHeader = "Recon-Encoding"
	Encoding       = "result/1"
)

// Connection settings shared by the sink and the ingester.
type Connection struct {
	// URL is one or more NATS server URLs, comma separated (default nats://127.0.0.1:4222).
	URL string `toml:"url"`
	// Stream is the JetStream stream name (default RECON).
	Stream string `toml:"stream"`
	// SubjectPrefix of result subjects: PREFIX.<agent>.<check> (default recon.results).
	SubjectPrefix string `toml:"subject_prefix"`
	// Token authenticates with a token.
	Token string `toml:"token"`
	// Username authenticates with user and password.
	Username string `toml:"username"`
	// Password of username.
	Password string `toml:"password"`
	// Creds is a NATS credentials file (JWT + NKey).
	Creds string `toml:"creds"`
	// TLSCA verifies the server certificate with this CA bundle.
	TLSCA string `toml:"tls_ca"`
	// CreateStream creates or updates the stream with the settings below (default true).
	CreateStream *bool `toml:"create_stream"`
	// Replicas of the stream in a NATS cluster (default 1; use 3 in production clusters).
	Replicas int `toml:"replicas"`
	// MaxAge drops stream messages older than this even if not ingested (default 0: keep until ingested).
	MaxAge config.Duration `toml:"max_age"`
	// MaxBytes bounds the stream (default 0: unlimited); publishers get errors and spool when full.
	MaxBytes int64 `toml:"max_bytes"`
	// DuplicateWindow for message-ID de-duplication (default 2m).
	DuplicateWindow config.Duration `toml:"duplicate_window"`
	// Timeout for connecting and for publish acknowledgements (default 10s).
	Timeout config.Duration `toml:"timeout"`
}

func (c *Connection) defaults() {
	if c.URL == "" {
		c.URL = natsgo.DefaultURL
	}
	if c.Stream == "" {
		c.Stream = "RECON"
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "recon.results"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = config.Duration(2 * time.Minute)
	}
	if c.Timeout == 0 {
		c.Timeout = config.Duration(10 * time.Second)
	}
}

func (c *Connection) validate() error {
	// nats.go takes nats://, tls://, ws://, wss:// or a bare host:port;
	// anything else would only fail at connect, retried forever.
	for _, u := range strings.Split(c.URL, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			return errors.New("url: an empty entry in the list of servers")
		}
		if scheme, _, ok := strings.Cut(u, "://"); ok {
			switch strings.ToLower(scheme) {
			case "nats", "tls", "ws", "wss":
			default:
				return fmt.Errorf("url %q: scheme %q (want nats, tls, ws or wss)", redactURL(u), scheme)
			}
		}
	}
	if strings.ContainsAny(c.Stream, ". *>") {
		return fmt.Errorf("stream %q: no dots, spaces or wildcards", c.Stream)
	}
	if strings.ContainsAny(c.SubjectPrefix, " *>") || strings.HasSuffix(c.SubjectPrefix, ".") {
		return fmt.Errorf("subject_prefix %q is not a valid subject prefix", c.SubjectPrefix)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("replicas must be 1..5")
	}
	return nil
}

// connect opens the connection, retrying in the background on outages
// (nats.go reconnects and buffers nothing we rely on: unacknowledged
// publishes are retried from the spool).
func (c *Connection) connect(name string, log *slog.Logger) (*natsgo.Conn, error) {
	opts := []natsgo.Option{natsgo.Name(name), natsgo.Timeout(c.Timeout.D()), natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(time.Second), natsgo.RetryOnFailedConnect(false),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) { log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted()) }),
	}
	switch {
	case c.Creds != "":
		opts = append(opts, natsgo.UserCredentials(c.Creds))
	case c.Token != "":
		opts = append(opts, natsgo.Token(c.Token))
	case c.Username != "":
		opts = append(opts, natsgo.UserInfo(c.Username, c.Password))
	}
	if c.TLSCA != "" {
		opts = append(opts, natsgo.RootCAs(c.TLSCA))
	}
	nc, err := natsgo.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", redactURL(c.URL), err)
	}
	return nc, nil
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i > 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "xxxxx" + u[i:]
		}
	}
	return u
}

// ensureStream creates or updates the results stream: file storage, work
// queue retention (a message is removed once an ingester acknowledged it,
// so several ingesters share the load and nothing is kept twice).
func (c *Connection) ensureStream(ctx context.Context, js jetstream.JetStream) error {
	if c.CreateStream != nil && !*c.CreateStream {
		_, err := js.Stream(ctx, c.Stream)
		if err != nil {
			return fmt.Errorf("nats: stream %s: %w (create_stream = false)", c.Stream, err)
		}
		return nil
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "recon results, consumed by `recon ingest`",
		Subjects:    []string{c.SubjectPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxAge:      c.MaxAge.D(),
		MaxBytes:    orUnlimited(c.MaxBytes),
		Duplicates:  c.DuplicateWindow.D(),
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("nats: create stream %s: %w", c.Stream, err)
	}
	return nil
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// SubjectToken makes a name usable as one subject token.
func SubjectToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f:
			return '_'
		}
		return r
	}, s)
}

// Settings are the keys of a sink with type = "nats".
type Settings struct {
	Connection
}

// Type is the nats sink type.
type Type struct{}

func (Type) NewSettings() any { return &Settings{} }

func (Type) New(spec *sink.Spec, env sink.Env) (sink.Sink, error) {
	st, _ := spec.Settings.(*Settings)
	if st == nil {
		st = &Settings{}
	}
	c := st.Connection
	c.defaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Sink{conn: c, agent: env.Agent, log: log}, nil
}

// Sink publishes results to JetStream and waits for every acknowledgement.
type Sink struct {
	conn  Connection
	agent string
	log   *slog.Logger
	nc    *natsgo.Conn
	js    jetstream.JetStream
	buf   []byte
}

func (s *Sink) Connect(ctx context.Context) error {
	if s.nc != nil {
		return nil
	}
	nc, err := s.conn.connect("recon-agent-"+s.agent, s.log)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return fmt.Errorf("nats: jetstream: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, s.conn.Timeout.D())
	defer cancel()
	if err := s.conn.ensureStream(cctx, js); err != nil {
		nc.Close()
		return err
	}
	s.nc, s.js = nc, js
	return nil
}

// Subject of a result.
func (s *Sink) Subject(r *model.Result) string {
	agent := r.Agent
	if agent == "" {
		agent = s.agent
	}
	return s.conn.SubjectPrefix + "." + SubjectToken(agent) + "." + SubjectToken(r.Check)
}

func (s *Sink) WriteBatch(ctx context.Context, batch []model.Result) error {
	if s.js == nil {
		return errors.New("nats: not connected")
	}
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	for i := range batch {
		r := &batch[i]
		if r.Agent == "" {
			r.Agent = s.agent
		}
		msg := natsgo.NewMsg(s.Subject(r))
		msg.Data = r.AppendBinary(nil)
		msg.Header.Set(EncodingHeader, Encoding)
		f, err := s.js.PublishMsgAsync(msg, jetstream.WithMsgID(r.Key()), jetstream.WithExpectStream(s.conn.Stream))
		if err != nil {
			return fmt.Errorf("nats: publish: %w", err)
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(s.conn.Timeout.D())
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("nats: publish acknowledgement: %w", err)
		case <-timeout.C:
			return errors.New("nats: timed out waiting for publish acknowledgements")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *Sink) Close() error {
	if s.nc != nil {
		s.nc.Close()
		s.nc, s.js = nil, nil
	}
	return nil
}
