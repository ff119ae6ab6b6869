package lua

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	glua "github.com/yuin/gopher-lua"
)

const defaultPGMaxRows = 1000

// buildPG (only with allow = ["pg"]: a DSN may name a Unix socket where
// peer authentication acts with the agent's own OS identity):
//
//	pg.query(dsn, sql [, params] [, opts]) → rows, info | nil, err
//
// One connection per call, closed before returning: what a check measures
// is connecting and querying. params is an array bound to $1, $2…; opts:
// timeout, max_rows (default 1000). rows is an array of tables keyed by
// column name (NULL columns are absent); numbers and numerics are numbers,
// timestamps and dates epoch seconds, intervals seconds, everything else
// text. info: connect and query (seconds), rows, command (the command tag),
// truncated.
func (st *state) buildPG() *glua.LTable {
	L := st.L
	m := L.NewTable()
	m.RawSetString("query", L.NewFunction(st.pgQuery))
	return m
}

func (st *state) pgQuery(L *glua.LState) int {
	dsn := L.CheckString(1)
	sql := L.CheckString(2)
	var params []any
	optArg := 3
	if t, ok := L.Get(3).(*glua.LTable); ok && (t.Len() > 0 || L.GetTop() >= 4) {
		optArg = 4
		for i := 1; i <= t.Len(); i++ {
			switch v := t.RawGetInt(i).(type) {
			case glua.LString:
				params = append(params, string(v))
			case glua.LNumber:
				params = append(params, float64(v))
			case glua.LBool:
				params = append(params, bool(v))
			default:
				L.ArgError(3, fmt.Sprintf("pg.query: params[%d] is a %s (strings, numbers, booleans)", i, v.Type().String()))
			}
		}
	}
	o := getOpts(L, optArg, "pg.query", "timeout", "max_rows")
	maxRows := o.integer("max_rows", defaultPGMaxRows)
	if maxRows <= 0 {
		L.RaiseError("pg.query: max_rows must be > 0")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fail(L, "pg.query: %v", err)
	}
	ctx := st.run.ctx
	if d := o.duration("timeout", 0); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	start := time.Now()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fail(L, "pg.query: connect: %v", err)
	}
	connected := time.Now()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	rows, err := conn.Query(ctx, sql, params...)
	if err != nil {
		return fail(L, "pg.query: %v", err)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	out := L.NewTable()
	n, size, truncated := 0, 0, false
	for rows.Next() {
		if n >= maxRows {
			truncated = true
			break
		}
		vals, err := rows.Values()
		if err != nil {
			return fail(L, "pg.query: row %d: %v", n+1, err)
		}
		row := L.CreateTable(0, len(fields))
		for i, f := range fields {
			v := pgValue(L, vals[i])
			if s, ok := v.(glua.LString); ok {
				size += len(s)
			}
			row.RawSetString(f.Name, v)
		}
		size += 16 * len(fields)
		if size > st.t.opts.MaxStringSize {
			return fail(L, "pg.query: result exceeds the limit of %d bytes", st.t.opts.MaxStringSize)
		}
		out.Append(row)
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(L, "pg.query: %v", err)
	}
	done := time.Now()
	info := L.CreateTable(0, 5)
	info.RawSetString("connect", glua.LNumber(connected.Sub(start).Seconds()))
	info.RawSetString("query", glua.LNumber(done.Sub(connected).Seconds()))
	info.RawSetString("rows", glua.LNumber(n))
	info.RawSetString("command", glua.LString(rows.CommandTag().String()))
	info.RawSetString("truncated", glua.LBool(truncated))
	L.Push(out)
	L.Push(info)
	return 2
}

func pgValue(L *glua.LState, v any) glua.LValue {
	switch v := v.(type) {
	case nil:
		return glua.LNil
	case time.Time:
		return glua.LNumber(float64(v.UnixNano()) / 1e9)
	case pgtype.Numeric:
		f, err := v.Float64Value()
		if err != nil || !f.Valid {
			return glua.LNil
		}
		return glua.LNumber(f.Float64)
	case pgtype.Interval:
		us := v.Microseconds + int64(v.Days)*86400e6 + int64(v.Months)*30*86400e6
		return glua.LNumber(float64(us) / 1e6)
	case [16]byte: // uuid
		h := hex.EncodeToString(v[:])
		return glua.LString(h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:])
	case netip.Prefix:
		if v.IsSingleIP() {
			return glua.LString(v.Addr().String())
		}
		return glua.LString(v.String())
	case []byte:
		return glua.LString(v)
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, e := range v {
			t.Append(nonNil(pgValue(L, e)))
		}
		return t
	case map[string]any:
		return goToLua(L, v)
	case pgtype.Time:
		return glua.LNumber(float64(v.Microseconds) / 1e6)
	}
	if lv := goToLua(L, v); lv != glua.LNil {
		return lv
	}
	return glua.LString(fmt.Sprint(v))
}
