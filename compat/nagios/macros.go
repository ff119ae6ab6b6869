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
	Args        []string       // $ARG1$ … $ARG32$
	// StrictArgs makes an $ARGn$ beyond Args an error, as it is for
	// configured checks, where it means a missing args entry. Without it
	// the macro expands to nothing, as Nagios and nrpe do; NRPE requests
	// rely on that.
	StrictArgs bool
}

const (
	maxUser = 256 // Nagios's MAX_USER_MACROS
	maxArg  = 32  // Nagios's MAX_COMMAND_ARGUMENTS
)

// macroRef matches $NAME$ and $$. Names are upper case as in Nagios, so a
// shell's "$a$b" (shell = true) is left alone.
var macroRef = regexp.MustCompile(`\$([A-Z_][A-Z0-9_]*)?\$`)

// Expand substitutes macros in s in one pass (a value is never expanded
// again, so an argument cannot inject macros). "$$" is a literal "$". An
// unknown macro or an undefined $USERn$ is an error: it means a typo or a
// missing resource file, and running the plugin without the value would
// give misleading results.
func (m *Macros) Expand(s string) (string, error) {
	if strings.IndexByte(s, '$') < 0 {
		return s, nil
	}
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
	if i, ok := macroIndex(name, "USER", maxUser); ok {
		if v, ok := m.User[i]; ok {
			return v, nil
		}
		return "", fmt.Errorf("$%s$ is not defined (define it in the resource file, [nagios] resource_file)", name)
	}
	if i, ok := macroIndex(name, "ARG", maxArg); ok {
		if i <= len(m.Args) {
			return m.Args[i-1], nil
		}
		if m.StrictArgs {
			return "", fmt.Errorf("$%s$ is not defined: args has %d entries", name, len(m.Args))
		}
		return "", nil
	}
	if strings.HasPrefix(name, "_") {
		return "", fmt.Errorf("custom variable macro $%s$ is not supported: write its value into the command or args", name)
	}
	return "", fmt.Errorf("unknown macro $%s$ (supported: $USERn$, $HOSTADDRESS$, $HOSTNAME$, $SERVICEDESC$, $ARGn$; $$ is a literal $)", name)
}

// macroIndex parses "USER12" as 12 when 1 <= 12 <= max.
func macroIndex(name, prefix string, max int) (int, bool) {
	n, ok := strings.CutPrefix(name, prefix)
	if !ok || n == "" || n[0] == '0' {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	return i, err == nil && i >= 1 && i <= max
}

// ReadResourceFile parses a Nagios resource.cfg: "$USERn$=value" lines
// (n in 1..256; the value trimmed, as Nagios does; a later definition
// wins), comments starting with '#' or ';' and blank lines. Anything else
// is an error naming file:line.
func ReadResourceFile(path string) (map[int]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("resource file: %w", err)
	}
	defer f.Close()
	users := map[int]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want $USERn$=value, got %q", path, line, t)
		}
		k = strings.TrimSpace(k)
		name, isMacro := strings.CutPrefix(k, "$")
		name, closed := strings.CutSuffix(name, "$")
		i, isUser := macroIndex(name, "USER", maxUser)
		if !isMacro || !closed || !isUser {
			return nil, fmt.Errorf("%s:%d: %q is not a user macro; want $USERn$=value with n in 1..%d", path, line, k, maxUser)
		}
		users[i] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("resource file %s: %w", path, err)
	}
	return users, nil
}
