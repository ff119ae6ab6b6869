package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/plugins/sdk"
)

func countLines(t *testing.T, path string) int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return n
}

func TestWriterIdempotentAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	ctx := context.Background()
	rec := func(i int) sdk.Record {
		return sdk.Record{Result: sdk.OK("run %d", i), CheckID: "id", Check: "c", Time: time.Unix(int64(i), 0)}
	}
	w, err := jsonlSink{}.Open(ctx, &config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBatch(ctx, []sdk.Record{rec(1), rec(2), rec(1)}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if n := countLines(t, path); n != 2 {
		t.Fatalf("%d lines, want 2 (duplicate in one batch)", n)
	}
	// After a restart, a replay of acknowledged results adds nothing.
	w, err = jsonlSink{}.Open(ctx, &config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.WriteBatch(ctx, []sdk.Record{rec(2), rec(3)}); err != nil {
		t.Fatal(err)
	}
	if n := countLines(t, path); n != 3 {
		t.Fatalf("%d lines, want 3", n)
	}
	big := rec(4)
	big.Output = strings.Repeat("x", 200)
	err = jsonlSink{}.mustOpen(t, path, 100).WriteBatch(ctx, []sdk.Record{big})
	if !sdk.IsPermanent(err) {
		t.Errorf("oversized line: %v, want a permanent error", err)
	}
}

func (jsonlSink) mustOpen(t *testing.T, path string, max int) sdk.Writer {
	w, err := jsonlSink{}.Open(context.Background(), &config{Path: path, MaxLineBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestOpenErrors(t *testing.T) {
	if _, err := (jsonlSink{}).Open(context.Background(), &config{Path: filepath.Join(t.TempDir(), "no", "such", "dir", "f")}); err == nil {
		t.Error("opened a file in a missing directory")
	}
}
