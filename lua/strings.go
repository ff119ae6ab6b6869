package lua

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/pm"
)

// patchString caps the string functions that can build large strings from
// small inputs, and removes string.dump. The master string table is also
// the __index of every string, so ("x"):rep(n) goes through the cap too.
func (st *state) patchString(m *glua.LTable) {
	L := st.L
	limit := func() int { return st.t.opts.MaxStringSize }
	m.RawSetString("dump", glua.LNil)

	m.RawSetString("rep", L.NewFunction(func(L *glua.LState) int {
		s := L.CheckString(1)
		n := float64(L.CheckNumber(2))
		sep := L.OptString(3, "")
		if n < 1 || (s == "" && sep == "") {
			L.Push(glua.LString(""))
			return 1
		}
		size := float64(len(s))*n + float64(len(sep))*(n-1)
		if size > float64(limit()) {
			L.RaiseError("string.rep: result of %.0f bytes exceeds the limit of %d bytes", size, limit())
		}
		count := int(n)
		if sep == "" {
			L.Push(glua.LString(strings.Repeat(s, count)))
			return 1
		}
		var b strings.Builder
		b.Grow(int(size))
		for i := 0; i < count; i++ {
			if i > 0 {
				b.WriteString(sep)
			}
			b.WriteString(s)
		}
		L.Push(glua.LString(b.String()))
		return 1
	}))

	format := m.RawGetString("format").(*glua.LFunction).GFunction
	m.RawSetString("format", L.NewFunction(func(L *glua.LState) int {
		f := L.CheckString(1)
		size, err := formatBound(f)
		if err != nil {
			L.RaiseError("string.format: %v", err)
		}
		for i := 2; i <= L.GetTop(); i++ {
			if s, ok := L.Get(i).(glua.LString); ok {
				size += len(s)
			} else {
				size += 32
			}
		}
		if size > limit() {
			L.RaiseError("string.format: result may exceed the limit of %d bytes", limit())
		}
		return format(L)
	}))

	m.RawSetString("gsub", L.NewFunction(st.gsub))
}

// gsub replaces gopher-lua's string.gsub, which copies the whole subject
// for every match (quadratic time, in Go, where the timeout cannot stop
// it). This one is linear in the output and stops at the string limit.
// Semantics are Lua 5.1's: %0-%9 and %% in a string replacement, a table
// indexed by the first capture, a function called with the captures; false
// or nil keeps the match.
func (st *state) gsub(L *glua.LState) int {
	s := L.CheckString(1)
	pat := L.CheckString(2)
	repl := L.Get(3)
	switch repl.(type) {
	case glua.LString, glua.LNumber, *glua.LTable, *glua.LFunction:
	default:
		L.ArgError(3, "string/function/table expected, got "+repl.Type().String())
	}
	limitN := L.OptInt(4, -1)
	mds, err := findAll(pat, s, limitN)
	if err != nil {
		L.RaiseError("string.gsub: %v", err)
	}
	limit := st.t.opts.MaxStringSize
	var b strings.Builder
	last := 0
	for _, md := range mds {
		start, end := md.Capture(0), md.Capture(1)
		b.WriteString(s[last:start])
		last = end
		switch r := repl.(type) {
		case glua.LString, glua.LNumber:
			rs := r.String()
			// Captures lie inside the match: this bounds the expansion.
			if b.Len()+len(rs)+strings.Count(rs, "%")*(end-start) > limit {
				L.RaiseError("string.gsub: result exceeds the limit of %d bytes", limit)
			}
			expandRepl(L, &b, rs, s, md)
		default:
			var v glua.LValue
			if t, ok := r.(*glua.LTable); ok {
				v = L.GetTable(t, capture(s, md, 1))
			} else {
				n := max(1, md.CaptureLength()/2-1)
				L.Push(r)
				for i := 1; i <= n; i++ {
					L.Push(capture(s, md, i))
				}
				L.Call(n, 1)
				v = L.Get(-1)
				L.Pop(1)
			}
			switch v := v.(type) {
			case glua.LString, glua.LNumber:
				b.WriteString(v.String())
			case *glua.LNilType, glua.LBool:
				if v == glua.LFalse || v == glua.LNil {
					b.WriteString(s[start:end])
				} else {
					L.RaiseError("string.gsub: invalid replacement value (a boolean)")
				}
			default:
				L.RaiseError("string.gsub: invalid replacement value (a %s)", v.Type().String())
			}
		}
		if b.Len()+len(s)-last > limit {
			L.RaiseError("string.gsub: result exceeds the limit of %d bytes", limit)
		}
	}
	b.WriteString(s[last:])
	L.Push(glua.LString(b.String()))
	L.Push(glua.LNumber(len(mds)))
	return 2
}

// findAll runs gopher-lua's pattern matcher, turning its panics
// ("pattern/input too complex", bad captures) into errors.
func findAll(pat, s string, max int) (mds []*pm.MatchData, err error) {
	defer func() {
		if p := recover(); p != nil {
			mds, err = nil, errors.New(errString(p))
		}
	}()
	return pm.Find(pat, []byte(s), 0, max)
}

// capture returns capture i (1-based) of a match as a Lua value: the whole
// match when the pattern has no captures, a number for a position capture.
func capture(s string, md *pm.MatchData, i int) glua.LValue {
	idx := 2 * i
	if md.CaptureLength() <= 2 {
		idx = 0
	}
	if idx+1 >= md.CaptureLength() {
		return glua.LNil
	}
	if md.IsPosCapture(idx) {
		return glua.LNumber(md.Capture(idx))
	}
	return glua.LString(s[md.Capture(idx):md.Capture(idx+1)])
}

func expandRepl(L *glua.LState, b *strings.Builder, repl, s string, md *pm.MatchData) {
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		if c != '%' || i+1 == len(repl) {
			b.WriteByte(c)
			continue
		}
		i++
		c = repl[i]
		switch {
		case c == '0':
			b.WriteString(s[md.Capture(0):md.Capture(1)])
		case c >= '1' && c <= '9':
			n := int(c - '0')
			if (md.CaptureLength() <= 2 && n > 1) || (md.CaptureLength() > 2 && 2*n+1 >= md.CaptureLength()) {
				L.RaiseError("string.gsub: invalid capture index %%%d", n)
			}
			b.WriteString(capture(s, md, n).String())
		default:
			b.WriteByte(c)
		}
	}
}

// formatBound checks a string.format template as Lua 5.1 does (width and
// precision at most two digits) and returns an upper bound of its output
// without the arguments' own lengths.
func formatBound(f string) (int, error) {
	size := len(f)
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			continue
		}
		for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
			i++
		}
		digits := 0
		for i < len(f) && f[i] >= '0' && f[i] <= '9' {
			i++
			digits++
		}
		if digits > 2 {
			return 0, errors.New("invalid format (width too long)")
		}
		if i < len(f) && f[i] == '.' {
			i++
			digits = 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i++
				digits++
			}
			if digits > 2 {
				return 0, errors.New("invalid format (precision too long)")
			}
		}
		size += 2 * 99
	}
	return size, nil
}

func errString(p any) string {
	if e, ok := p.(error); ok {
		return e.Error()
	}
	if s, ok := p.(string); ok {
		return s
	}
	return "pattern error"
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
