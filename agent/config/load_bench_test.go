package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func manyChecks(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "[[check]]\nname = \"c%d\"\ntype = \"nagios\"\ncommand = \"/bin/true %d\"\nperiod = \"1m\"\ntags = { n = \"%d\" }\n\n", i, i, i)
	}
	return []byte(b.String())
}

// BenchmarkLoadManyChecks: loading must stay linear in the number of
// checks (100,000 checks per agent is a SPEC §13 figure).
func BenchmarkLoadManyChecks(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "recon.toml")
			if err := os.WriteFile(path, manyChecks(n), 0o644); err != nil {
				b.Fatal(err)
			}
			for range b.N {
				cfg, err := Load(path, testRegistries(), nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(cfg.Checks) != n {
					b.Fatalf("%d checks", len(cfg.Checks))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/check")
		})
	}
}

func TestLineStarts(t *testing.T) {
	data := []byte("a\nbb\n\nc")
	ls := newLineStarts(data)
	for off, want := range []int{1, 1, 2, 2, 2, 3, 4} {
		if got := ls.line(off); got != want {
			t.Errorf("offset %d: line %d, want %d", off, got, want)
		}
	}
	// Error lines of a generated file point at the right check.
	bad := append(manyChecks(2000), []byte("[[check]]\nname = \"x\"\ntype = \"nagios\"\nperiod = \"soon\"\n")...)
	path := filepath.Join(t.TempDir(), "big.toml")
	os.WriteFile(path, bad, 0o644)
	_, err := Load(path, testRegistries(), nil)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("big.toml:%d:", 2000*7+4)) {
		t.Errorf("error does not name the line: %v", err)
	}
}
