package lua

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// maxJSONDepth bounds nesting on encode (decode is bounded by
// encoding/json itself).
const maxJSONDepth = 200

// buildJSON: json.encode(value [, {indent=}]) and json.decode(text). JSON
// null is json.null, so arrays keep their length and objects their keys.
func (st *state) buildJSON() *glua.LTable {
	L := st.L
	m := L.NewTable()
	null := L.NewUserData()
	meta := L.NewTable()
	meta.RawSetString("__tostring", L.NewFunction(func(L *glua.LState) int { L.Push(glua.LString("null")); return 1 }))
	meta.RawSetString("__metatable", glua.LFalse)
	null.Metatable = meta
	st.jsonNull = null
	m.RawSetString("null", null)
	m.RawSetString("encode", L.NewFunction(st.jsonEncode))
	m.RawSetString("decode", L.NewFunction(st.jsonDecode))
	return m
}

func (st *state) jsonDecode(L *glua.LState) int {
	s := L.CheckString(1)
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fail(L, "json.decode: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail(L, "json.decode: unexpected data after the JSON value")
	}
	L.Push(st.jsonToLua(L, v))
	return 1
}

func (st *state) jsonToLua(L *glua.LState, v any) glua.LValue {
	switch v := v.(type) {
	case nil:
		return st.jsonNull
	case bool:
		return glua.LBool(v)
	case string:
		return glua.LString(v)
	case json.Number:
		// Out of float64 range, ParseFloat returns ±Inf with its error:
		// the nearest a Lua number gets.
		f, _ := strconv.ParseFloat(string(v), 64)
		return glua.LNumber(f)
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, e := range v {
			t.Append(st.jsonToLua(L, e))
		}
		return t
	case map[string]any:
		// Keys in sorted order: pairs() then walks an object the same
		// way on every run.
		t := L.CreateTable(0, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			t.RawSetString(k, st.jsonToLua(L, v[k]))
		}
		return t
	}
	return glua.LNil
}

func (st *state) jsonEncode(L *glua.LState) int {
	v := L.CheckAny(1)
	o := getOpts(L, 2, "json.encode", "indent")
	enc := jsonEncoder{null: st.jsonNull, seen: map[*glua.LTable]bool{}, limit: st.t.opts.MaxStringSize}
	g, err := enc.toGo(v, 0)
	if err != nil {
		return fail(L, "json.encode: %v", err)
	}
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if ind := o.str("indent", ""); ind != "" {
		e.SetIndent("", ind)
	}
	if err := e.Encode(g); err != nil {
		return fail(L, "json.encode: %v", err)
	}
	if buf.Len() > st.t.opts.MaxStringSize {
		return fail(L, "json.encode: result exceeds the limit of %d bytes", st.t.opts.MaxStringSize)
	}
	L.Push(glua.LString(strings.TrimSuffix(buf.String(), "\n")))
	return 1
}

type jsonEncoder struct {
	null  *glua.LUserData
	seen  map[*glua.LTable]bool
	size  int
	limit int
}

// toGo converts a Lua value for encoding/json. A table whose keys are
// exactly 1..n is an array; any other table an object (number keys
// written as strings); the empty table is {}.
func (e *jsonEncoder) toGo(v glua.LValue, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	e.size += 8
	switch v := v.(type) {
	case *glua.LNilType:
		return nil, nil
	case glua.LBool:
		return bool(v), nil
	case glua.LNumber:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("cannot encode %v (JSON has no NaN or Infinity)", v)
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	case glua.LString:
		e.size += len(v)
		if e.size > e.limit {
			return nil, fmt.Errorf("result exceeds the limit of %d bytes", e.limit)
		}
		return string(v), nil
	case *glua.LUserData:
		if v == e.null {
			return nil, nil
		}
	case *glua.LTable:
		if e.seen[v] {
			return nil, errors.New("cannot encode a table that contains itself")
		}
		e.seen[v] = true
		defer delete(e.seen, v)
		n, maxIdx, allInt := 0, 0, true
		v.ForEach(func(k, _ glua.LValue) {
			n++
			if kn, ok := k.(glua.LNumber); ok && float64(kn) == math.Trunc(float64(kn)) && kn >= 1 {
				maxIdx = max(maxIdx, int(kn))
			} else {
				allInt = false
			}
		})
		if n > 0 && allInt && maxIdx == n {
			arr := make([]any, n)
			for i := 1; i <= n; i++ {
				g, err := e.toGo(v.RawGetInt(i), depth+1)
				if err != nil {
					return nil, fmt.Errorf("[%d]: %w", i, err)
				}
				arr[i-1] = g
			}
			return arr, nil
		}
		obj := make(map[string]any, n)
		var err error
		v.ForEach(func(k, val glua.LValue) {
			if err != nil {
				return
			}
			var key string
			switch k := k.(type) {
			case glua.LString:
				key = string(k)
			case glua.LNumber:
				key = k.String()
			default:
				err = fmt.Errorf("cannot encode a table key of type %s", k.Type().String())
				return
			}
			e.size += len(key)
			var g any
			if g, err = e.toGo(val, depth+1); err != nil {
				err = fmt.Errorf("%s: %w", key, err)
				return
			}
			obj[key] = g
		})
		if err != nil {
			return nil, err
		}
		return obj, nil
	}
	return nil, fmt.Errorf("cannot encode a %s", v.Type().String())
}
