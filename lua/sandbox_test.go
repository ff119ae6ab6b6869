package lua

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

// A CPU-bound loop stops at the check's timeout with UNKNOWN, and other
// checks keep running meanwhile.
func TestInfiniteLoopStopsAtTimeout(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	loop := prepareSrc(t, typ, `while true do end`, withTimeout(time.Second))
	quick := prepareSrc(t, typ, `return {status="OK", metrics={x=1}}`)

	var others atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if res := runWith(quick, 5*time.Second, nil); res.Status == model.OK {
				others.Add(1)
			}
		}
	}()
	start := time.Now()
	res := runWith(loop, time.Second, nil)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	wantStatus(t, res, model.Unknown, "timed out after 1s")
	if elapsed > 1500*time.Millisecond {
		t.Fatalf("the loop ran %v with a 1s timeout", elapsed)
	}
	if !strings.Contains(res.LongOutput, "check.lua:1") {
		t.Errorf("long output does not say where the script was stopped: %q", res.LongOutput)
	}
	if others.Load() == 0 {
		t.Fatal("no other check completed while the loop ran")
	}
	t.Logf("loop stopped after %v; %d other runs completed meanwhile", elapsed, others.Load())
}

// Ways to keep running past the timeout: catching the timeout error,
// coroutines, and module calls that block.
func TestTimeoutCannotBeEvaded(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answers
		}
	}()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	for _, src := range []string{
		`while true do pcall(function() while true do end end) end`,
		`while true do xpcall(function() while true do end end, function(e) return e end) end`,
		`coroutine.wrap(function() while true do end end)()`,
		`local co = coroutine.create(function() while true do coroutine.yield() end end) while true do coroutine.resume(co) end`,
		`time.sleep(30)`,
		`while true do pcall(time.sleep, 30) end`,
		`local c = assert(tcp.connect("` + silent.Addr().String() + `")) c:expect("never")`,
		`http.get("` + hang.URL + `")`,
		`local s = string.rep("a", 100000) while true do s:find("b", 1, true) end`,
	} {
		r := prepareSrc(t, typ, src, withTimeout(time.Second))
		start := time.Now()
		res := runWith(r, time.Second, nil)
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("%s: ran %v", src, elapsed)
		}
		if res.Status != model.Unknown || !(strings.Contains(res.Output, "timed out after 1s") || strings.Contains(res.Output, "context deadline exceeded")) {
			t.Errorf("%s: %v %q", src, res.Status, res.Output)
		}
	}
}

func TestInstructionBudget(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	for _, src := range []string{
		`local t = {} for i = 1, 1e9 do t[i] = i end`,
		`while true do end`,
		`local co = coroutine.wrap(function() while true do end end) co()`,
		`local ok = pcall(function() while true do end end) while true do end`,
	} {
		res := runSrc(t, typ, src, withMaxInstructions(1_000_000), withTimeout(30*time.Second))
		wantStatus(t, res, model.Unknown, "instruction limit of 1000000 exceeded (max_instructions)")
	}
	// A legitimate script under the budget is unaffected.
	res := runSrc(t, typ, `local s = 0 for i = 1, 1000 do s = s + i end return {status="OK", metrics={s=s}}`,
		withMaxInstructions(100_000))
	wantStatus(t, res, model.OK)
}

