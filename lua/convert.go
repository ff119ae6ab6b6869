package lua

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// goToLua converts configuration and decoded data to Lua: strings,
// numbers, booleans, slices (arrays from 1), maps with string keys
// (tables), times (RFC 3339 strings) and anything with a String method.
// nil and unsupported values become nil; checkConfig rejects those in
// configuration up front.
func goToLua(L *glua.LState, v any) glua.LValue {
	switch v := v.(type) {
	case nil:
		return glua.LNil
	case string:
		return glua.LString(v)
	case bool:
		return glua.LBool(v)
	case int:
		return glua.LNumber(v)
	case int64:
		return glua.LNumber(v)
	case int32:
		return glua.LNumber(v)
	case uint64:
		return glua.LNumber(v)
	case float64:
		return glua.LNumber(v)
	case float32:
		return glua.LNumber(v)
	case []byte:
		return glua.LString(v)
	case time.Time:
		return glua.LString(v.Format(time.RFC3339Nano))
	case time.Duration:
		return glua.LNumber(v.Seconds())
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, e := range v {
			t.Append(nonNil(goToLua(L, e)))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) { // stable pairs() order
			t.RawSetString(k, goToLua(L, v[k]))
		}
		return t
	case fmt.Stringer:
		return glua.LString(v.String())
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		t := L.CreateTable(rv.Len(), 0)
		for i := 0; i < rv.Len(); i++ {
			t.Append(nonNil(goToLua(L, rv.Index(i).Interface())))
		}
		return t
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return glua.LNil
		}
		t := L.CreateTable(0, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			t.RawSetString(it.Key().String(), goToLua(L, it.Value().Interface()))
		}
		return t
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return glua.LNumber(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return glua.LNumber(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return glua.LNumber(rv.Float())
	case reflect.String:
		return glua.LString(rv.String())
	case reflect.Bool:
		return glua.LBool(rv.Bool())
	}
	return glua.LNil
}

// nonNil keeps array slots: Lua arrays cannot hold nil.
func nonNil(v glua.LValue) glua.LValue {
	if v == glua.LNil {
		return glua.LFalse
	}
	return v
}

// checkConfig reports configuration values a script could not receive.
func checkConfig(v any) error { return checkValue(v, "") }

func checkValue(v any, path string) error {
	name := path
	if name == "" {
		name = "value"
	}
	switch v := v.(type) {
	case nil:
		if path == "" {
			return nil
		}
		return fmt.Errorf("%s: null is not supported", name)
	case string, bool, int, int64, int32, uint64, float64, float32, time.Time, time.Duration, fmt.Stringer:
		return nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if err := checkValue(v[k], p); err != nil {
				return err
			}
		}
		return nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		for i := 0; i < rv.Len(); i++ {
			if err := checkValue(rv.Index(i).Interface(), fmt.Sprintf("%s[%d]", name, i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("%s: map keys must be strings", name)
		}
		it := rv.MapRange()
		for it.Next() {
			if err := checkValue(it.Value().Interface(), name+"."+it.Key().String()); err != nil {
				return err
			}
		}
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64, reflect.String, reflect.Bool:
		return nil
	}
	return fmt.Errorf("%s: unsupported value of type %T", name, v)
}

// Option tables of module functions are read strictly: an unknown key is
// an error naming the function, so a typo ("timout") is not silently a
// default.
type opts struct {
	L   *glua.LState
	fn  string
	tbl *glua.LTable
}

// getOpts reads argument n as an options table (absent or nil: empty).
func getOpts(L *glua.LState, n int, fn string, known ...string) opts {
	o := opts{L: L, fn: fn}
	switch v := L.Get(n).(type) {
	case *glua.LNilType:
		return o
	case *glua.LTable:
		o.tbl = v
	default:
		L.ArgError(n, fn+": options must be a table, got "+v.Type().String())
	}
	var unknown []string
	o.tbl.ForEach(func(k, _ glua.LValue) {
		ks, ok := k.(glua.LString)
		if !ok {
			unknown = append(unknown, k.String())
			return
		}
		for _, kn := range known {
			if string(ks) == kn {
				return
			}
		}
		unknown = append(unknown, string(ks))
	})
	if len(unknown) > 0 {
		sort.Strings(unknown)
		L.RaiseError("%s: unknown option %s (known: %s)", fn, strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return o
}

func (o opts) get(key string) glua.LValue {
	if o.tbl == nil {
		return glua.LNil
	}
	return o.tbl.RawGetString(key)
}

func (o opts) str(key, def string) string {
	switch v := o.get(key).(type) {
	case *glua.LNilType:
		return def
	case glua.LString:
		return string(v)
	case glua.LNumber:
		return v.String()
	default:
		o.L.RaiseError("%s: option %s must be a string, got %s", o.fn, key, v.Type().String())
		return ""
	}
}

func (o opts) boolean(key string, def bool) bool {
	switch v := o.get(key).(type) {
	case *glua.LNilType:
		return def
	case glua.LBool:
		return bool(v)
	default:
		o.L.RaiseError("%s: option %s must be a boolean, got %s", o.fn, key, v.Type().String())
		return false
	}
}

func (o opts) integer(key string, def int) int {
	switch v := o.get(key).(type) {
	case *glua.LNilType:
		return def
	case glua.LNumber:
		f := float64(v)
		if f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
			o.L.RaiseError("%s: option %s must be an integer, got %v", o.fn, key, v)
		}
		return int(f)
	default:
		o.L.RaiseError("%s: option %s must be a number, got %s", o.fn, key, v.Type().String())
		return 0
	}
}

// duration reads a duration given as seconds (a number) or a Go duration
// string ("500ms", "2s").
func (o opts) duration(key string, def time.Duration) time.Duration {
	v := o.get(key)
	if v == glua.LNil {
		return def
	}
	d, err := toDuration(v)
	if err != nil {
		o.L.RaiseError("%s: option %s: %v", o.fn, key, err)
	}
	return d
}

func toDuration(v glua.LValue) (time.Duration, error) {
	switch v := v.(type) {
	case glua.LNumber:
		f := float64(v)
		if f < 0 || math.IsNaN(f) || f > 1e6 {
			return 0, fmt.Errorf("invalid duration %v (seconds, 0 to 1e6)", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	case glua.LString:
		d, err := time.ParseDuration(string(v))
		if err != nil || d < 0 {
			return 0, fmt.Errorf("invalid duration %q (a number of seconds or e.g. \"500ms\", \"2s\")", string(v))
		}
		return d, nil
	}
	return 0, fmt.Errorf("duration is a %s, want seconds or a string like \"2s\"", v.Type().String())
}

// stringMap reads a table of string keys and string (or number) values.
func (o opts) stringMap(key string) map[string]string {
	v := o.get(key)
	if v == glua.LNil {
		return nil
	}
	t, ok := v.(*glua.LTable)
	if !ok {
		o.L.RaiseError("%s: option %s must be a table of strings, got %s", o.fn, key, v.Type().String())
	}
	m := map[string]string{}
	t.ForEach(func(k, v glua.LValue) {
		ks, ok1 := k.(glua.LString)
		if !ok1 || !(v.Type() == glua.LTString || v.Type() == glua.LTNumber) {
			o.L.RaiseError("%s: option %s must map strings to strings", o.fn, key)
		}
		m[string(ks)] = v.String()
	})
	return m
}

// fail returns nil and an error message, the convention of every module
// function that can fail because of the world (network, data): only
// programming errors (wrong argument types) raise.
func fail(L *glua.LState, format string, args ...any) int {
	L.Push(glua.LNil)
	L.Push(glua.LString(fmt.Sprintf(format, args...)))
	return 2
}

// hostPort joins a host and a port given as number or string, or returns
// host alone when it already has a port and port is absent.
func hostPort(L *glua.LState, host string, portArg int, fn string) string {
	pv := L.Get(portArg)
	switch p := pv.(type) {
	case *glua.LNilType:
		return host
	case glua.LNumber:
		f := float64(p)
		if f != math.Trunc(f) || f < 0 || f > 65535 {
			L.ArgError(portArg, fn+": port must be 0-65535")
		}
		return joinHostPort(host, strconv.Itoa(int(f)))
	case glua.LString:
		return joinHostPort(host, string(p))
	case *glua.LTable:
		return host // options table in the port position: host has the port
	}
	L.ArgError(portArg, fn+": port must be a number")
	return ""
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
