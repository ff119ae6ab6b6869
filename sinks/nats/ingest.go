package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/internal/ctxsleep"
)

// IngestConfig is the [ingest] section of `recon ingest`.
type IngestConfig struct {
	Connection
	// Durable is the consumer name all ingesters share (default recon-ingest): they split the work.
	Durable string `toml:"durable"`
	// Batch is the most messages written to the store in one transaction (default 1000).
	Batch int `toml:"batch"`
	// MaxWait is how long a fetch waits to fill a batch (default 500ms).
	MaxWait config.Duration `toml:"max_wait"`
	// AckWait is how long a fetched message may stay unacknowledged before redelivery (default 1m).
	AckWait config.Duration `toml:"ack_wait"`
	// DeadLetterSubject receives messages that cannot be decoded, with the error (default recon.deadletter); a stream of the same name keeps them.
	DeadLetterSubject string `toml:"dead_letter_subject"`
}

func (c *IngestConfig) defaults() {
	c.Connection.defaults()
	if c.Durable == "" {
		c.Durable = "recon-ingest"
	}
	if c.Batch <= 0 {
		c.Batch = 1000
	}
	if c.MaxWait == 0 {
		c.MaxWait = config.Duration(500 * time.Millisecond)
	}
	if c.AckWait == 0 {
		c.AckWait = config.Duration(time.Minute)
	}
	if c.DeadLetterSubject == "" {
		c.DeadLetterSubject = "recon.deadletter"
	}
}

// Writer is where results go: the Postgres trend store sink.
type Writer interface {
	WriteBatch(ctx context.Context, batch []model.Result) error
}

// Ingester consumes the results stream into a Writer, acknowledging only
// after the write committed (at-least-once into an idempotent store:
// exactly one copy).
type Ingester struct {
	cfg IngestConfig
	w   Writer
	log *slog.Logger

	ingested, batches, poison, writeErrors, redelivered atomic.Uint64
}

// NewIngester validates the configuration.
func NewIngester(cfg IngestConfig, w Writer, log *slog.Logger) (*Ingester, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Ingester{cfg: cfg, w: w, log: log.With("component", "ingest")}, nil
}

// IngestStats are the ingester's counters.
type IngestStats struct{ Ingested, Batches, Poison, WriteErrors, Redelivered uint64 }

func (in *Ingester) Stats() IngestStats {
	return IngestStats{in.ingested.Load(), in.batches.Load(), in.poison.Load(), in.writeErrors.Load(), in.redelivered.Load()}
}

