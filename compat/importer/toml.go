// Package importer turns Nagios and NRPE configuration into recon TOML:
// `recon import nagios` for object definitions and `recon import nrpe` for
// nrpe.cfg. What cannot be translated is written as comments, never
// silently dropped.
package importer

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// writer builds commented TOML text.
type writer struct {
	b strings.Builder
}

func (w *writer) comment(format string, args ...any) {
	for _, line := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		w.b.WriteString("# " + commentSafe(line) + "\n")
	}
}

// commentSafe escapes what TOML forbids in comments (control characters).
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

func (w *writer) line(format string, args ...any) { fmt.Fprintf(&w.b, format+"\n", args...) }

func (w *writer) blank() { w.b.WriteString("\n") }

func (w *writer) kv(key string, v any) { w.line("%s = %s", key, tomlValue(v)) }

func (w *writer) String() string { return w.b.String() }

// tomlValue renders strings, ints, bools, durations, string slices and
// string maps as TOML.
func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		return quote(x)
	case int:
		return fmt.Sprint(x)
	case bool:
		return fmt.Sprint(x)
	case time.Duration:
		return quote(duration(x))
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case map[string]string:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = quoteKey(k) + " = " + quote(x[k])
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	panic(fmt.Sprintf("importer: no TOML form for %T", v))
}

// quote writes a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func quoteKey(k string) string {
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return quote(k)
		}
	}
	if k == "" {
		return `""`
	}
	return k
}

// duration prints the shortest exact Go duration ("5m", "90s", "1h").
func duration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
