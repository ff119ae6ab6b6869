package postgres

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"":             "",
		"plain":        "plain",
		"a\x00b":       "a\uFFFDb",
		"\xff\xfe":     "\uFFFD",
		"ok é ✓":       "ok é ✓",
		"\x00\xc3\x00": "\uFFFD\uFFFD\uFFFD",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := cleanTags(map[string]string{"a\x00": "\x00"}); got != `{"a�":"�"}` {
		t.Errorf("cleanTags: %s", got)
	}
	if got := cleanTags(nil); got != "{}" {
		t.Errorf("cleanTags(nil): %s", got)
	}
}

// FuzzClean: whatever a check prints, what reaches Postgres is valid UTF-8
// without NUL (text and jsonb accept it), and clean text passes unchanged.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"", "a\x00b", "\xff", "é", "\\u0000", `"`} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, s, v string) {
		c := clean(s)
		if !utf8.ValidString(c) || strings.IndexByte(c, 0) >= 0 {
			t.Fatalf("clean(%q) = %q", s, c)
		}
		if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && c != s {
			t.Fatalf("clean changed clean text %q to %q", s, c)
		}
		j := cleanTags(map[string]string{s: v})
		var m map[string]string
		if err := json.Unmarshal([]byte(j), &m); err != nil || len(m) != 1 {
			t.Fatalf("cleanTags gave %s: %v", j, err)
		}
		for k, v := range m { // jsonb rejects a NUL (\u0000) anywhere
			if strings.IndexByte(k+v, 0) >= 0 || !utf8.ValidString(k+v) {
				t.Fatalf("cleanTags gave %s", j)
			}
		}
	})
}