// Run consumes until ctx is done. NATS outages are waited out (the client
// reconnects); store outages make the batch redeliver after a backoff.
func (in *Ingester) Run(ctx context.Context) error {
	nc, err := in.cfg.connect("recon-ingest", in.log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("nats: jetstream: %w", err)
	}
	var cons jetstream.Consumer
	backoff := time.Second
	for {
		cons, err = in.setup(ctx, js)
		if err == nil {
			break
		}
		in.log.Error("cannot set up the stream/consumer; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	in.log.Info("ingesting", "stream", in.cfg.Stream, "consumer", in.cfg.Durable, "batch", in.cfg.Batch)
	backoff = time.Second
	for ctx.Err() == nil {
		batch, err := cons.Fetch(in.cfg.Batch, jetstream.FetchMaxWait(in.cfg.MaxWait.D()))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			in.log.Warn("fetch failed; retrying", "err", err)
			ctxsleep.Sleep(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoHeartbeat) && len(msgs) == 0 && ctx.Err() == nil {
			in.log.Warn("fetch ended with an error", "err", err)
			ctxsleep.Sleep(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		if len(msgs) > 0 {
			in.process(ctx, js, msgs)
		}
	}
	return nil
}

func (in *Ingester) setup(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	cctx, cancel := context.WithTimeout(ctx, in.cfg.Timeout.D())
	defer cancel()
	if err := in.cfg.ensureStream(cctx, js); err != nil {
		return nil, err
	}
	// The dead-letter stream keeps poison messages for an operator.
	_, err := js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{Name: SubjectToken(in.cfg.Stream + "_DEADLETTER"),
		Description: "results recon ingest could not decode, with the error in the headers",
		Subjects:    []string{in.cfg.DeadLetterSubject, in.cfg.DeadLetterSubject + ".>"}, Storage: jetstream.FileStorage,
		Replicas: in.cfg.Replicas, Retention: jetstream.LimitsPolicy})
	if err != nil {
		return nil, fmt.Errorf("nats: dead-letter stream: %w", err)
	}
	return js.CreateOrUpdateConsumer(cctx, in.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       in.cfg.Durable,
		Description:   "recon ingest → trend store",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       in.cfg.AckWait.D(),
		MaxDeliver:    -1, // store outages must never exhaust deliveries
		MaxAckPending: in.cfg.Batch * 8,
		FilterSubject: in.cfg.SubjectPrefix + ".>",
	})
}

// process decodes a fetched batch, writes the good results in one batch,
// dead-letters the undecodable ones, and acknowledges only what is durable.
func (in *Ingester) process(ctx context.Context, js jetstream.JetStream, msgs []jetstream.Msg) {
	results := make([]model.Result, 0, len(msgs))
	good := make([]jetstream.Msg, 0, len(msgs))
	for _, m := range msgs {
		if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
			in.redelivered.Add(1)
		}
		r, err := decode(m)
		if err != nil {
			in.deadLetter(ctx, js, m, err)
			continue
		}
		results = append(results, r)
		good = append(good, m)
	}
	if len(results) == 0 {
		return
	}
	if err := in.w.WriteBatch(ctx, results); err != nil {
		in.writeErrors.Add(1)
		in.log.Error("store write failed; the batch will be redelivered", "err", err, "results", len(results))
		for _, m := range good {
			m.NakWithDelay(2 * time.Second)
		}
		ctxsleep.Sleep(ctx, time.Second) // backpressure: do not fetch faster than the store takes
		return
	}
	for _, m := range good {
		if err := m.Ack(); err != nil {
			// Redelivery will follow; the store drops the duplicate.
			in.log.Warn("ack failed", "err", err)
		}
	}
	in.ingested.Add(uint64(len(results)))
	in.batches.Add(1)
	in.log.Debug("batch ingested", "results", len(results))
}

func decode(m jetstream.Msg) (model.Result, error) {
	if enc := m.Headers().Get(EncodingHeader); enc != Encoding {
		return model.Result{}, fmt.Errorf("unsupported encoding %q (want %q)", enc, Encoding)
	}
	return model.DecodeBinary(m.Data())
}

// deadLetter parks an undecodable message with the error; it is removed
// from the work queue only once the dead-letter copy is stored.
func (in *Ingester) deadLetter(ctx context.Context, js jetstream.JetStream, m jetstream.Msg, cause error) {
	dl := natsgo.NewMsg(in.cfg.DeadLetterSubject)
	dl.Data = m.Data()
	for k, vs := range m.Headers() {
		for _, v := range vs {
			dl.Header.Add(k, v)
		}
	}
	dl.Header.Set("Recon-Error", cause.Error())
	dl.Header.Set("Recon-Original-Subject", m.Subject())
	pctx, cancel := context.WithTimeout(ctx, in.cfg.Timeout.D())
	defer cancel()
	if _, err := js.PublishMsg(pctx, dl); err != nil {
		in.log.Error("dead-letter publish failed; the message stays queued", "err", err)
		m.NakWithDelay(5 * time.Second)
		return
	}
	in.poison.Add(1)
	in.log.Error("undecodable message parked in the dead-letter stream", "subject", m.Subject(), "err", cause)
	m.TermWithReason("dead-lettered: " + cause.Error())
}
