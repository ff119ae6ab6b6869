// Command jsonl is an example recon sink plugin: it appends every result
// as one JSON line to a file, idempotently (a replayed result already in
// the file is not written again).
//
//	[[sink]]
//	name   = "archive"
//	type   = "plugin"
//	path   = "/usr/local/lib/recon/plugins/jsonl"
//	sha256 = "…"
//	config = { path = "/var/lib/recon/archive.jsonl" }
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/reconmon/recon/plugins/sdk"
)

type config struct {
	Path string `json:"path"`
	// Fsync makes each batch durable before it is acknowledged.
	Fsync *bool `json:"fsync,omitempty"`
	// MaxLineBytes rejects (permanently) results whose line is longer.
	MaxLineBytes int `json:"max_line_bytes,omitempty"`
}

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["path"],
  "properties": {
    "path":           {"type": "string", "minLength": 1, "description": "file to append JSON lines to"},
    "fsync":          {"type": "boolean", "default": true},
    "max_line_bytes": {"type": "integer", "minimum": 64, "default": 1048576}
  }
}`

type jsonlSink struct{}

func (jsonlSink) Info() sdk.Info {
	return sdk.Info{Name: "jsonl", Version: "1.0.0", Description: "append results as JSON lines to a file"}
}

func (jsonlSink) ConfigSchema() string { return schema }

// line is what one result looks like in the file.
type line struct {
	Key string `json:"key"`
	sdk.Record
}

func (jsonlSink) Open(_ context.Context, c *config) (sdk.Writer, error) {
	f, err := os.OpenFile(c.Path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	w := &writer{f: f, fsync: c.Fsync == nil || *c.Fsync, maxLine: c.MaxLineBytes, seen: map[string]bool{}}
	if w.maxLine == 0 {
		w.maxLine = 1 << 20
	}
	// Learn which results the file already holds, so a replay after a
	// crash (delivery is at least once) leaves one copy of each.
	if err := w.scan(); err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", c.Path, err)
	}
	sdk.Logger().Info("opened", "path", c.Path, "results", len(w.seen))
	return w, nil
}

type writer struct {
	f       *os.File
	fsync   bool
	maxLine int
	seen    map[string]bool
}

func (w *writer) scan() error {
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	sc := bufio.NewScanner(w.f)
	sc.Buffer(make([]byte, 64<<10), w.maxLine+1)
	for sc.Scan() {
		var l struct {
			Key string `json:"key"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Key != "" {
			w.seen[l.Key] = true
		}
	}
	return sc.Err()
}

func (w *writer) WriteBatch(_ context.Context, batch []sdk.Record) error {
	var buf []byte
	var keys []string
	inBatch := map[string]bool{}
	for i := range batch {
		r := &batch[i]
		k := r.Key()
		if w.seen[k] || inBatch[k] {
			continue
		}
		inBatch[k] = true
		b, err := json.Marshal(line{Key: k, Record: *r})
		if err != nil {
			return sdk.Permanent(fmt.Errorf("result %s: %w", k, err))
		}
		if len(b) > w.maxLine {
			return sdk.Permanent(fmt.Errorf("result %s of check %q is %d bytes as JSON, over max_line_bytes %d", k, r.Check, len(b), w.maxLine))
		}
		buf = append(append(buf, b...), '\n')
		keys = append(keys, k)
	}
	if len(buf) == 0 {
		return nil
	}
	if _, err := w.f.Write(buf); err != nil {
		return err
	}
	if w.fsync {
		if err := w.f.Sync(); err != nil {
			return err
		}
	}
	for _, k := range keys {
		w.seen[k] = true
	}
	return nil
}

func (w *writer) Close() error {
	return errors.Join(w.f.Sync(), w.f.Close())
}

func main() { sdk.ServeSink[config](jsonlSink{}) }
