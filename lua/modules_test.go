package lua

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios"
)

// evalLua runs a script whose output is the value of expr.
func evalLua(t *testing.T, typ *Type, body string, o ...checkOpt) string {
	t.Helper()
	res := runSrc(t, typ, body, o...)
	if res.Status != model.OK {
		t.Fatalf("%s\n=> %v %q\n%s", body, res.Status, res.Output, res.LongOutput)
	}
	return res.Output
}

func out(expr string) string { return `return {status="OK", output=tostring(` + expr + `)}` }

func TestJSON(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	cases := []struct{ src, want string }{
		{out(`json.encode({a = 1, b = {1, 2, 3}, c = "x\"<>", d = true, e = 1.5})`), `{"a":1,"b":[1,2,3],"c":"x\"<>","d":true,"e":1.5}`},
		{out(`json.encode({})`), `{}`},
		{out(`json.encode({1, json.null, 3})`), `[1,null,3]`},
		{out(`json.encode({[1] = "a", [3] = "c"})`), `{"1":"a","3":"c"}`},
		{out(`json.encode("s")`), `"s"`},
		{out(`json.encode(2^53)`), `9007199254740992`},
		{out(`(json.encode({x = {y = {z = {}}}}, {indent = " "}):gsub("\n", "|"))`), `{| "x": {|  "y": {|   "z": {}|  }| }|}`},
		{`local v = json.decode([[{"a":[1,2,{"b":null}],"n":-1.5e3,"s":"\u00e9","t":true}]])
		  return {status="OK", output=v.a[2] .. " " .. tostring(v.a[3].b == json.null) .. " " .. v.n .. " " .. v.s .. " " .. tostring(v.t) .. " " .. #v.a}`,
			"2 true -1500 é true 3"},
		{out(`json.decode("null") == json.null`), "true"},
		{out(`json.null`), "null"},
		{`local v, err = json.decode("{bad") return {status="OK", output=tostring(v) .. " " .. err}`, "nil json.decode: "},
		{`local v, err = json.decode("[1] [2]") return {status="OK", output=err}`, "json.decode: unexpected data after the JSON value"},
		{`local t = {} t.self = t local v, err = json.encode(t) return {status="OK", output=err}`, "json.encode: self: cannot encode a table that contains itself"},
		{`local v, err = json.encode({0/0}) return {status="OK", output=err}`, "JSON has no NaN"},
		{`local v, err = json.encode({f = print}) return {status="OK", output=err}`, "cannot encode a function"},
		{`local v, err = json.encode({[true] = 1}) return {status="OK", output=err}`, "cannot encode a table key of type boolean"},
		{`local t = {} local c = t for i = 1, 300 do c.x = {} c = c.x end local v, err = json.encode(t) return {status="OK", output=err}`, "nested deeper than 200"},
		{out(`json.encode(json.decode('{"k":[1,"two",{"three":3.5}]}'))`), `{"k":[1,"two",{"three":3.5}]}`},
	}
	for _, c := range cases {
		if got := evalLua(t, typ, c.src); !strings.Contains(got, c.want) {
			t.Errorf("%s\n got %q\nwant %q", c.src, got, c.want)
		}
	}
}

func TestRe(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	cases := []struct{ src, want string }{
		{out(`re.match("OpenSSH_9.2p1", [[^OpenSSH_\d+\.\d+]])`), "true"},
		{out(`re.match("abc", "^b")`), "false"},
		{`local a, b = re.find("v=1.25 build 7", [[(\d+)\.(\d+)]]) return {status="OK", output=a .. "|" .. b}`, "1|25"},
		{out(`re.find("hello world", "o w")`), "o w"},
		{out(`re.find("abc", "x")`), "nil"},
		{`local a, b = re.find("ab", "(a)|(z)") return {status="OK", output=a .. tostring(b)}`, "anil"},
		{`local all = re.find_all("a1 b22 c333", [[\d+]]) return {status="OK", output=table.concat(all, ",")}`, "1,22,333"},
		{`local all = re.find_all("k1=v1 k2=v2", [[(\w+)=(\w+)]]) return {status="OK", output=all[2][1] .. all[2][2] .. #all}`, "k2v22"},
		{`local all = re.find_all("aaaa", "a", 2) return {status="OK", output=#all}`, "2"},
		{`local s, n = re.gsub("a-1 b-2", [[(\w)-(\d)]], "$2$1") return {status="OK", output=s .. " " .. n}`, "1a 2b 2"},
		{`local s = re.gsub("x y", [[(?P<w>\w)]], "<${w}>") return {status="OK", output=s}`, "<x> <y>"},
		{`local s = re.gsub("a b c", "b", function(m) return m:upper() end) return {status="OK", output=s}`, "a B c"},
		{`local s = re.gsub("a b c", "[ac]", function(m) if m == "a" then return nil end return "C" end) return {status="OK", output=s}`, "a b C"},
		{`local s, n = re.gsub("aaa", "a", "b", 2) return {status="OK", output=s .. n}`, "bba2"},
		{out(`table.concat(re.split("a, b,c", [[,\s*]]), "|")`), "a|b|c"},
		{out(`re.quote("a.b*c")`), `a\.b\*c`},
	}
	for _, c := range cases {
		if got := evalLua(t, typ, c.src); got != c.want {
			t.Errorf("%s\n got %q\nwant %q", c.src, got, c.want)
		}
	}
	res := runSrc(t, typ, `re.match("x", "(")`)
	wantStatus(t, res, model.Unknown, "re.match: invalid pattern")
	res = runSrc(t, typ, `re.gsub("x", "x", {})`)
	wantStatus(t, res, model.Unknown, "replacement must be a string or a function")
}

