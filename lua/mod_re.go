package lua

import (
	"regexp"
	"strings"
	"sync"

	glua "github.com/yuin/gopher-lua"
)

// regexpCache keeps compiled patterns of a Type; scripts pass pattern
// strings on every run. Bounded: when full it starts over.
type regexpCache struct {
	mu sync.Mutex
	m  map[string]*regexp.Regexp
}

const maxCachedRegexps = 1024

func (c *regexpCache) get(p string) (*regexp.Regexp, error) {
	c.mu.Lock()
	re, ok := c.m[p]
	c.mu.Unlock()
	if ok {
		return re, nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedRegexps {
		c.m = map[string]*regexp.Regexp{}
	}
	c.m[p] = re
	c.mu.Unlock()
	return re, nil
}

// buildRe: Go regular expressions (RE2 syntax, linear time), with the
// subject first as in Lua's string functions.
//
//	re.match(s, p)          → boolean
//	re.find(s, p)           → the captures (or the whole match) | nil
//	re.find_all(s, p [, n]) → array of matches (tables of captures when p has groups)
//	re.gsub(s, p, repl [, n]) → string, count (repl: "$1"/"${name}" template or function)
//	re.split(s, p [, n])    → array
//	re.quote(s)             → s with metacharacters escaped
func (st *state) buildRe() *glua.LTable {
	L := st.L
	m := L.NewTable()
	compile := func(L *glua.LState, fn string) (string, *regexp.Regexp) {
		s := L.CheckString(1)
		p := L.CheckString(2)
		re, err := st.t.regexps.get(p)
		if err != nil {
			L.RaiseError("%s: invalid pattern: %v", fn, err)
		}
		return s, re
	}
	count := func(L *glua.LState, n int) int {
		if L.Get(n) == glua.LNil {
			return -1
		}
		return L.CheckInt(n)
	}
	m.RawSetString("match", L.NewFunction(func(L *glua.LState) int {
		s, re := compile(L, "re.match")
		L.Push(glua.LBool(re.MatchString(s)))
		return 1
	}))
	m.RawSetString("find", L.NewFunction(func(L *glua.LState) int {
		s, re := compile(L, "re.find")
		idx := re.FindStringSubmatchIndex(s)
		if idx == nil {
			L.Push(glua.LNil)
			return 1
		}
		if len(idx) == 2 {
			L.Push(glua.LString(s[idx[0]:idx[1]]))
			return 1
		}
		for i := 2; i < len(idx); i += 2 {
			if idx[i] < 0 {
				L.Push(glua.LNil)
			} else {
				L.Push(glua.LString(s[idx[i]:idx[i+1]]))
			}
		}
		return len(idx)/2 - 1
	}))
	m.RawSetString("find_all", L.NewFunction(func(L *glua.LState) int {
		s, re := compile(L, "re.find_all")
		all := re.FindAllStringSubmatch(s, count(L, 3))
		t := L.CreateTable(len(all), 0)
		for _, sm := range all {
			if len(sm) == 1 {
				t.Append(glua.LString(sm[0]))
				continue
			}
			caps := L.CreateTable(len(sm)-1, 0)
			for _, c := range sm[1:] {
				caps.Append(glua.LString(c))
			}
			t.Append(caps)
		}
		L.Push(t)
		return 1
	}))
	m.RawSetString("gsub", L.NewFunction(func(L *glua.LState) int {
		s, re := compile(L, "re.gsub")
		repl := L.Get(3)
		switch repl.(type) {
		case glua.LString, glua.LNumber, *glua.LFunction:
		default:
			L.ArgError(3, "re.gsub: replacement must be a string or a function")
		}
		limit := st.t.opts.MaxStringSize
		matches := re.FindAllStringSubmatchIndex(s, count(L, 4))
		refs := strings.Count(repl.String(), "$")
		var b []byte
		last := 0
		for _, mi := range matches {
			b = append(b, s[last:mi[0]]...)
			if f, ok := repl.(*glua.LFunction); ok {
				L.Push(f)
				n := 0
				for i := 0; i < len(mi); i += 2 {
					if mi[i] < 0 {
						L.Push(glua.LNil)
					} else {
						L.Push(glua.LString(s[mi[i]:mi[i+1]]))
					}
					n++
				}
				L.Call(n, 1)
				v := L.Get(-1)
				L.Pop(1)
				switch v := v.(type) {
				case glua.LString, glua.LNumber:
					b = append(b, v.String()...)
				default:
					if v != glua.LNil && v != glua.LFalse {
						L.RaiseError("re.gsub: replacement function returned a %s", v.Type().String())
					}
					b = append(b, s[mi[0]:mi[1]]...)
				}
			} else {
				// Groups lie inside the match: this bounds the expansion.
				if len(b)+len(repl.String())+refs*(mi[1]-mi[0]) > limit {
					L.RaiseError("re.gsub: result exceeds the limit of %d bytes", limit)
				}
				b = re.ExpandString(b, repl.String(), s, mi)
			}
			last = mi[1]
			if len(b)+len(s)-last > limit {
				L.RaiseError("re.gsub: result exceeds the limit of %d bytes", limit)
			}
		}
		b = append(b, s[last:]...)
		L.Push(glua.LString(b))
		L.Push(glua.LNumber(len(matches)))
		return 2
	}))
	m.RawSetString("split", L.NewFunction(func(L *glua.LState) int {
		s, re := compile(L, "re.split")
		parts := re.Split(s, count(L, 3))
		t := L.CreateTable(len(parts), 0)
		for _, p := range parts {
			t.Append(glua.LString(p))
		}
		L.Push(t)
		return 1
	}))
	m.RawSetString("quote", L.NewFunction(func(L *glua.LState) int {
		L.Push(glua.LString(regexp.QuoteMeta(L.CheckString(1))))
		return 1
	}))
	return m
}
