// Package pipeline fans every result out to every configured sink. Each sink
// has its own Queue (durably, a spool on disk): Publish returns only once a
// result is in every sink's queue, and a per-sink writer drains its queue in
// order, batching, retrying with exponential backoff and reconnecting, so a
// slow or dead sink never holds up the others and never loses data.
//
// Subscribers get a best-effort in-memory feed of results for live views;
// they are never on the durable path.
package pipeline