// Each way out of the sandbox fails with a message saying what is not
// allowed and, where a grant exists, which one.
func TestSandboxEscapes(t *testing.T) {
	typ, _ := newTestType(t, Options{MaxStringSize: 1 << 20})
	cases := []struct {
		name, src string
		allow     []string
		want      string
	}{
		{"os.execute", `os.execute("touch /tmp/recon-lua-escape")`, nil, `os.execute is not allowed for this check: add "os"`},
		{"os.getenv", `return {status="OK", output=os.getenv("HOME")}`, nil, `os.getenv is not allowed`},
		{"os.remove", `os.remove("/tmp/x")`, nil, `os.remove is not allowed`},
		{"os.exit even when granted", `os.exit(1)`, []string{"os"}, "os.exit is not available"},
		{"io.open", `io.open("/etc/passwd")`, nil, `module io is not allowed for this check: add "io"`},
		{"io.popen without exec", `io.popen("id")`, []string{"io"}, `io.popen is not allowed for this check: add "exec"`},
		{"debug", `debug.getregistry()`, nil, `module debug is not allowed`},
		{"exec", `exec.run("/bin/true")`, nil, `module exec is not allowed for this check: add "exec"`},
		{"pg", `pg.query("host=/run/postgresql", "select 1")`, nil, `module pg is not allowed`},
		{"loadfile", `loadfile("/etc/passwd")`, nil, "loadfile is not available in the recon Lua sandbox"},
		{"dofile", `dofile("/etc/passwd")`, nil, "dofile is not available in the recon Lua sandbox"},
		{"require", `require("os")`, nil, `require is not allowed for this check`},
		{"require path", `require("../../etc/passwd")`, []string{"require"}, "module names are dotted names"},
		{"getfenv", `getfenv(print)`, nil, "getfenv is not available"},
		{"setfenv", `setfenv(1, {})`, nil, "setfenv is not available"},
		{"module", `module("x")`, nil, "module is not available"},
		{"newproxy", `newproxy(true)`, nil, "newproxy is not available"},
		{"load bytecode", `assert(load("\27LuaQ\0\1\4\8\4\8\0"))`, nil, "binary (bytecode) chunks are not allowed"},
		{"loadstring bytecode", `assert(loadstring("\27Lua"))`, nil, "binary (bytecode) chunks are not allowed"},
		{"load reader bytecode", `local done = false
			assert(load(function() if done then return nil end done = true return "\27Lua" end))`, nil,
			"binary (bytecode) chunks are not allowed"},
		{"loaded text sees the sandbox", `load("return io.open('/etc/passwd')")()`, nil, "module io is not allowed"},
		{"huge load", `load(string.rep(" ", 300000))`, nil, ""},
		{"string.rep bomb", `string.rep("x", 1e10)`, nil, "string.rep: result of 10000000000 bytes exceeds the limit of 1048576 bytes"},
		{"string.rep method bomb", `("x"):rep(2^40)`, nil, "string.rep: result of"},
		{"string.rep separator bomb", `string.rep("", 1e9, "ab")`, nil, "string.rep: result of"},
		{"string.format width", `string.format("%0999999d", 1)`, nil, "invalid format (width too long)"},
		{"string.format args", `local s = string.rep("x", 600000) string.format("%s%s", s, s)`, nil, "string.format: result may exceed"},
		{"string.gsub bomb", `string.gsub(string.rep("a", 100000), "a", string.rep("b", 100))`, nil, "string.gsub: result exceeds the limit"},
		{"string.gsub function bomb", `local b = string.rep("b", 1000) string.gsub(string.rep("a", 10000), "a", function() return b end)`, nil, "string.gsub: result exceeds"},
		{"string.gsub capture bomb", `string.gsub(string.rep("a", 2000), "(a+)", string.rep("%1", 1000))`, nil, "string.gsub: result exceeds"},
		{"table.concat bomb", `local s = string.rep("x", 100000) local t = {} for i = 1, 100 do t[i] = s end table.concat(t)`, nil, "table.concat: result exceeds the limit"},
		{"re.gsub bomb", `re.gsub(string.rep("a", 100000), "a", string.rep("b", 100))`, nil, "re.gsub: result exceeds"},
		{"json.encode bomb", `local s = string.rep("x", 100000) local t = {} for i = 1, 100 do t[i] = s end assert(json.encode(t))`, nil, "result exceeds the limit of 1048576 bytes"},
		{"deep recursion", `local function f(n) return 1 + f(n + 1) end f(1)`, nil, "stack overflow"},
		{"deep pcall recursion", `local function f() pcall(f) error("x") end f() error("recursion ended")`, nil, ""},
		{"metamethod recursion", `local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) return t[k] end return t.x`, nil, "stack overflow"},
		{"unpack flood", `local t = {} for i = 1, 300000 do t[i] = i end unpack(t)`, nil, "overflow"},
		{"coroutine bomb", `for i = 1, 1e6 do coroutine.create(function() end) end`, nil, "more than 64 coroutines in one run"},
		{"coroutine.wrap bomb", `for i = 1, 1e6 do coroutine.wrap(function() end) end`, nil, "more than 64 coroutines in one run"},
		{"string metatable", `getmetatable("").__index.upper = nil`, nil, "attempt to index a non-table object(boolean)"},
		{"env metatable", `setmetatable(_G, nil)`, nil, "cannot change a protected metatable"},
		{"ctx metatable", `setmetatable(ctx, {})`, nil, "cannot change a protected metatable"},
		{"string.dump", `string.dump(print)`, nil, "attempt to call a non-function object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := runSrc(t, typ, c.src, withAllow(c.allow...), withTimeout(10*time.Second))
			if c.want == "" {
				// Must fail cleanly whatever the message.
				if res.Status != model.Unknown {
					t.Fatalf("%v %q", res.Status, res.Output)
				}
				return
			}
			wantStatus(t, res, model.Unknown, c.want)
		})
	}
	// The library is intact for the next run.
	res := runSrc(t, typ, `return {status="OK", output=("abc"):upper() .. string.rep("x", 2) .. tostring(getmetatable(""))}`)
	if res.Output != "ABCxxfalse" {
		t.Fatalf("after the escapes: %+v", res)
	}
}

func TestGrantedCapabilities(t *testing.T) {
	typ, _ := newTestType(t, Options{MaxIdle: 4})
	res := runSrc(t, typ, `return {status="OK", output=os.getenv("PATH") ~= nil and "env" or "noenv"}`, withAllow("os"))
	if res.Output != "env" {
		t.Fatalf("os granted: %+v", res)
	}
	if n := typ.pool.idleStates(); n != 1 {
		t.Fatalf("%d idle states after the os run, want 1", n)
	}
	res = runSrc(t, typ, `local f = assert(io.open("/etc/hostname")) f:close() return {status="OK", output="read"}`, withAllow("io"))
	if res.Output != "read" {
		t.Fatalf("io granted: %+v", res)
	}
	res = runSrc(t, typ, `return {status="OK", output=type(debug.getinfo(1))}`, withAllow("debug"))
	if res.Output != "table" {
		t.Fatalf("debug granted: %+v", res)
	}
	// States that ran with io or debug are not reused.
	if n := typ.pool.idleStates(); n != 0 {
		t.Fatalf("%d idle states after the io and debug runs, want 0", n)
	}
	// Text chunks may be loaded; they run in the run's environment.
	res = runSrc(t, typ, `x = 20 local f = assert(load("return x + 1")) local g = assert(loadstring("return ...")) return {status="OK", output=f() .. g("y")}`)
	if res.Output != "21y" {
		t.Fatalf("load: %+v", res)
	}
}

func TestCanceledContext(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	r := prepareSrc(t, typ, `return {status="OK"}`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := r.Run(ctx, nil)
	wantStatus(t, res, model.Unknown, "not run")

	loop := prepareSrc(t, typ, `while true do end`)
	cctx, cancelCause := context.WithCancelCause(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancelCause(errShutdown) }()
	res = loop.Run(cctx, nil)
	wantStatus(t, res, model.Unknown, "canceled: agent shutting down")
}

var errShutdown = &shutdownErr{}

type shutdownErr struct{}

func (*shutdownErr) Error() string { return "agent shutting down" }
