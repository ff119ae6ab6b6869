package lua

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	glua "github.com/yuin/gopher-lua"

	"github.com/reconmon/recon/agent/model"
)

// LState sizing. The value stack starts small and may grow to
// registryMax slots (4 MiB of values), the call stack grows in segments up
// to callStackSize frames: deep recursion is a "stack overflow" error, not
// memory exhaustion, and an idle state stays around 30 KiB.
const (
	callStackSize = 500
	registryStart = 1024
	registryMax   = 1 << 18
	registryStep  = 1024
)

// state is one pooled LState with the sandbox built around it. The library
// tables it builds ("masters") are never handed to scripts: a run gets
// copies, so nothing a script does to them outlives the run.
type state struct {
	t        *Type
	L        *glua.LState
	envMeta  *glua.LTable // metatable of run environments
	ctxMeta  *glua.LTable // metatable of ctx tables
	base     map[string]glua.LValue
	masters  map[string]*glua.LTable
	metas    map[string]*glua.LTable // metatables of module userdata
	jsonNull *glua.LUserData
	bud      budget
	run      run
	// tainted states are closed after their run instead of pooled.
	tainted bool
}

// run is what the current run's Go functions need.
type run struct {
	ctx        context.Context // the check's context, for module calls
	r          *runner
	prev       *model.Result
	env        *glua.LTable
	ctxTbl     *glua.LTable
	closers    []func()
	loaded     map[string]glua.LValue // require cache of this run
	coroutines int
	log        *slog.Logger
}

func (rn *run) logger(t *Type) *slog.Logger {
	if rn.log == nil {
		rn.log = t.log.With("check", rn.r.name, "script", rn.r.s.name)
	}
	return rn.log
}

// onEnd registers cleanup for the end of the current run.
func (st *state) onEnd(f func()) { st.run.closers = append(st.run.closers, f) }

func newState(t *Type) *state {
	L := glua.NewState(glua.Options{SkipOpenLibs: true, CallStackSize: callStackSize, RegistrySize: registryStart,
		RegistryMaxSize: registryMax, RegistryGrowStep: registryStep, MinimizeStackMemory: true})
	st := &state{t: t, L: L, base: map[string]glua.LValue{}, masters: map[string]*glua.LTable{}, metas: map[string]*glua.LTable{}}

	openLib(L, glua.OpenBase, "")
	g := L.G.Global
	for _, name := range []string{"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
		"rawset", "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type", "unpack", "xpcall"} {
		st.base[name] = g.RawGetString(name)
	}
	st.base["_VERSION"] = glua.LString(glua.LuaVersion)
	st.base["print"] = L.NewFunction(st.print)
	st.base["load"] = L.NewFunction(st.load)
	st.base["loadstring"] = L.NewFunction(st.loadstring)
	st.base["require"] = L.NewFunction(st.require)
	// gopher-lua's collectgarbage runs a full Go GC; a script calling it
	// in a loop would stall the whole agent.
	st.base["collectgarbage"] = L.NewFunction(func(L *glua.LState) int { L.Push(glua.LNumber(0)); return 1 })

	// Strings have one metatable per state, reachable from any string:
	// its __index is the patched master string table, and it is locked so
	// scripts cannot reach or change it through getmetatable("").
	str := openLib(L, glua.OpenString, glua.StringLibName)
	st.patchString(str)
	if mt, ok := L.GetMetatable(glua.LString("")).(*glua.LTable); ok {
		mt.RawSetString("__metatable", glua.LFalse)
	}
	st.masters["string"] = str

	st.envMeta = L.NewTable()
	st.envMeta.RawSetString("__index", L.NewFunction(st.envIndex))
	st.envMeta.RawSetString("__metatable", glua.LFalse)
	st.ctxMeta = L.NewTable()
	st.ctxMeta.RawSetString("__index", L.NewFunction(st.ctxIndex))
	st.ctxMeta.RawSetString("__metatable", glua.LFalse)
	return st
}

// openLib calls a gopher-lua library opener and returns its module table.
func openLib(L *glua.LState, open glua.LGFunction, name string) *glua.LTable {
	L.Push(L.NewFunction(open))
	L.Push(glua.LString(name))
	L.Call(1, 1)
	mod, _ := L.Get(-1).(*glua.LTable)
	L.Pop(1)
	return mod
}

func (st *state) close() {
	if st.L != nil {
		st.L.Close()
		st.L = nil
	}
}

