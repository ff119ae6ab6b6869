package lua

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
)

func TestCheckFunction(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	res := runSrc(t, typ, `
function check(ctx)
  return { status = "WARNING", output = ctx.check .. " on " .. ctx.target .. " within " .. ctx.timeout .. "s",
           long_output = "line2", metrics = { x = 1 } }
end`, withTarget("db1"), withTimeout(3*time.Second))
	wantStatus(t, res, model.Warning)
	if res.Output != "test on db1 within 3s" || res.LongOutput != "line2" {
		t.Fatalf("output %q long %q", res.Output, res.LongOutput)
	}
	if m := metric(t, res, "x"); m.Value != model.Int(1) {
		t.Fatalf("x = %v (%v)", m.Value, m.Value.Kind())
	}
	if res.Duration <= 0 {
		t.Fatalf("duration not set")
	}
}

func TestChunkReturningTable(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	// ctx is both the chunk's argument and a global.
	res := runSrc(t, typ, `local c = ... ; return { status = 2, output = c.target .. "/" .. ctx.target }`, withTarget("h"))
	wantStatus(t, res, model.Critical)
	if res.Output != "h/h" {
		t.Fatalf("output %q", res.Output)
	}
}

func TestConfigAndPrevious(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	r := prepareSrc(t, typ, `
function check(ctx)
  local c = ctx.config
  local prev = ctx.previous
  local out = c.name .. " " .. c.port .. " " .. tostring(c.tls) .. " " .. c.list[2] .. " " .. c.nested.k
  if prev then
    out = out .. " prev=" .. prev.status .. "/" .. prev.status_code .. " n=" .. prev.metrics.n .. " s=" .. prev.metrics.s
  end
  return { status = "OK", output = out, metrics = { n = (prev and prev.metrics.n or 0) + 1 } }
end`, withConfig(map[string]any{"name": "svc", "port": int64(8080), "tls": true, "list": []any{"a", "b"},
		"nested": map[string]any{"k": "v"}}))
	res := runWith(r, 5*time.Second, nil)
	wantStatus(t, res, model.OK)
	if res.Output != "svc 8080 true b v" {
		t.Fatalf("output %q", res.Output)
	}
	prev := res
	prev.Metrics = append(prev.Metrics, model.Metric{Name: "s", Value: model.String("text")})
	prev.Status = model.Warning
	res2 := runWith(r, 5*time.Second, &prev)
	if res2.Output != "svc 8080 true b v prev=WARNING/1 n=1 s=text" {
		t.Fatalf("output %q", res2.Output)
	}
	if m := metric(t, res2, "n"); m.Value != model.Int(2) {
		t.Fatalf("n = %v", m.Value)
	}
}

func TestStatusForms(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	for src, want := range map[string]model.Status{
		`return {status="OK"}`: model.OK, `return {status="warn"}`: model.Warning, `return {status="CRITICAL"}`: model.Critical,
		`return {status="UNKNOWN"}`: model.Unknown, `return {status=0}`: model.OK, `return {status=1}`: model.Warning,
		`return {status=2}`: model.Critical, `return {status=3}`: model.Unknown, `return {status="2"}`: model.Critical,
	} {
		res := runSrc(t, typ, src)
		if res.Status != want || strings.HasPrefix(res.Output, "lua") {
			t.Errorf("%s: %v %q, want %v", src, res.Status, res.Output, want)
		}
	}
}

