package nagios

import (
	"fmt"
	"strings"
)

// SplitCommand splits a command line into words the way a POSIX shell
// does for a simple command: whitespace separates words, single quotes
// quote literally, double quotes quote with backslash escapes of $ ` " \,
// a backslash outside quotes escapes the next character, and a
// backslash-newline joins lines. There is no globbing or tilde expansion.
//
// It refuses what only a shell could do — pipes, redirection, command
// separators, substitutions, variables, comments — with an error that says
// "needs a shell" and names the character, so the user can quote it or
// set shell = true deliberately. (A general shell-words library would pass
// "a|b" through as a word, silently running something else than
// /bin/sh would; this check is the point, so the splitter is our own.)
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			inWord = true
			for i++; ; i++ {
				if i >= len(s) {
					return nil, fmt.Errorf("unterminated double quote")
				}
				d := s[i]
				if d == '"' {
					break
				}
				if d == '`' || d == '$' && expands(s, i) {
					return nil, fmt.Errorf("%q inside double quotes needs a shell (set shell = true, or use single quotes)", s[i:min(i+2, len(s))])
				}
				if d == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue // line continuation
					}
					d = s[i]
				}
				cur.WriteByte(d)
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("trailing backslash")
			}
			i++
			if s[i] != '\n' { // backslash-newline is a line continuation
				cur.WriteByte(s[i])
				inWord = true
			}
		case c == '$' && !expands(s, i):
			cur.WriteByte(c) // a lone $ is literal in sh too
			inWord = true
		case strings.IndexByte("|&;<>()$`", c) >= 0:
			return nil, fmt.Errorf("%q needs a shell (set shell = true, or quote it)", string(c))
		case c == '#' && !inWord:
			return nil, fmt.Errorf("%q starts a comment in a shell, so it needs a shell (set shell = true, or quote it)", "#")
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return words, nil
}

// expands reports whether the '$' at s[i] starts a shell expansion ($x,
// ${x}, $(cmd), $1, $?, …) rather than standing for itself.
func expands(s string, i int) bool {
	if i+1 >= len(s) {
		return false
	}
	c := s[i+1]
	return c == '_' || c == '{' || c == '(' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		c >= '0' && c <= '9' || strings.IndexByte("?!#@*$-", c) >= 0
}