// string.gsub is reimplemented (linear time); it must keep Lua 5.1
// semantics.
func TestStringGsubSemantics(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	cases := []struct{ src, want string }{
		{`string.gsub("hello world", "o", "0")`, "hell0 w0rld 2"},
		{`string.gsub("hello world", "(o)", "[%1]")`, "hell[o] w[o]rld 2"},
		{`string.gsub("hello", "l+", "%0%0")`, "hellllo 1"},
		{`string.gsub("abc", "%w", "%%")`, "%%% 3"},
		{`string.gsub("abc", "", "-")`, "-a-b-c- 4"},
		{`string.gsub("hello world", "%w+", "<%0>", 1)`, "<hello> world 1"},
		{`string.gsub("$name is $age", "%$(%w+)", {name = "Bob", age = 42})`, "Bob is 42 2"},
		{`string.gsub("$name is $x", "%$(%w+)", {name = "Bob"})`, "Bob is $x 2"},
		{`string.gsub("a=1, b=2", "(%w+)=(%w+)", function(k, v) return v .. "=" .. k end)`, "1=a, 2=b 2"},
		{`string.gsub("abc", "b", function() return false end)`, "abc 1"},
		{`string.gsub("abc", "()b()", "%1%2")`, "a23c 1"},
		{`string.gsub("abc", "b", 7)`, "a7c 1"},
		{`string.gsub("x", "x", "%a")`, "a 1"},
		{`string.gsub("a.b", "%.", "%%")`, "a%b 1"},
	}
	for _, c := range cases {
		got := evalLua(t, typ, `local s, n = `+c.src+` return {status="OK", output=s .. " " .. n}`)
		if got != c.want {
			t.Errorf("%s\n got %q\nwant %q", c.src, got, c.want)
		}
	}
	for src, want := range map[string]string{
		`string.gsub("abc", "(b)", "%2")`:                   "invalid capture index %2",
		`string.gsub("abc", "b", "%2")`:                     "invalid capture index %2",
		`string.gsub("abc", "[a", "x")`:                     "string.gsub:",
		`string.gsub("abc", "b", function() return {} end)`: "invalid replacement value (a table)",
		`string.gsub("abc", "b", true)`:                     "bad argument #3",
	} {
		res := runSrc(t, typ, src)
		wantStatus(t, res, model.Unknown, want)
	}
	// Linear: a replacement per character of a 1 MB subject is quick (the
	// original implementation copies the subject once per match).
	got := evalLua(t, typ, `local s, n = string.gsub(string.rep("a", 1000000), "a", "b") return {status="OK", output=#s .. " " .. n .. " " .. s:sub(1, 3)}`,
		withTimeout(10*time.Second))
	if got != "1000000 1000000 bbb" {
		t.Fatal(got)
	}
}

func TestTime(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	now := time.Now().Unix()
	cases := []struct{ src, want string }{
		{out(`time.parse("2024-02-29T12:00:00Z")`), "1709208000"},
		{out(`time.parse("29 Feb 24 12:00 UTC", "rfc822")`), "1709208000"},
		{out(`time.parse("2024-02-29 13:00:00", "datetime", "Europe/Berlin")`), "1709208000"},
		{out(`time.format(1709208000.5, "2006-01-02T15:04:05.000Z07:00")`), "2024-02-29T12:00:00.500Z"},
		{out(`time.format(1709208000)`), "2024-02-29T12:00:00Z"},
		{out(`time.format(1709208000, "http")`), "Thu, 29 Feb 2024 12:00:00 GMT"},
		{out(`time.duration("1m30s")`), "90"},
		{`local v, err = time.parse("nope") return {status="OK", output=tostring(v) .. " " .. err}`, `nil time.parse: parsing time "nope"`},
		{`local v, err = time.duration("x") return {status="OK", output=err}`, `time.duration: time: invalid duration "x"`},
		{`local a = time.monotonic() time.sleep(0.02) local d = time.monotonic() - a return {status="OK", output=tostring(d >= 0.02)}`, "true"},
		{`time.sleep("10ms") return {status="OK", output="slept"}`, "slept"},
		{out(`math.abs(time.now() - ` + strconv.FormatInt(now, 10) + `) < 5`), "true"},
		{out(`os.time() > 1700000000 and os.date("!%Y", 0)`), "1970"},
	}
	for _, c := range cases {
		if got := evalLua(t, typ, c.src); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s\n got %q\nwant %q", c.src, got, c.want)
		}
	}
	for src, want := range map[string]string{
		`time.sleep(-1)`:                          "time.sleep: invalid duration",
		`time.format(1e300)`:                      "time out of range",
		`time.parse("x", "rfc3339", "Mars/Base")`: "unknown time zone",
	} {
		wantStatus(t, runSrc(t, typ, src), model.Unknown, want)
	}
}

