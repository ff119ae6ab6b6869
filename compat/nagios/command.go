package nagios

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Macros are the values substituted into a command line, as Nagios does
// before it runs a plugin.
type Macros struct {
	User        map[int]string // $USER1$ … $USER256$ from resource.cfg
	HostAddress string         // $HOSTADDRESS$
	HostName    string         // $HOSTNAME$
	ServiceDesc string         // $SERVICEDESC$
	Args        []string       // $ARG1$ …
}

var macroRef = regexp.MustCompile(`\$([A-Z][A-Z0-9_]*)?\$`)

// Expand substitutes macros in s. "$$" is a literal "$". An $ARGn$ beyond
// the given args is empty, as in Nagios. An unknown macro or an undefined
// $USERn$ is an error: it means a missing resource file or a typo, and
// running the plugin without it would give misleading results.
func (m *Macros) Expand(s string) (string, error) {
	var firstErr error
	out := macroRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[1 : len(ref)-1]
		if name == "" {
			return "$"
		}
		v, err := m.lookup(name)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return v
	})
	return out, firstErr
}

func (m *Macros) lookup(name string) (string, error) {
	switch name {
	case "HOSTADDRESS":
		return m.HostAddress, nil
	case "HOSTNAME":
		return m.HostName, nil
	case "SERVICEDESC":
		return m.ServiceDesc, nil
	}
	if n, ok := strings.CutPrefix(name, "USER"); ok {
		i, err := strconv.Atoi(n)
		if err == nil && i >= 1 && i <= 256 {
			if v, ok := m.User[i]; ok {
				return v, nil
			}
			return "", fmt.Errorf("$%s$ is not defined (set it in the resource file, nagios.resource_file)", name)
		}
	}
	if n, ok := strings.CutPrefix(name, "ARG"); ok {
		i, err := strconv.Atoi(n)
		if err == nil && i >= 1 && i <= 32 {
			// Nagios expands an $ARGn$ the check_command did not give to
			// nothing; imported configurations rely on it.
			if i <= len(m.Args) {
				return m.Args[i-1], nil
			}
			return "", nil
		}
	}
	return "", fmt.Errorf("unknown macro $%s$", name)
}

// ReadResourceFile parses a Nagios resource.cfg: "$USERn$=value" lines,
// comments and blank lines. Anything else is an error naming file:line.
func ReadResourceFile(path string) (map[int]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("resource file: %w", err)
	}
	defer f.Close()
	users := map[int]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		k = strings.TrimSpace(k)
		n, isUser := strings.CutPrefix(k, "$USER")
		n, closed := strings.CutSuffix(n, "$")
		i, err := strconv.Atoi(n)
		if !ok || !isUser || !closed || err != nil || i < 1 || i > 256 {
			return nil, fmt.Errorf("%s:%d: want $USERn$=value with n in 1..256", path, line)
		}
		users[i] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("resource file %s: %w", path, err)
	}
	return users, nil
}

// SplitCommand splits a command line into words the way a POSIX shell
// would for simple commands: whitespace separates words, single quotes
// quote literally, double quotes quote with backslash escapes of $ ` " \
// and newline, a backslash outside quotes escapes the next character.
// It refuses what only a shell could do — pipes, redirection, command
// separators, substitutions, variables — naming the character, so the user
// can set shell = true deliberately.
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
			i++
			for ; ; i++ {
				if i >= len(s) {
					return nil, fmt.Errorf("unterminated double quote")
				}
				d := s[i]
				if d == '"' {
					break
				}
				if d == '$' || d == '`' {
					return nil, fmt.Errorf("%q inside double quotes needs a shell (set shell = true)", string(d))
				}
				if d == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
					d = s[i]
				}
				cur.WriteByte(d)
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case strings.IndexByte("|&;<>()$`", c) >= 0:
			return nil, fmt.Errorf("%q needs a shell (set shell = true, or quote it)", string(c))
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