// Every invalid return is UNKNOWN with a message naming the mistake.
func TestInvalidResults(t *testing.T) {
	typ, _ := newTestType(t, Options{MaxMetrics: 5})
	cases := []struct{ src, want string }{
		{`return 42`, "returned a number (42), want a table"},
		{`return "OK"`, `returned a string ("OK")`},
		{`x = 1`, "neither returned a result table nor defined function check(ctx)"},
		{`function check() return nil end`, "check(ctx) of"},
		{`function check() return true end`, "returned a boolean (true)"},
		{`return {status="GOOD"}`, `invalid status "GOOD"`},
		{`return {status=7}`, "invalid status 7"},
		{`return {status=1.5}`, "invalid status 1.5"},
		{`return {status={}}`, "status is a table"},
		{`return {stauts="OK"}`, `unknown key "stauts"`},
		{`return {"OK"}`, "has a key that is a number"},
		{`return {output={}}`, "output is a table, want a string"},
		{`return {long_output=true}`, "long_output is a boolean"},
		{`return {metrics=5}`, "metrics is a number (5), want a table"},
		{`return {metrics={5}}`, "metric names must be non-empty strings"},
		{`return {metrics={[""]=1}}`, "metric names must be non-empty strings"},
		{`return {metrics={x=function() end}}`, `metric "x": value is a function`},
		{`return {metrics={x={unit="s"}}}`, `metric "x": value is missing`},
		{`return {metrics={x={value=1, colour="red"}}}`, `metric "x": metric has unknown key "colour"`},
		{`return {metrics={x={value=1, warn="abc"}}}`, `metric "x": warn: threshold "abc"`},
		{`return {metrics={x={value=1, crit="5:1"}}}`, `start 5 is greater than end 1`},
		{`return {metrics={x={value=1, warn={}}}}`, `warn is a table, want a range`},
		{`return {metrics={x={value="up", warn="1"}}}`, `warn/crit need a numeric value`},
		{`return {metrics={x={value=1.5, type="int"}}}`, `value 1.5 is not a 64-bit integer`},
		{`return {metrics={x={value=-1, type="uint"}}}`, `not an unsigned 64-bit integer`},
		{`return {metrics={x={value="a", type="float"}}}`, `value is a string ("a") but type is float`},
		{`return {metrics={x={value=1, type="bignum"}}}`, `type "bignum"`},
		{`return {metrics={x={value=1, min="0"}}}`, `min is a string ("0"), want a number`},
		{`return {metrics={a=1,b=2,c=3,d=4,e=5,f=6}}`, "more than 5 metrics"},
	}
	for _, c := range cases {
		res := runSrc(t, typ, c.src)
		if res.Status != model.Unknown || !strings.Contains(res.Output, c.want) {
			t.Errorf("%s:\n got %v %q\nwant UNKNOWN containing %q", c.src, res.Status, res.Output, c.want)
		}
	}
}

func TestMetricKinds(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	res := runSrc(t, typ, `return { status = "OK", metrics = {
  int = 42, neg = -7, float = 0.25, big = 2^70, str = "up", yes = true, no = false,
  forced_float = { value = 3, type = "float" }, counter = { value = 2^63, type = "uint" },
  detailed = { value = 12.5, unit = "ms", warn = 100, crit = "200", min = 0, max = 1000 },
  nan = 0/0, inf = 1/0 } }`)
	wantStatus(t, res, model.OK)
	want := map[string]model.Value{
		"int": model.Int(42), "neg": model.Int(-7), "float": model.Float(0.25), "big": model.Float(1180591620717411303424),
		"str": model.String("up"), "yes": model.Int(1), "no": model.Int(0), "forced_float": model.Float(3),
		"counter": model.Uint(1 << 63), "detailed": model.Float(12.5),
	}
	for name, v := range want {
		if got := metric(t, res, name).Value; got != v {
			t.Errorf("%s = %v (%v), want %v (%v)", name, got, got.Kind(), v, v.Kind())
		}
	}
	if f, _ := metric(t, res, "nan").Value.Float(); f == f {
		t.Errorf("nan = %v", f)
	}
	d := metric(t, res, "detailed")
	if d.Unit != "ms" || d.Warn != "100" || d.Crit != "200" || d.Min == nil || *d.Min != 0 || d.Max == nil || *d.Max != 1000 {
		t.Errorf("detailed = %+v", d)
	}
	// Sorted by name for determinism.
	for i := 1; i < len(res.Metrics); i++ {
		if res.Metrics[i-1].Name >= res.Metrics[i].Name {
			t.Fatalf("metrics not sorted: %v before %v", res.Metrics[i-1].Name, res.Metrics[i].Name)
		}
	}
}

