package nagios

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

func TestMacrosAndShell(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "resource.cfg")
	if err := os.WriteFile(res, []byte("# comment\n$USER1$="+pluginDir+"\n\n$USER3$ = secret value \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	typ := newType(t, Options{ResourceFile: res})
	plugin(t, "check_dummy")
	r := run(t, typ, Settings{Command: "$USER1$/check_dummy 0 '$HOSTADDRESS$ $HOSTNAME$ $SERVICEDESC$ $ARG1$ $$5 $USER3$'", Args: []string{"a1"}}, "10.0.0.1", 5*time.Second)
	if r.Status != model.OK || r.Output != "OK: 10.0.0.1 10.0.0.1 test a1 $5 secret value" {
		t.Errorf("macros: %v %q", r.Status, r.Output)
	}
	// $ARGn$ splits into words, as the shell Nagios uses does it.
	r = run(t, typ, Settings{Command: "$USER1$/check_dummy $ARG1$", Args: []string{"2 'two words'"}}, "", 5*time.Second)
	if r.Status != model.Critical || r.Output != "CRITICAL: two words" {
		t.Errorf("$ARG1$ with words: %v %q", r.Status, r.Output)
	}
	r = run(t, typ, Settings{Command: "echo 'OK - piped | a=1' | cat; exit 0", Shell: true}, "", 5*time.Second)
	if r.Status != model.OK || r.Output != "OK - piped" || len(r.Metrics) != 1 {
		t.Errorf("shell: %v %q", r.Status, r.Output)
	}
	// $$ is a $ for the shell.
	r = run(t, typ, Settings{Command: `printf '%s\n' "WARNING - [$$LANG]"; exit 1`, Shell: true}, "", 5*time.Second)
	if r.Status != model.Warning || r.Output != "WARNING - [C]" {
		t.Errorf("shell with $$: %v %q", r.Status, r.Output)
	}
	bad := []struct {
		s    Settings
		want string
	}{
		{Settings{Command: "echo a | cat"}, `"|" needs a shell (set shell = true`},
		{Settings{Command: "check_x > /tmp/out"}, `">" needs a shell`},
		{Settings{Command: "check_x; rm -rf /"}, `";" needs a shell`},
		{Settings{Command: "check_x & "}, `"&" needs a shell`},
		{Settings{Command: "check_x $(id)"}, `"$" needs a shell`},
		{Settings{Command: "check_x `id`"}, "\"`\" needs a shell"},
		{Settings{Command: "echo $HOME"}, `"$" needs a shell`},
		{Settings{Command: `echo "$HOME"`}, `"$H" inside double quotes needs a shell`},
		{Settings{Command: "$USER2$/check_x"}, "$USER2$ is not defined (define it in the resource file"},
		{Settings{Command: "check_x $ARG2$", Args: []string{"one"}}, "$ARG2$ is not defined: args has 1 entries"},
		{Settings{Command: "check_x $ARG1$"}, "$ARG1$ is not defined: args has 0 entries"},
		{Settings{Command: "check_x $FOO$"}, "unknown macro $FOO$"},
		{Settings{Command: "check_x $_HOSTROLE$"}, "custom variable macro $_HOSTROLE$ is not supported"},
		{Settings{Command: "check_x 'open"}, "unterminated single quote"},
		{Settings{Command: "  "}, "command is required"},
		{Settings{Command: "check_x", OutputLimit: -1}, "output_limit must be >= 0"},
	}
	for _, b := range bad {
		_, err := typ.Prepare(&model.Check{Name: "x", Settings: &b.s})
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: %v, want %q", b.s.Command, err, b.want)
		}
	}
	if _, err := typ.Prepare(&model.Check{Name: "x", Settings: struct{}{}}); err == nil {
		t.Error("foreign settings accepted")
	}
}

