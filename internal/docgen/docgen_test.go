package docgen

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReferenceUpToDate fails when docs/configuration.md no longer matches
// the configuration structs. Fix: go run ./internal/docgen/cmd -write
func TestReferenceUpToDate(t *testing.T) {
	root := filepath.Join("..", "..")
	want, err := Generate(root, Sections)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "docs", "configuration.md"))
	if err != nil {
		t.Fatalf("%v (generate it: go run ./internal/docgen/cmd -write)", err)
	}
	if string(got) != string(want) {
		t.Fatal("docs/configuration.md is stale: run `go run ./internal/docgen/cmd -write` from the repository root")
	}
}