// forbidden globals of the base library, with the reason scripts see.
var forbidden = map[string]string{
	"dofile":     "dofile is not available in the recon Lua sandbox (scripts cannot run files; with allow = [\"require\"], use require)",
	"loadfile":   "loadfile is not available in the recon Lua sandbox (scripts cannot load files; with allow = [\"require\"], use require)",
	"getfenv":    "getfenv is not available in the recon Lua sandbox",
	"setfenv":    "setfenv is not available in the recon Lua sandbox",
	"module":     "module is not available in the recon Lua sandbox (return a table from the required file instead)",
	"newproxy":   "newproxy is not available in the recon Lua sandbox",
	"_printregs": "_printregs is not available in the recon Lua sandbox",
}

// moduleDef describes a library a script can use as a global.
type moduleDef struct {
	build func(st *state) *glua.LTable
	need  caps // capability required, 0 for always
}

var modules = map[string]moduleDef{
	"string":    {build: func(st *state) *glua.LTable { return st.masters["string"] }},
	"table":     {build: (*state).buildTable},
	"math":      {build: func(st *state) *glua.LTable { return openLib(st.L, glua.OpenMath, glua.MathLibName) }},
	"coroutine": {build: (*state).buildCoroutine},
	"os":        {build: (*state).buildOS},
	"io":        {build: (*state).buildIO, need: capIO},
	"debug":     {build: func(st *state) *glua.LTable { return openLib(st.L, glua.OpenDebug, glua.DebugLibName) }, need: capDebug},
	"http":      {build: (*state).buildHTTP},
	"tcp":       {build: (*state).buildTCP},
	"dns":       {build: (*state).buildDNS},
	"json":      {build: (*state).buildJSON},
	"re":        {build: (*state).buildRe},
	"time":      {build: (*state).buildTime},
	"log":       {build: (*state).buildLog},
	"tls":       {build: (*state).buildTLS},
	"exec":      {build: (*state).buildExec, need: capExec},
	"pg":        {build: (*state).buildPG, need: capPG},
}

// master returns the state's master table of a module, building it on
// first use so that a state pays only for the modules its runs touch.
func (st *state) master(name string) *glua.LTable {
	if m, ok := st.masters[name]; ok {
		return m
	}
	m := modules[name].build(st)
	st.masters[name] = m
	return m
}

// envIndex resolves a global the run has not defined: a base function, a
// copy of a library table, or an error naming the missing capability.
func (st *state) envIndex(L *glua.LState) int {
	env := L.CheckTable(1)
	key, ok := L.Get(2).(glua.LString)
	if !ok {
		L.Push(glua.LNil)
		return 1
	}
	name := string(key)
	var v glua.LValue = glua.LNil
	if name == "_G" {
		v = env
	} else if name == "ctx" {
		v = st.run.ctxTbl
	} else if b, ok := st.base[name]; ok {
		v = b
	} else if def, ok := modules[name]; ok {
		if def.need != 0 && st.run.r.caps&def.need == 0 {
			L.RaiseError("module %s is not allowed for this check: add %q to its allow list", name, name)
		}
		if def.need&(capIO|capDebug) != 0 {
			// io keeps default files, debug can change shared metatables:
			// such a state is not reused.
			st.tainted = true
		}
		v = st.libCopy(name)
	} else if msg, ok := forbidden[name]; ok {
		L.RaiseError("%s", msg)
	}
	if v != glua.LNil {
		env.RawSetString(name, v)
	}
	L.Push(v)
	return 1
}

// libCopy returns a fresh copy of a library for the current run.
func (st *state) libCopy(name string) *glua.LTable {
	if name == "os" {
		return st.osCopy()
	}
	m := st.master(name)
	cp := st.L.CreateTable(0, 24)
	m.ForEach(func(k, v glua.LValue) { cp.RawSet(k, v) })
	return cp
}

// ctxIndex answers the fields of ctx. config and previous are built on
// first use and kept for the run; most runs of most scripts never read them.
func (st *state) ctxIndex(L *glua.LState) int {
	t := L.CheckTable(1)
	key, _ := L.Get(2).(glua.LString)
	r := st.run.r
	var v glua.LValue = glua.LNil
	switch key {
	case "target":
		v = glua.LString(r.target)
	case "check":
		v = glua.LString(r.name)
	case "timeout":
		v = glua.LNumber(r.timeout.Seconds())
	case "config":
		v = goToLua(L, r.config)
		if v == glua.LNil {
			v = L.NewTable()
		}
		t.RawSetString("config", v)
	case "previous":
		if st.run.prev != nil {
			v = resultToLua(L, st.run.prev)
			t.RawSetString("previous", v)
		}
	}
	L.Push(v)
	return 1
}