// Option tables are strict: a misspelt option is an error, not a default.
func TestUnknownOptions(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	for src, want := range map[string]string{
		`http.get("http://127.0.0.1:1/", {timout = 1})`:       `http.get: unknown option timout`,
		`tcp.connect("127.0.0.1", 1, {tsl = true})`:           `tcp.connect: unknown option tsl`,
		`dns.lookup("x", "A", {sever = "1.1.1.1"})`:           `dns.lookup: unknown option sever`,
		`json.encode({}, {pretty = true})`:                    `json.encode: unknown option pretty`,
		`http.get("http://127.0.0.1:1/", {timeout = "soon"})`: `http.get: option timeout: invalid duration "soon"`,
		`http.get("http://127.0.0.1:1/", {headers = "x"})`:    `option headers must be a table`,
		`http.get("http://127.0.0.1:1/", {insecure = "yes"})`: `option insecure must be a boolean`,
		`dns.lookup("x", "BOGUS")`:                            `unsupported type BOGUS`,
		`tcp.connect("x", 70000)`:                             `port must be 0-65535`,
	} {
		wantStatus(t, runSrc(t, typ, src), model.Unknown, want)
	}
}

func TestExec(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	dir := t.TempDir()
	got := evalLua(t, typ, `
local r = assert(exec.run("/bin/sh", {"-c", "echo out; echo err >&2; echo $FOO; pwd; exit 3"}, {env = {FOO = "bar"}, dir = ctx.config.dir}))
return {status="OK", output=string.format("%d|%s|%s|%s", r.code, r.stdout:gsub("\n", ","), r.stderr:gsub("\n", ""), tostring(r.timed_out))}`,
		withAllow("exec"), withConfig(map[string]any{"dir": dir}))
	if want := "3|out,bar," + dir + ",|err|false"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	got = evalLua(t, typ, `local r = assert(exec.run("sleep", {"10"}, {timeout = 0.2})) return {status="OK", output=tostring(r.timed_out) .. " " .. r.code .. " " .. tostring(r.signal)}`,
		withAllow("exec"))
	if got != "true -1 terminated" {
		t.Fatalf("timeout: %q", got)
	}
	got = evalLua(t, typ, `local r, err = exec.run("/nonexistent/cmd") return {status="OK", output=tostring(r) .. " " .. err}`, withAllow("exec"))
	if !strings.HasPrefix(got, "nil exec.run /nonexistent/cmd:") {
		t.Fatalf("missing command: %q", got)
	}
	got = evalLua(t, typ, `local r = assert(exec.run("yes", {}, {max_output = 100, timeout = 0.3})) return {status="OK", output=#r.stdout .. " " .. tostring(r.truncated)}`, withAllow("exec"))
	if got != "100 true" {
		t.Fatalf("cap: %q", got)
	}
	// The script's own timeout kills the command's whole process group.
	pidFile := filepath.Join(dir, "child.pid")
	r := prepareSrc(t, typ, `exec.run("/bin/sh", {"-c", "sleep 30 & echo $! > `+pidFile+`; wait"})`, withAllow("exec"))
	res := runWith(r, 500*time.Millisecond, nil)
	wantStatus(t, res, model.Unknown, "timed out")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// SIGKILL is delivered asynchronously: the group was signalled before
	// exec.run returned, but the grandchild may take a moment to die.
	for deadline := time.Now().Add(5 * time.Second); alive(strings.TrimSpace(string(b))); {
		if time.Now().After(deadline) {
			t.Fatal("the command's child survived the timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The executor is the one configured (the agent passes the nagios
	// type's, which owns the plugin concurrency limit).
	called := false
	typ2, _ := newTestType(t, Options{Exec: func(ctx context.Context, argv []string, o nagios.ExecOptions) nagios.ExecResult {
		called = true
		return nagios.ExecResult{ExitCode: 0, Stdout: []byte(strings.Join(argv, " "))}
	}})
	if got := evalLua(t, typ2, `return {status="OK", output=exec.run("x", {"y", 2}).stdout}`, withAllow("exec")); got != "x y 2" || !called {
		t.Fatalf("custom executor: %q %v", got, called)
	}
}

func alive(pid string) bool {
	_, err := os.Stat("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	b, _ := os.ReadFile("/proc/" + pid + "/stat")
	// A zombie is dead.
	return !strings.Contains(string(b), ") Z ")
}
