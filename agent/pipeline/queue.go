package pipeline

import (
	"context"

	"github.com/reconmon/recon/agent/model"
)

// Queue is one sink's FIFO between the pipeline and that sink's writer. The
// durable implementation is the on-disk spool (package spool); MemQueue is
// the volatile one used by one-shot commands and tests.
type Queue interface {
	// Append adds results at the tail. When it returns nil they are stored
	// according to the queue's durability policy (for the spool: fsynced by
	// default). When the queue is full Append blocks until there is room or
	// ctx is done; it never drops.
	Append(ctx context.Context, rs []model.Result) error
	// Peek blocks until at least one result is queued (or ctx is done) and
	// returns up to max results from the head, in order, without removing
	// them. Calling Peek again before Commit returns the same head.
	Peek(ctx context.Context, max int) ([]model.Result, error)
	// Commit removes the first n results at the head; n is at most what the
	// last Peek returned. After a crash, anything not committed is returned
	// again (at-least-once).
	Commit(n int) error
	// Stats reports the queue's current depth and counters.
	Stats() QueueStats
	// Close releases the queue; pending Peek and Append calls return.
	Close() error
}

// QueueStats are a queue's gauges and counters for /metrics.
type QueueStats struct {
	Depth        int64  // results queued
	Bytes        int64  // bytes queued (on disk for the spool)
	Appended     uint64 // results appended since open
	Committed    uint64 // results committed since open
	BlockedWaits uint64 // Append calls that had to wait because the queue was full
	Corrupt      uint64 // records found corrupt (on open or while reading) and moved aside
}