func (st *state) buildTable() *glua.LTable {
	m := openLib(st.L, glua.OpenTable, glua.TabLibName)
	concat := m.RawGetString("concat").(*glua.LFunction).GFunction
	m.RawSetString("concat", st.L.NewFunction(func(L *glua.LState) int {
		tbl := L.CheckTable(1)
		sep := L.OptString(2, "")
		n := tbl.Len()
		total := 0
		for i := 1; i <= n; i++ {
			if s, ok := tbl.RawGetInt(i).(glua.LString); ok {
				total += len(s) + len(sep)
			} else {
				total += 24 + len(sep) // numbers
			}
			if total > st.t.opts.MaxStringSize {
				L.RaiseError("table.concat: result exceeds the limit of %d bytes", st.t.opts.MaxStringSize)
			}
		}
		return concat(L)
	}))
	return m
}

// buildOS builds the full os library minus os.exit, which would end the
// agent whatever the grants.
func (st *state) buildOS() *glua.LTable {
	m := openLib(st.L, glua.OpenOs, glua.OsLibName)
	m.RawSetString("exit", st.L.NewFunction(func(L *glua.LState) int {
		L.RaiseError("os.exit is not available in the recon Lua sandbox (return a result instead)")
		return 0
	}))
	return m
}

// osSafe are the os functions every script gets.
var osSafe = map[string]bool{"time": true, "clock": true, "date": true, "difftime": true}

func (st *state) osCopy() *glua.LTable {
	m := st.master("os")
	cp := st.L.CreateTable(0, 16)
	full := st.run.r.caps&capOS != 0
	m.ForEach(func(k, v glua.LValue) {
		name := k.String()
		if full || osSafe[name] {
			cp.RawSet(k, v)
			return
		}
		cp.RawSet(k, st.denied("os."+name, "os"))
	})
	return cp
}

// denied returns a function that fails with the capability to grant.
func (st *state) denied(what, capName string) *glua.LFunction {
	return st.L.NewFunction(func(L *glua.LState) int {
		L.RaiseError("%s is not allowed for this check: add %q to its allow list", what, capName)
		return 0
	})
}

func (st *state) buildIO() *glua.LTable {
	m := openLib(st.L, glua.OpenIo, glua.IoLibName)
	if st.run.r.caps&capExec == 0 {
		// io.popen runs a shell command: that is the exec capability.
		m.RawSetString("popen", st.denied("io.popen", "exec"))
	}
	return m
}

// wrapSource implements coroutine.wrap on top of the sandbox's create, so
// wrapped coroutines are counted and budgeted like created ones.
const wrapSource = `local create, resume, error = ...
local function pass(ok, ...)
  if not ok then error((...), 0) end
  return ...
end
return function(f)
  local co = create(f)
  return function(...) return pass(resume(co, ...)) end
end`

func (st *state) buildCoroutine() *glua.LTable {
	L := st.L
	m := openLib(L, glua.OpenCoroutine, glua.CoroutineLibName)
	create := m.RawGetString("create").(*glua.LFunction).GFunction
	myCreate := L.NewFunction(func(L *glua.LState) int {
		if st.run.coroutines >= st.t.opts.MaxCoroutines {
			L.RaiseError("coroutine.create: more than %d coroutines in one run", st.t.opts.MaxCoroutines)
		}
		st.run.coroutines++
		// gopher-lua derives a thread's context with context.WithCancel
		// from its creator's; with the budget as parent that could start a
		// goroutine calling its (single-goroutine) Done. Create the thread
		// without a context and give it the run's budget directly: its
		// instructions count, and the run's timeout stops it.
		L.RemoveContext()
		n := create(L)
		L.SetContext(&st.bud)
		if th, ok := L.Get(-1).(*glua.LState); ok {
			th.SetContext(&st.bud)
		}
		return n
	})
	m.RawSetString("create", myCreate)
	proto, err := compileChunk(wrapSource, "=coroutine.wrap")
	if err != nil {
		panic(err) // constant source
	}
	fn := L.NewFunctionFromProto(proto)
	fn.Env = L.NewTable()
	L.Push(fn)
	L.Push(myCreate)
	L.Push(m.RawGetString("resume"))
	L.Push(st.base["error"])
	L.Call(3, 1)
	m.RawSetString("wrap", L.Get(-1))
	L.Pop(1)
	return m
}

// print logs at info level with the check's name: an agent has no
// terminal, and `recon lua run` shows the log on stderr.
func (st *state) print(L *glua.LState) int {
	n := L.GetTop()
	parts := make([]string, n)
	for i := 1; i <= n; i++ {
		parts[i-1] = L.ToStringMeta(L.Get(i)).String()
	}
	st.run.logger(st.t).Info(strings.Join(parts, "\t"))
	return 0
}

