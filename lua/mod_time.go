package lua

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// layouts are the named layouts time.parse and time.format accept besides
// Go layout strings.
var layouts = map[string]string{
	"rfc3339": time.RFC3339, "rfc3339nano": time.RFC3339Nano, "rfc1123": time.RFC1123,
	"rfc1123z": time.RFC1123Z, "rfc822": time.RFC822, "rfc822z": time.RFC822Z, "rfc850": time.RFC850,
	"ansic": time.ANSIC, "unixdate": time.UnixDate, "datetime": time.DateTime, "date": time.DateOnly,
	"time": time.TimeOnly, "http": "Mon, 02 Jan 2006 15:04:05 GMT", "kitchen": time.Kitchen,
}

func layoutOf(s string) string {
	if l, ok := layouts[strings.ToLower(s)]; ok {
		return l
	}
	return s
}

// buildTime: times are float seconds since the Unix epoch.
//
//	time.now()                        → seconds (wall clock)
//	time.monotonic()                  → seconds on a clock that never jumps (for latencies)
//	time.sleep(d)                     → d seconds or "500ms"; ends with the run's timeout
//	time.parse(s [, layout [, tz]])   → seconds | nil, err (layout: Go layout or "rfc3339", "rfc1123", "http", …)
//	time.format(t [, layout [, tz]])  → string (default RFC 3339, UTC; tz "local" or an IANA name)
//	time.duration(s)                  → seconds of a Go duration string ("1m30s") | nil, err
func (st *state) buildTime() *glua.LTable {
	L := st.L
	m := L.NewTable()
	m.RawSetString("now", L.NewFunction(func(L *glua.LState) int {
		L.Push(glua.LNumber(float64(time.Now().UnixNano()) / 1e9))
		return 1
	}))
	m.RawSetString("monotonic", L.NewFunction(func(L *glua.LState) int {
		L.Push(glua.LNumber(time.Since(st.t.mono).Seconds()))
		return 1
	}))
	m.RawSetString("sleep", L.NewFunction(func(L *glua.LState) int {
		d, err := toDuration(L.CheckAny(1))
		if err != nil {
			L.ArgError(1, "time.sleep: "+err.Error())
		}
		ctx := st.run.ctx
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return 0
		case <-ctx.Done():
			L.RaiseError("time.sleep: %v", context.Cause(ctx))
			return 0
		}
	}))
	loc := func(L *glua.LState, n int, fn string) *time.Location {
		switch tz := L.OptString(n, "utc"); strings.ToLower(tz) {
		case "utc", "":
			return time.UTC
		case "local":
			return time.Local
		default:
			l, err := time.LoadLocation(tz)
			if err != nil {
				L.ArgError(n, fn+": unknown time zone "+tz)
			}
			return l
		}
	}
	m.RawSetString("parse", L.NewFunction(func(L *glua.LState) int {
		s := L.CheckString(1)
		layout := layoutOf(L.OptString(2, time.RFC3339))
		t, err := time.ParseInLocation(layout, s, loc(L, 3, "time.parse"))
		if err != nil {
			return fail(L, "time.parse: %v", err)
		}
		L.Push(glua.LNumber(float64(t.UnixNano()) / 1e9))
		return 1
	}))
	m.RawSetString("format", L.NewFunction(func(L *glua.LState) int {
		f := float64(L.CheckNumber(1))
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e11 {
			L.ArgError(1, "time.format: time out of range")
		}
		sec := math.Floor(f)
		t := time.Unix(int64(sec), int64((f-sec)*1e9)).In(loc(L, 3, "time.format"))
		L.Push(glua.LString(t.Format(layoutOf(L.OptString(2, time.RFC3339)))))
		return 1
	}))
	m.RawSetString("duration", L.NewFunction(func(L *glua.LState) int {
		d, err := time.ParseDuration(L.CheckString(1))
		if err != nil {
			return fail(L, "time.duration: %v", err)
		}
		L.Push(glua.LNumber(d.Seconds()))
		return 1
	}))
	return m
}

// buildLog: log.debug/info/warn/error(message, key, value, ...) into the
// agent's log, tagged with the check and script.
func (st *state) buildLog() *glua.LTable {
	L := st.L
	m := L.NewTable()
	for name, level := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo,
		"warn": slog.LevelWarn, "error": slog.LevelError} {
		lvl := level
		m.RawSetString(name, L.NewFunction(func(L *glua.LState) int {
			msg := L.ToStringMeta(L.CheckAny(1)).String()
			n := L.GetTop()
			attrs := make([]any, 0, n-1)
			for i := 2; i+1 <= n; i += 2 {
				attrs = append(attrs, slog.Any(L.ToStringMeta(L.Get(i)).String(), logValue(L, L.Get(i+1))))
			}
			if (n-1)%2 == 1 {
				attrs = append(attrs, slog.Any("!BADKEY", logValue(L, L.Get(n))))
			}
			st.run.logger(st.t).Log(st.run.ctx, lvl, msg, attrs...)
			return 0
		}))
	}
	return m
}

func logValue(L *glua.LState, v glua.LValue) any {
	switch v := v.(type) {
	case glua.LString:
		return string(v)
	case glua.LNumber:
		return float64(v)
	case glua.LBool:
		return bool(v)
	case *glua.LNilType:
		return nil
	}
	return L.ToStringMeta(v).String()
}