func TestOutputLines(t *testing.T) {
	typ, _ := newTestType(t, Options{MaxOutput: 200})
	res := runSrc(t, typ, `return { status = "OK", output = "first\nsecond\nthird", long_output = "more" }`)
	if res.Output != "first" || res.LongOutput != "second\nthird\nmore" {
		t.Fatalf("output %q long %q", res.Output, res.LongOutput)
	}
	res = runSrc(t, typ, `return { status = "OK", output = string.rep("x", 1000) }`)
	if len(res.Output) > 200 || !strings.Contains(res.Output, "truncated") {
		t.Fatalf("output of %d bytes: %q", len(res.Output), res.Output)
	}
}

func TestScriptErrorTraceback(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	p := writeScript(t, "broken.lua", `
local function inner()
  local t = nil
  return t.field
end
function check(ctx)
  local v = inner()
  return v
end`)
	res := runWith(prepareFile(t, typ, p), 5*time.Second, nil)
	wantStatus(t, res, model.Unknown, "lua error: ", "broken.lua:4:", "attempt to index")
	for _, s := range []string{"stack traceback:", "broken.lua:4: in function 'inner'", "broken.lua:7:"} {
		if !strings.Contains(res.LongOutput, s) {
			t.Errorf("long output lacks %q:\n%s", s, res.LongOutput)
		}
	}
	res = runSrc(t, typ, `error({message = "structured"})`)
	wantStatus(t, res, model.Unknown, "lua error: structured")
}

func TestPrepareErrors(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	cases := []struct {
		s    *Settings
		want string
	}{
		{&Settings{}, "script is required"},
		{&Settings{Script: "/nonexistent/x.lua"}, "no such file"},
		{&Settings{Script: writeScript(t, "bad.lua", "function (")}, "syntax error"},
		{&Settings{Script: writeScript(t, "bin.lua", "\x1bLua\x51\x00")}, "binary (precompiled) chunks are not allowed"},
		{&Settings{Script: "builtin:nope"}, "no such builtin script"},
		{&Settings{Script: "builtin:../x"}, "invalid builtin name"},
		{&Settings{Script: "builtin:http", Allow: []string{"root"}}, `unknown capability "root"`},
		{&Settings{Script: "builtin:http", MaxInstructions: -1}, "max_instructions must be >= 0"},
		{&Settings{Script: "builtin:http", Config: map[string]any{"a": map[string]any{"b": make(chan int)}}}, "config: a.b: unsupported value"},
	}
	for _, c := range cases {
		_, err := typ.Prepare(&model.Check{Name: "x", Type: "lua", Timeout: time.Second, Settings: c.s})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.s, err, c.want)
		}
	}
	if _, err := typ.Prepare(&model.Check{Name: "x", Settings: struct{}{}}); err == nil {
		t.Error("wrong settings type accepted")
	}
}

func TestRelativeScriptPath(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	p := writeScript(t, "rel.lua", `return {status="OK", output="relative"}`)
	r, err := typ.Prepare(&model.Check{Name: "x", Timeout: time.Second, Dir: strings.TrimSuffix(p, "/rel.lua"),
		Settings: &Settings{Script: "rel.lua"}})
	if err != nil {
		t.Fatal(err)
	}
	if res := runWith(r, 5*time.Second, nil); res.Output != "relative" {
		t.Fatalf("%+v", res)
	}
}

func TestShebangLineKeepsLineNumbers(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	res := runSrc(t, typ, "#!/usr/bin/env lua\n\nerror('on line 3')")
	wantStatus(t, res, model.Unknown, "check.lua:3: on line 3")
}