// maxLoadSize caps chunks compiled at run time: gopher-lua's parser and
// compiler cannot be interrupted by the timeout.
const maxLoadSize = 256 << 10

// loadText compiles source text into a function of the run's environment.
// Binary chunks are refused: gopher-lua cannot load them anyway, and
// unchecked bytecode is the classic way out of a Lua sandbox.
func (st *state) loadText(L *glua.LState, src, name string) int {
	if strings.HasPrefix(src, "\x1b") {
		L.Push(glua.LNil)
		L.Push(glua.LString("load: binary (bytecode) chunks are not allowed in the recon Lua sandbox"))
		return 2
	}
	if len(src) > maxLoadSize {
		L.Push(glua.LNil)
		L.Push(glua.LString(fmt.Sprintf("load: chunk of %d bytes exceeds the limit of %d", len(src), maxLoadSize)))
		return 2
	}
	proto, err := compileChunk(src, name)
	if err != nil {
		L.Push(glua.LNil)
		L.Push(glua.LString(err.Error()))
		return 2
	}
	fn := L.NewFunctionFromProto(proto)
	fn.Env = st.run.env
	L.Push(fn)
	return 1
}

func (st *state) loadstring(L *glua.LState) int {
	src := L.CheckString(1)
	return st.loadText(L, src, L.OptString(2, "=(load)"))
}

// load accepts a string (as Lua 5.2 does) or a reader function.
func (st *state) load(L *glua.LState) int {
	name := L.OptString(2, "=(load)")
	switch v := L.Get(1).(type) {
	case glua.LString:
		return st.loadText(L, string(v), name)
	case *glua.LFunction:
		var b strings.Builder
		for {
			L.Push(v)
			L.Call(0, 1)
			piece := L.Get(-1)
			L.Pop(1)
			s, ok := piece.(glua.LString)
			if piece == glua.LNil || (ok && s == "") {
				break
			}
			if !ok {
				L.Push(glua.LNil)
				L.Push(glua.LString("load: reader function must return a string"))
				return 2
			}
			if b.Len()+len(s) > maxLoadSize {
				L.Push(glua.LNil)
				L.Push(glua.LString(fmt.Sprintf("load: chunk exceeds the limit of %d bytes", maxLoadSize)))
				return 2
			}
			b.WriteString(string(s))
		}
		return st.loadText(L, b.String(), name)
	}
	L.ArgError(1, "string or function expected")
	return 0
}

// require loads NAME.lua (or NAME/init.lua) from the script's own
// directory, once per run, into the run's environment. Only with
// allow = ["require"]; paths cannot leave that directory.
func (st *state) require(L *glua.LState) int {
	name := L.CheckString(1)
	if st.run.r.caps&capRequire == 0 {
		L.RaiseError("require is not allowed for this check: add \"require\" to its allow list (modules load from the script's directory)")
	}
	if v, ok := st.run.loaded[name]; ok {
		return push(L, v)
	}
	if name == "" || strings.ContainsAny(name, "/\\") || strings.Contains(name, "..") || strings.HasPrefix(name, ".") {
		L.RaiseError("require %q: module names are dotted names relative to the script's directory (a.b → a/b.lua)", name)
	}
	rel := strings.ReplaceAll(name, ".", "/")
	base := st.run.r.s
	var sc *script
	var tried []string
	for _, f := range []string{rel + ".lua", rel + "/init.lua"} {
		file := f
		if base.dir != "." {
			file = base.dir + "/" + f
		}
		s, err := st.t.scripts.module(base, file)
		if err == nil {
			sc = s
			break
		}
		if !isNotExist(err) {
			L.RaiseError("require %q: %v", name, err)
		}
		tried = append(tried, file)
	}
	if sc == nil {
		L.RaiseError("require %q: module not found (tried %s in the script's directory)", name, strings.Join(tried, ", "))
	}
	if st.run.loaded == nil {
		st.run.loaded = map[string]glua.LValue{}
	}
	st.run.loaded[name] = glua.LTrue // a cycle sees true, as in Lua
	fn := L.NewFunctionFromProto(sc.proto)
	fn.Env = st.run.env
	L.Push(fn)
	L.Push(glua.LString(name))
	L.Call(1, 1)
	v := L.Get(-1)
	L.Pop(1)
	if v == glua.LNil {
		v = glua.LTrue
	}
	st.run.loaded[name] = v
	return push(L, v)
}

func push(L *glua.LState, v glua.LValue) int {
	L.Push(v)
	return 1
}
