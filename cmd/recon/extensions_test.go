package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/internal/testutil"
)

var (
	examplesOnce sync.Once
	examplesDir  string
	examplesErr  error
)

// examplePlugin builds the example plugins (their own module) once and
// returns the path of one.
func examplePlugin(t *testing.T, name string) string {
	t.Helper()
	examplesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "recon-examples")
		if err != nil {
			examplesErr = err
			return
		}
		examplesDir = dir
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./hello", "./faulty")
		cmd.Dir = filepath.Join("..", "..", "plugins", "examples")
		if out, err := cmd.CombinedOutput(); err != nil {
			examplesErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if examplesErr != nil {
		t.Fatalf("build example plugins: %v", examplesErr)
	}
	return filepath.Join(examplesDir, name)
}

func helloPlugin(t *testing.T) string { return examplePlugin(t, "hello") }

// helloPluginSum is the hello plugin and its sha256 for the check's pin.
func helloPluginSum(t *testing.T) (string, string) {
	t.Helper()
	bin := helloPlugin(t)
	sum, err := fileSum(bin)
	if err != nil {
		t.Fatal(err)
	}
	return bin, sum
}

func TestLuaRunCLI(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "disk.lua")
	os.WriteFile(script, []byte(`
function check(ctx)
  local used = ctx.config.used
  local st = "OK"
  if used > 90 then st = "CRITICAL" elseif used > 80 then st = "WARNING" end
  return {status = st, output = "used " .. used .. "% on " .. ctx.target, metrics = {used = {value = used, unit = "%", warn = "80", crit = "90"}}}
end
`), 0o644)
	out, errOut, code := runCLI(t, nil, "lua", "run", script, "--target", "db1", "--set", "used=85")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (WARNING): %q %q", code, out, errOut)
	}
	if !strings.HasPrefix(out, "disk,") || !strings.Contains(out, "target=db1") || !strings.Contains(out, "used=85i") {
		t.Errorf("line protocol: %q", out)
	}
	out, _, code = runCLI(t, nil, "lua", "run", script, "--target", "db1", "--set", "used=95", "--format", "json")
	var r struct{ Status, Output string }
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 2 || r.Status != "CRITICAL" || r.Output != "used 95% on db1" {
		t.Errorf("json: exit %d %q (%v)", code, out, err)
	}

	// A script error is UNKNOWN with the traceback, an endless loop ends
	// at the timeout, a missing file is a clear error.
	bad := filepath.Join(dir, "bad.lua")
	os.WriteFile(bad, []byte("function check(ctx)\n  return nil + 1\nend\n"), 0o644)
	_, errOut, code = runCLI(t, nil, "lua", "run", bad)
	if code != 3 || !strings.Contains(errOut, "bad.lua:2") {
		t.Errorf("script error: exit %d, stderr %q", code, errOut)
	}
	loop := filepath.Join(dir, "loop.lua")
	os.WriteFile(loop, []byte("function check(ctx) while true do end end\n"), 0o644)
	out, _, code = runCLI(t, nil, "lua", "run", loop, "--timeout", "200ms")
	if code != 3 || !strings.Contains(out, "timed out") && !strings.Contains(out, "status_code=3i") {
		t.Errorf("endless loop: exit %d %q", code, out)
	}
	_, errOut, code = runCLI(t, nil, "lua", "run", filepath.Join(dir, "missing.lua"))
	if code != 3 || !strings.Contains(errOut, "missing.lua") {
		t.Errorf("missing file: exit %d %q", code, errOut)
	}
	_, errOut, code = runCLI(t, nil, "lua", "run", script, "--allow", "teleport")
	if code != 3 || !strings.Contains(errOut, "teleport") {
		t.Errorf("unknown capability: exit %d %q", code, errOut)
	}
}