// Every run has fresh globals: nothing a run defines or changes, in its
// globals or in library tables, is visible to the next run, even on the
// same pooled state.
func TestFreshGlobalsPerRun(t *testing.T) {
	typ, _ := newTestType(t, Options{MaxIdle: 1})
	r := prepareSrc(t, typ, `
local seen = {}
seen[#seen+1] = "leak=" .. tostring(leak)
seen[#seen+1] = "upper=" .. tostring(string.upper == nil)
seen[#seen+1] = "mathpi=" .. tostring(math.pi)
seen[#seen+1] = "tbl=" .. tostring(table.marker)
seen[#seen+1] = "config=" .. tostring(ctx.config.added)
leak = "yes"
string.upper = nil
math.pi = 3
table.marker = true
ctx.config.added = 1
_G.other = 1
rawset(_G, "raw", 1)
return { status = "OK", output = table.concat(seen, " ") }`)
	for i := 0; i < 3; i++ {
		res := runWith(r, 5*time.Second, nil)
		if want := "leak=nil upper=false mathpi=3.141592653589793 tbl=nil config=nil"; res.Output != want {
			t.Fatalf("run %d: %q, want %q", i, res.Output, want)
		}
	}
	// Another check on the same (single) pooled state sees nothing either.
	res := runSrc(t, typ, `return {status="OK", output=tostring(leak)..tostring(other)..tostring(raw)..tostring(("x").upper ~= nil)}`)
	if res.Output != "nilnilniltrue" {
		t.Fatalf("second script saw %q", res.Output)
	}
	if n := typ.pool.idleStates(); n != 1 {
		t.Fatalf("%d idle states, want the 1 reused", n)
	}
}

func TestPoolBounded(t *testing.T) {
	typ, _ := newTestType(t, Options{MaxIdle: 3})
	r := prepareSrc(t, typ, `time.sleep(0.05) return {status="OK"}`)
	done := make(chan model.Result)
	for i := 0; i < 20; i++ {
		go func() { done <- runWith(r, 5*time.Second, nil) }()
	}
	for i := 0; i < 20; i++ {
		wantStatus(t, <-done, model.OK)
	}
	if n := typ.pool.idleStates(); n != 3 {
		t.Fatalf("%d idle states after 20 concurrent runs, want the bound 3", n)
	}
	typ.Close()
	if n := typ.pool.idleStates(); n != 0 {
		t.Fatalf("%d idle states after Close", n)
	}
}

// A failed run's state is not reused.
func TestFailedStateNotPooled(t *testing.T) {
	typ, _ := newTestType(t, Options{MaxIdle: 4})
	res := runSrc(t, typ, `error("x")`)
	wantStatus(t, res, model.Unknown)
	if n := typ.pool.idleStates(); n != 0 {
		t.Fatalf("%d idle states after a failed run", n)
	}
	runSrc(t, typ, `return {status="OK"}`)
	if n := typ.pool.idleStates(); n != 1 {
		t.Fatalf("%d idle states after a good run", n)
	}
}

