package config

import (
	"bytes"
	"fmt"
	"regexp"
)

// LookupEnv is how the loader reads environment variables; tests pass a map.
type LookupEnv func(name string) (string, bool)

var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} and ${VAR:-default} line by line, so line numbers
// stay true for later errors. "$${" escapes a literal "${". Full-line
// comments are left alone. A variable that is unset and has no default is an
// error: silently substituting "" would hide a missing secret.
func expandEnv(file string, data []byte, lookup LookupEnv, errs *Errors) []byte {
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		if !bytes.Contains(line, []byte("${")) {
			continue
		}
		lines[i] = envRef.ReplaceAllFunc(line, func(m []byte) []byte {
			if string(m) == "$${" {
				return []byte("${")
			}
			sub := envRef.FindSubmatch(m)
			name := string(sub[1])
			if v, ok := lookup(name); ok {
				return []byte(escapeTOML(v))
			}
			if sub[2] != nil {
				return sub[3]
			}
			errs.add(file, i+1, "environment variable %s is not set (use ${%s:-default} for a default)", name, name)
			return nil
		})
	}
	return bytes.Join(lines, []byte("\n"))
}

// escapeTOML escapes a substituted value for use inside a basic string, the
// usual place for ${VAR}; a value with quotes or backslashes would otherwise
// break or alter the document.
func escapeTOML(v string) string {
	var b bytes.Buffer
	for _, r := range v {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\u%04x`, r)
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}