func TestExpand(t *testing.T) {
	m := Macros{User: map[int]string{1: "/p", 256: "u256"}, HostAddress: "h", HostName: "hn", ServiceDesc: "sd", Args: []string{"a1", "$USER1$"}}
	cases := map[string]string{
		"$USER1$/check $HOSTADDRESS$": "/p/check h",
		"$USER256$":                   "u256",
		"$ARG2$":                      "$USER1$", // values are not expanded again
		"$ARG3$":                      "",        // not strict: empty, as in nrpe
		"$$ $$$$ a$b":                 "$ $$ a$b",
		"$HOSTNAME$-$SERVICEDESC$":    "hn-sd",
		"no macros":                   "no macros",
		"$lower$ $1$":                 "$lower$ $1$", // not macro names
	}
	for in, want := range cases {
		if got, err := m.Expand(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"$USER2$", "$USER257$", "$USER0$", "$USER01$", "$ARG33$", "$NOPE$"} {
		if got, err := m.Expand(in); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
	m.StrictArgs = true
	if _, err := m.Expand("$ARG3$"); err == nil {
		t.Error("strict: $ARG3$ beyond 2 args accepted")
	}
}

func TestReadResourceFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resource.cfg")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# Sets $USER1$ to the plugin directory\n; old-style comment\n\n$USER1$=/usr/lib/nagios/plugins\n  $USER2$ = /usr/local/lib \n$USER3$=pa=ss#word\n$USER1$=/override\n$USER4$=\n")
	users, err := ReadResourceFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 4 || users[1] != "/override" || users[2] != "/usr/local/lib" || users[3] != "pa=ss#word" || users[4] != "" {
		t.Errorf("%v", users)
	}
	if u, err := ReadResourceFile(filepath.Join("..", "..", "testdata", "nagios", "resource.cfg")); err != nil || len(u) != 2 || u[1] != pluginDir || u[5] != "s3cret" {
		t.Errorf("testdata/nagios/resource.cfg: %v %v", u, err)
	}
	// Debian's own resource.cfg, if nagios4 is installed.
	if _, err := os.Stat("/etc/nagios4/resource.cfg"); err == nil {
		if u, err := ReadResourceFile("/etc/nagios4/resource.cfg"); err != nil || u[1] == "" {
			t.Errorf("/etc/nagios4/resource.cfg: %v %v", u, err)
		}
	}
	bad := map[string]string{
		"$USER1$=/x\nbogus line\n": ":2: want $USERn$=value",
		"$USER300$=/x\n":           `:1: "$USER300$" is not a user macro`,
		"$USER0$=/x\n":             ":1:",
		"USER1=/x\n":               ":1:",
		"$USER1=/x\n":              ":1:",
		"$ARG1$=/x\n":              ":1:",
		"\n\n$USERx$=/x\n":         ":3:",
	}
	for content, want := range bad {
		write(content)
		if _, err := ReadResourceFile(p); err == nil || !strings.Contains(err.Error(), p+want) {
			t.Errorf("%q: %v, want %q", content, err, p+want)
		}
	}
	if _, err := ReadResourceFile(filepath.Join(dir, "missing.cfg")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := New(Options{ResourceFile: filepath.Join(dir, "missing.cfg")}); err == nil || !strings.Contains(err.Error(), "missing.cfg") {
		t.Errorf("New with a missing resource file: %v", err)
	}
}

func TestSplitCommand(t *testing.T) {
	cases := map[string][]string{
		`a b  c`:                {"a", "b", "c"},
		"a\tb\nc":               {"a", "b", "c"},
		`a 'b c' "d e"`:         {"a", "b c", "d e"},
		`a "x\"y" 'it''s'`:      {"a", `x"y`, "its"},
		`a "\$x \\ \a"`:         {"a", `$x \ \a`},
		`a b\ c \'q\'`:          {"a", "b c", "'q'"},
		"a \\\nb":               {"a", "b"},
		"a \"x\\\ny\"":          {"a", "xy"},
		`check -r 'a|b;c'`:      {"check", "-r", "a|b;c"},
		`check -u '/x?y=1&z=2'`: {"check", "-u", "/x?y=1&z=2"},
		`c ""`:                  {"c", ""},
		`c -s 5$ $ "a $"`:       {"c", "-s", "5$", "$", "a $"},
		`c a#b`:                 {"c", "a#b"},
		`c '#x'`:                {"c", "#x"},
		`c *.log ~/x`:           {"c", "*.log", "~/x"}, // no globbing, no tilde
	}
	for in, want := range cases {
		got, err := SplitCommand(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		`check -u /x?y=1&z=2`: `"&" needs a shell`,
		`a | b`:               `"|" needs a shell`,
		`a > f`:               `">" needs a shell`,
		`a < f`:               `"<" needs a shell`,
		`a; b`:                `";" needs a shell`,
		`(a)`:                 `"(" needs a shell`,
		"a `b`":               "\"`\" needs a shell",
		`a $B`:                `"$" needs a shell`,
		`a ${B}`:              `"$" needs a shell`,
		`a $1`:                `"$" needs a shell`,
		`a $?`:                `"$" needs a shell`,
		`a "$(b)"`:            `inside double quotes needs a shell`,
		"a \"`b`\"":           `inside double quotes needs a shell`,
		`a # comment`:         `starts a comment in a shell`,
		`a 'b`:                "unterminated single quote",
		`a "b`:                "unterminated double quote",
		`a \`:                 "trailing backslash",
		"":                    "empty command",
		"  \t ":               "empty command",
	}
	for in, want := range bad {
		if got, err := SplitCommand(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %q %v, want error %q", in, got, err, want)
		}
	}
}

// FuzzSplitCommand: never panics; a successful split has words, and what
// is accepted re-splits to the same words when re-quoted.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{`a 'b c' "d\"e" f\ g`, `check -u '/x?y=1&z=2'`, "a \\\nb", `c -s 5$ "a $"`, `a $B`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitCommand(s)
		if err != nil {
			return
		}
		if len(words) == 0 {
			t.Fatal("no words and no error")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		again, err := SplitCommand(strings.Join(quoted, " "))
		if err != nil || !slices.Equal(again, words) {
			t.Fatalf("%q split to %q; re-quoted it splits to %q (%v)", s, words, again, err)
		}
	})
}

func FuzzExpandMacros(f *testing.F) {
	f.Add("$USER1$/check $HOSTADDRESS$ $ARG1$ $$ $X")
	f.Add("$ARG2$$ARG1$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		m := Macros{User: map[int]string{1: "/p"}, HostAddress: "h", Args: []string{"a", "$ARG1$"}}
		out, err := m.Expand(s)
		if err == nil && !strings.Contains(s, "$") && out != s {
			t.Fatalf("%q without macros changed to %q", s, out)
		}
	})
}