// Reload: Prepare again picks up a changed script; the old compiled
// script is released once its runner is gone.
func TestReloadPicksUpChangesAndReleasesOld(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	p := writeScript(t, "reload.lua", `return {status="OK", output="v1"}`)
	chk := &model.Check{Name: "r", Timeout: time.Second, Settings: &Settings{Script: p}}
	r1, err := typ.Prepare(chk)
	if err != nil {
		t.Fatal(err)
	}
	if res := runWith(r1, 5*time.Second, nil); res.Output != "v1" {
		t.Fatal(res.Output)
	}
	// Same source: the compiled script is shared.
	r1b, _ := typ.Prepare(chk)
	if r1b.(*runner).s != r1.(*runner).s {
		t.Fatal("same script compiled twice")
	}
	if err := os.WriteFile(p, []byte(`return {status="WARNING", output="v2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r2, err := typ.Prepare(chk)
	if err != nil {
		t.Fatal(err)
	}
	if res := runWith(r2, 5*time.Second, nil); res.Output != "v2" || res.Status != model.Warning {
		t.Fatalf("after change: %+v", res)
	}
	r1.(checktype.Closer).Close()
	r1b.(checktype.Closer).Close()
	if res := runWith(r1, 5*time.Second, nil); res.Status != model.Unknown || !strings.Contains(res.Output, "removed") {
		t.Fatalf("closed runner ran: %+v", res)
	}
	if typ.scripts.size() != 2 {
		t.Fatalf("%d cached scripts, want 2", typ.scripts.size())
	}
	r1, r1b = nil, nil
	deadline := time.Now().Add(5 * time.Second)
	for typ.scripts.size() != 1 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := typ.scripts.size(); n != 1 {
		t.Fatalf("%d cached scripts after the old runners went away, want 1", n)
	}
	runtime.KeepAlive(r2)
}

func TestRunFile(t *testing.T) {
	p := writeScript(t, "cli.lua", `return {status = "CRITICAL", output = ctx.target .. " " .. ctx.config.k .. " " .. ctx.check}`)
	res, err := RunFile(context.Background(), p, RunOptions{Target: "t1", Config: map[string]any{"k": "v"}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != model.Critical || res.Output != "t1 v cli" || res.Check != "cli" || res.Target != "t1" || res.Time.IsZero() {
		t.Fatalf("%+v", res)
	}
	if _, err := RunFile(context.Background(), writeScript(t, "bad.lua", "return {"), RunOptions{}); err == nil ||
		!strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("syntax error: %v", err)
	}
	res, err = RunFile(context.Background(), p, RunOptions{Timeout: time.Second})
	if err != nil || res.Status != model.Unknown || !strings.Contains(res.Output, "cannot perform concat operation between nil") {
		t.Fatalf("missing config key: %v %+v", err, res)
	}
}

func TestBuiltinsEmbedded(t *testing.T) {
	names := Builtins()
	want := []string{"dns", "http", "postgres", "tcp", "tls"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("builtins %v, want %v", names, want)
	}
	typ, _ := newTestType(t, Options{})
	for _, n := range names {
		if _, err := typ.Prepare(&model.Check{Name: n, Timeout: time.Second, Settings: &Settings{Script: "builtin:" + n}}); err != nil {
			t.Errorf("builtin:%s: %v", n, err)
		}
	}
}

func TestPrint(t *testing.T) {
	typ, logs := newTestType(t, Options{})
	res := runSrc(t, typ, `print("hello", 42, nil) log.warn("careful", "disk", "/var", "pct", 93.5) return {status="OK"}`)
	wantStatus(t, res, model.OK)
	out := logs.String()
	for _, s := range []string{`msg="hello\t42\tnil"`, "check=test", `level=WARN msg=careful`, "disk=/var", "pct=93.5"} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %q:\n%s", s, out)
		}
	}
}

func TestRequire(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	p := writeScript(t, "main.lua", `
local util = require("lib.util")
local again = require("lib.util")
return {status = "OK", output = util.greet(ctx.target) .. " " .. tostring(util == again) .. " " .. util.loads}`)
	dir := strings.TrimSuffix(p, "/main.lua")
	if err := os.MkdirAll(dir+"/lib", 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dir+"/lib/util.lua", []byte(`loads = (loads or 0) + 1
return { greet = function(n) return "hi " .. n end, loads = loads }`), 0o644)
	r := prepareFile(t, typ, p, withAllow("require"), withTarget("x"))
	for i := 0; i < 2; i++ {
		res := runWith(r, 5*time.Second, nil)
		wantStatus(t, res, model.OK)
		if res.Output != "hi x true 1" {
			t.Fatalf("run %d: %q", i, res.Output)
		}
	}
	// Without the grant, and outside the directory.
	res := runWith(prepareFile(t, typ, p), 5*time.Second, nil)
	wantStatus(t, res, model.Unknown, `require is not allowed for this check: add "require"`)
	for _, name := range []string{"../secret", "/etc/passwd", ".hidden", "a/b"} {
		res := runSrc(t, typ, `require("`+name+`")`, withAllow("require"))
		wantStatus(t, res, model.Unknown, "module names are dotted names")
	}
	res = runSrc(t, typ, `require("missing")`, withAllow("require"))
	wantStatus(t, res, model.Unknown, `require "missing": module not found`)
	// A symlink does not lead out of the script's directory.
	outside := writeScript(t, "outside.lua", `return {status = "OK", output = "escaped"}`)
	if err := os.Symlink(outside, dir+"/evil.lua"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dir+"/escape.lua", []byte(`return require("evil")`), 0o644)
	res = runWith(prepareFile(t, typ, dir+"/escape.lua", withAllow("require")), 5*time.Second, nil)
	wantStatus(t, res, model.Unknown, `require "evil":`, "path escapes from parent")
}
