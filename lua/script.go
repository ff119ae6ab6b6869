package lua

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"weak"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// builtinPrefix selects a script bundled in lua/checks: "builtin:http" is
// checks/http.lua.
const builtinPrefix = "builtin:"

//go:embed checks/*.lua
var builtinFS embed.FS

// Builtins lists the names of the bundled check scripts, for
// script = "builtin:NAME".
func Builtins() []string {
	entries, _ := fs.ReadDir(builtinFS, "checks")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".lua"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// BuiltinSource returns the text of a bundled script.
func BuiltinSource(name string) (string, bool) {
	b, err := builtinFS.ReadFile("checks/" + name + ".lua")
	return string(b), err == nil
}

// script is a compiled chunk, shared by every check (and every concurrent
// run) whose script has the same name and source: a FunctionProto is
// read-only once compiled.
type script struct {
	name  string // chunk name in tracebacks: the path, or builtin:NAME
	proto *glua.FunctionProto
	fsys  fs.FS  // where require looks (the script's directory)
	dir   string // directory of the script inside fsys
}

// scriptCache deduplicates compiled scripts by name and source text. It
// holds them weakly: a script lives as long as a runner (or a running
// require) references it, so reloads with changed scripts release the old
// protos without any bookkeeping by the caller.
type scriptCache struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[script]
}

// load reads path (or a builtin) and returns its compiled script.
func (c *scriptCache) load(p string) (*script, error) {
	if name, ok := strings.CutPrefix(p, builtinPrefix); ok {
		if name == "" || strings.ContainsAny(name, "/\\") {
			return nil, fmt.Errorf("script %q: invalid builtin name (want one of %s)", p, strings.Join(Builtins(), ", "))
		}
		src, ok := BuiltinSource(name)
		if !ok {
			return nil, fmt.Errorf("script %q: no such builtin script (want one of %s)", p, strings.Join(Builtins(), ", "))
		}
		sub, _ := fs.Sub(builtinFS, "checks")
		return c.compile(p, src, sub, ".")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("script: %w", err)
	}
	return c.compile(p, string(b), rootFS(filepath.Dir(p)), ".")
}

// rootFS reads files under a directory through os.Root, so that neither
// ".." nor a symlink takes require outside the script's directory. The
// root is opened per read: no descriptor is held for a cached script.
type rootFS string

func (d rootFS) Open(name string) (fs.File, error) {
	r, err := os.OpenRoot(string(d))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Open(name)
}

func (d rootFS) ReadFile(name string) ([]byte, error) {
	r, err := os.OpenRoot(string(d))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ReadFile(name)
}

// module loads the file of a required module relative to base's fsys.
func (c *scriptCache) module(base *script, file string) (*script, error) {
	b, err := fs.ReadFile(base.fsys, file)
	if err != nil {
		return nil, err
	}
	name := file
	if strings.HasPrefix(base.name, builtinPrefix) {
		name = builtinPrefix + file
	} else {
		name = filepath.Join(filepath.Dir(base.name), filepath.FromSlash(file))
	}
	return c.compile(name, string(b), base.fsys, path.Dir(file))
}

func (c *scriptCache) compile(name, src string, fsys fs.FS, dir string) (*script, error) {
	key := name + "\x00" + src
	c.mu.Lock()
	if wp, ok := c.m[key]; ok {
		if s := wp.Value(); s != nil {
			c.mu.Unlock()
			return s, nil
		}
	}
	c.mu.Unlock()
	proto, err := compileChunk(src, name)
	if err != nil {
		return nil, err
	}
	s := &script{name: name, proto: proto, fsys: fsys, dir: dir}
	c.mu.Lock()
	defer c.mu.Unlock()
	if wp, ok := c.m[key]; ok {
		if old := wp.Value(); old != nil {
			return old, nil // compiled concurrently: keep one
		}
	}
	if c.m == nil {
		c.m = map[string]weak.Pointer[script]{}
	}
	c.m[key] = weak.Make(s)
	runtime.AddCleanup(s, c.forget, key)
	return s, nil
}

// forget drops the entry of a collected script.
func (c *scriptCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if wp, ok := c.m[key]; ok && wp.Value() == nil {
		delete(c.m, key)
	}
}

// size reports the number of cached scripts (tests).
func (c *scriptCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// compileChunk parses and compiles Lua source text. gopher-lua's parser
// and compiler may panic on some inputs; that is a compile error here.
func compileChunk(src, name string) (proto *glua.FunctionProto, err error) {
	defer func() {
		if p := recover(); p != nil {
			proto, err = nil, fmt.Errorf("%s: cannot compile: %v", name, p)
		}
	}()
	if strings.HasPrefix(src, "\x1b") {
		return nil, fmt.Errorf("%s: binary (precompiled) chunks are not allowed", name)
	}
	// A #! line makes scripts runnable by a standalone interpreter.
	if strings.HasPrefix(src, "#") {
		if i := strings.IndexByte(src, '\n'); i >= 0 {
			src = "--" + src[i:] // keep line numbers
		} else {
			src = ""
		}
	}
	chunk, err := parse.Parse(strings.NewReader(src), name)
	if err != nil {
		return nil, fmt.Errorf("syntax error: %s", strings.TrimSpace(err.Error()))
	}
	proto, err = glua.Compile(chunk, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// A main chunk is vararg, so gopher-lua builds Lua 5.0's implicit
	// `arg` table on every call, though a main chunk has no local of that
	// name to reach it by: ~1.5 KB of garbage per run for nothing.
	proto.IsVarArg &^= glua.VarArgNeedsArg
	return proto, nil
}