func TestPluginInspectCLI(t *testing.T) {
	bin, sum := helloPluginSum(t)
	out, errOut, code := runCLI(t, nil, "plugin", "inspect", bin)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"name:        hello", "kind:        check", "sha256:      " + sum, `"greeting"`, `sha256 = "` + sum + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, errOut, code = runCLI(t, nil, "plugin", "inspect", "--format", "json", bin)
	var info struct {
		Name, Kind, SHA256 string
		ConfigSchema       map[string]any `json:"config_schema"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || code != 0 || info.Name != "hello" || info.SHA256 != sum || info.ConfigSchema["type"] != "object" {
		t.Errorf("json: exit %d %q %q (%v)", code, out, errOut, err)
	}
	// Not a plugin: a clear error, no hang.
	_, errOut, code = runCLI(t, nil, "plugin", "inspect", "--timeout", "5s", "/bin/true")
	if code != 1 || !strings.Contains(errOut, "recon plugin inspect:") {
		t.Errorf("not a plugin: exit %d %q", code, errOut)
	}
}

// TestAgentRunsLuaPluginsAndTraps: the real binary with one check of each
// extension type and a trap receiver fed by the real snmptrap; results of
// all three reach the sink and /metrics shows their figures.
func TestAgentRunsLuaPluginsAndTraps(t *testing.T) {
	snmptrap := testutil.RequireBinary(t, "snmptrap")
	bin, sum := helloPluginSum(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.lp")
	os.WriteFile(filepath.Join(dir, "up.lua"), []byte(`function check(ctx) return {status="OK", output="up", metrics={answer=7}} end`), 0o644)
	os.WriteFile(filepath.Join(dir, "slow.lua"), []byte(`function check(ctx) while true do end end`), 0o644)
	apiPort, trapPort := freePort(t), freeUDPPort(t)
	cfgPath := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfgPath, []byte(`
[agent]
name = "e2e"
listen = "127.0.0.1:`+apiPort+`"
data_dir = "`+dir+`/data"
[[check]]
name = "lua-up"
type = "lua"
script = "up.lua"
period = "200ms"
[[check]]
name = "lua-slow"
type = "lua"
script = "slow.lua"
period = "500ms"
timeout = "100ms"
[[check]]
name = "hello"
type = "plugin"
path = "`+bin+`"
sha256 = "`+sum+`"
config = { greeting = "hi" }
target = "world"
period = "200ms"
[[snmp_trap]]
listen = "127.0.0.1:`+trapPort+`"
communities = ["public"]
[[sink]]
type = "lineproto"
output = "file"
path = "`+out+`"
fsync = "never"
`), 0o644)
	if _, errOut, code := runCLI(t, nil, "config", "check", "-c", cfgPath); code != 0 {
		t.Fatalf("config check: exit %d %s", code, errOut)
	}
	p := startAgent(t, cfgPath)
	waitFor(t, "lua and plugin results", 20*time.Second, func() bool {
		return countLines(out, "lua-up,") >= 3 && countLines(out, "hello,") >= 3 && countLines(out, "lua-slow,") >= 1
	})
	if countLines(out, "answer=42i") == 0 || countLines(out, "answer=7i") == 0 {
		t.Errorf("metrics of the plugin or Lua check missing:\n%s", readFile(out))
	}
	cmd := exec.Command(snmptrap, "-v2c", "-c", "public", "127.0.0.1:"+trapPort, "12345",
		"1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.3", "i", "3")
	cmd.Env = append(os.Environ(), "SNMPCONFPATH="+dir, "SNMP_PERSISTENT_DIR="+dir, "HOME="+dir, "MIBS=", "MIBDIRS="+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("snmptrap: %v %s", err, b)
	}
	waitFor(t, "trap stored", 10*time.Second, func() bool { return countLines(out, "snmptrap,") >= 1 })
	if countLines(out, "linkDown") == 0 {
		t.Errorf("trap not translated to linkDown:\n%s\n%s", readFile(out), p.log())
	}
	resp, err := http.Get("http://127.0.0.1:" + apiPort + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`recon_plugin_running{kind="check",plugin="hello"} 1`,
		`recon_source_events_total{event="received",source="snmp_trap:snmptrap"}`,
		`recon_component_events_total{component="lua",event="timeouts"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(string(body), `recon_component_events_total{component="lua",event="timeouts"} 0`) {
		t.Error("the endless Lua loop's timeouts are not counted")
	}
	// The UI is served.
	resp, err = http.Get("http://127.0.0.1:" + apiPort + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<html") {
		t.Errorf("UI: %d %.200s", resp.StatusCode, body)
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, port, _ := net.SplitHostPort(c.LocalAddr().String())
	return port
}

// TestAgentSupervisesFaultyPlugins (issue 6): through the real binary, a
// plugin that exits mid-run, one that hangs, one that crashes and one
// whose checksum is wrong each make their check UNKNOWN with the reason,
// crashed ones are restarted, and the agent's other checks keep running
// on time.
func TestAgentSupervisesFaultyPlugins(t *testing.T) {
	dummy := testutil.RequireBinary(t, "/usr/lib/nagios/plugins/check_dummy")
	faulty, hello := examplePlugin(t, "faulty"), helloPlugin(t)
	sum, err := fileSum(faulty)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.lp")
	apiPort := freePort(t)
	var b strings.Builder
	fmt.Fprintf(&b, `
[agent]
listen = "127.0.0.1:%s"
data_dir = %q
[[check]]
name = "steady"
type = "nagios"
command = "%s 0 steady"
period = "200ms"
[[check]]
name = "wrong-sum"
type = "plugin"
path = %q
sha256 = "%s"
config = { greeting = "hi" }
period = "500ms"
[[sink]]
type = "lineproto"
output = "file"
path = %q
fsync = "never"
`, apiPort, filepath.Join(dir, "data"), dummy, hello, strings.Repeat("0", 64), out)
	for _, mode := range []string{"exit", "hang", "panic", "ok"} {
		// Each mode in its own process: the modes share the binary, so
		// distinct environments keep them apart.
		fmt.Fprintf(&b, "[[check]]\nname = %q\ntype = \"plugin\"\npath = %q\nsha256 = %q\nconfig = { mode = %q }\nenv = { MODE = %q }\nperiod = \"500ms\"\ntimeout = \"300ms\"\n",
			"faulty-"+mode, faulty, sum, mode, mode)
	}
	cfgPath := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfgPath, []byte(b.String()), 0o644)
	p := startAgent(t, cfgPath)
	start := time.Now()

	type last struct {
		Status, Output string
	}
	lastOf := func() map[string]last {
		resp, err := http.Get("http://127.0.0.1:" + apiPort + "/api/v1/checks")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var body struct {
			Checks []struct {
				Name string
				Runs uint64
				Last *last
			}
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil {
			return nil
		}
		m := map[string]last{}
		for _, c := range body.Checks {
			if c.Last != nil && c.Runs > 0 {
				m[c.Name] = *c.Last
			}
		}
		return m
	}
	want := map[string]string{ // check → what its UNKNOWN output must say
		"faulty-exit":  "exit",
		"faulty-hang":  "",
		"faulty-panic": "",
		"wrong-sum":    "checksum",
	}
	var got map[string]last
	waitFor(t, "every faulty check reported", 20*time.Second, func() bool {
		got = lastOf()
		for name := range want {
			if _, ok := got[name]; !ok {
				return false
			}
		}
		_, ok := got["faulty-ok"]
		return ok
	})
	for name, reason := range want {
		l := got[name]
		if l.Status != "UNKNOWN" || !strings.Contains(strings.ToLower(l.Output), reason) {
			t.Errorf("%s: %s %q, want UNKNOWN mentioning %q", name, l.Status, l.Output, reason)
		}
	}
	if l := got["faulty-ok"]; l.Status != "OK" {
		t.Errorf("the well-behaved mode of the same binary: %s %q", l.Status, l.Output)
	}
	// Let the supervisor go through a few restarts.
	time.Sleep(4 * time.Second)
	elapsed := time.Since(start)
	// 200 ms period: the steady check must not have been held up.
	if n, min := countLines(out, "steady,"), int(elapsed/(200*time.Millisecond))*7/10; n < min {
		t.Errorf("steady check ran %d times in %v, want >= %d", n, elapsed, min)
	}
	resp, err := http.Get("http://127.0.0.1:" + apiPort + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `recon_plugin_restarts_total{kind="check",plugin="faulty"}`) ||
		strings.Contains(string(body), `recon_plugin_restarts_total{kind="check",plugin="faulty"} 0`) {
		t.Errorf("no plugin restarts in /metrics:\n%s", grepLines(string(body), "recon_plugin"))
	}
	select {
	case <-p.done:
		t.Fatalf("the agent died:\n%s", p.log())
	default:
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPluginsDieWithAgent: an agent killed with kill -9 cannot stop its
// plugins; the kernel does (a plugin left running would hold its
// resources and run forever).
func TestPluginsDieWithAgent(t *testing.T) {
	bin, sum := helloPluginSum(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfgPath, []byte(`
[agent]
listen = "127.0.0.1:`+freePort(t)+`"
data_dir = "`+dir+`/data"
[[check]]
name = "hello"
type = "plugin"
path = "`+bin+`"
sha256 = "`+sum+`"
period = "200ms"
[[sink]]
type = "lineproto"
output = "file"
path = "`+filepath.Join(dir, "out.lp")+`"
fsync = "never"
`), 0o644)
	p := startAgent(t, cfgPath)
	agent := p.cmd.Process.Pid
	var plugin int
	waitFor(t, "the plugin process", 20*time.Second, func() bool {
		plugin = childNamed(t, agent, "hello")
		return plugin != 0 && countLines(filepath.Join(dir, "out.lp"), "hello,") > 0
	})
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plugin to die with the agent", 10*time.Second, func() bool { return !alive(plugin) })
}

// childNamed returns the pid of a child of parent whose command is name
// (0 if none).
func childNamed(t *testing.T, parent int, name string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(s[j+1:])
		if len(f) > 1 && s[i+1:j] == name && f[1] == strconv.Itoa(parent) {
			return pid
		}
	}
	return 0
}

// alive: the process exists and is not a zombie waiting to be reaped.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
