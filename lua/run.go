package lua

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
)

// exec runs r's script once on this state under ctx. It reports whether
// the state may go back to the pool: not after a failed run (the VM was
// stopped somewhere in the middle) nor after io or debug were used.
func (st *state) exec(ctx context.Context, r *runner, prev *model.Result, start time.Time) (model.Result, bool) {
	L := st.L
	st.bud.reset(ctx, r.maxInstr)
	L.SetContext(&st.bud)
	st.run = run{ctx: ctx, r: r, prev: prev}
	defer st.endRun()

	// Both tables start empty: gopher-lua gives every table with string
	// keys two Go maps, so ctx's fields and the global ctx are provided by
	// metamethods on first access instead (most runs never read most).
	// A size hint, or gopher-lua gives the first global a 32-slot map.
	env := L.CreateTable(0, 2)
	env.Metatable = st.envMeta
	c := L.CreateTable(0, 0)
	c.Metatable = st.ctxMeta
	st.run.env, st.run.ctxTbl = env, c

	fn := L.NewFunctionFromProto(r.s.proto)
	fn.Env = env
	L.Push(fn)
	L.Push(c)
	if err := L.PCall(1, 1, nil); err != nil {
		return st.failure(err, start), false
	}
	ret := L.Get(-1)
	L.Pop(1)
	what := "the script"
	if ret == glua.LNil {
		f, ok := env.RawGetString("check").(*glua.LFunction)
		if !ok {
			return checktype.Unknown("lua: %s neither returned a result table nor defined function check(ctx)", r.s.name), true
		}
		L.Push(f)
		L.Push(c)
		if err := L.PCall(1, 1, nil); err != nil {
			return st.failure(err, start), false
		}
		ret = L.Get(-1)
		L.Pop(1)
		what = "check(ctx)"
	}
	t, ok := ret.(*glua.LTable)
	if !ok {
		return checktype.Unknown("lua: %s of %s returned %s, want a table {status=..., output=..., metrics=...}",
			what, r.s.name, describe(ret)), !st.tainted
	}
	res, err := toResult(t, st.t.opts.MaxMetrics, st.t.opts.MaxOutput)
	if err != nil {
		return checktype.Unknown("lua: invalid result from %s: %v", r.s.name, err), !st.tainted
	}
	return res, !st.tainted
}

// endRun closes what the run opened and drops every reference to it, so a
// pooled state keeps nothing of the run alive.
func (st *state) endRun() {
	for i := len(st.run.closers) - 1; i >= 0; i-- {
		func() {
			defer func() { _ = recover() }()
			st.run.closers[i]()
		}()
	}
	if st.L != nil {
		st.L.RemoveContext()
		st.L.SetTop(0)
	}
	st.run = run{}
	st.bud.Context, st.bud.done = nil, nil
}

// failure turns a run error into an UNKNOWN result: the reason on the
// first line, the Lua message and traceback in the long output.
func (st *state) failure(err error, start time.Time) model.Result {
	r := st.run.r
	msg, trace := err.Error(), ""
	var ae *glua.ApiError
	goPanic := false
	if errors.As(err, &ae) {
		msg = errValueString(ae.Object)
		trace = ae.StackTrace
		goPanic = ae.Type == glua.ApiErrorPanic
	}
	long := strings.TrimSpace(msg + "\n" + trace)
	var res model.Result
	ctx := st.run.ctx
	switch {
	case st.bud.exceeded:
		st.t.budgetExceeded.Add(1)
		res = checktype.Unknown("lua: %s: instruction limit of %d exceeded (max_instructions)", r.s.name, r.maxInstr)
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			st.t.timeouts.Add(1)
			res = checktype.Unknown("lua: %s: timed out after %v", r.s.name, timeoutOf(ctx, r, start))
		} else {
			res = checktype.Unknown("lua: %s: canceled: %v", r.s.name, context.Cause(ctx))
		}
	case goPanic:
		// A bug in a library function, recovered by gopher-lua: the run
		// fails, the agent goes on, and the log says so.
		st.run.logger(st.t).Error("lua: Go panic inside a library call", "err", msg)
		res = checktype.Unknown("lua: Go panic in a library call: %s", firstLine(msg))
	default:
		st.t.scriptErrors.Add(1)
		res = checktype.Unknown("lua error: %s", firstLine(msg))
	}
	res.LongOutput = capOutput(long, st.t.opts.MaxOutput)
	return res
}

// timeoutOf names the timeout that ended a run: the check's, or what the
// context allowed.
func timeoutOf(ctx context.Context, r *runner, start time.Time) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		d := dl.Sub(start)
		if r.timeout > 0 && (d > r.timeout-10*time.Millisecond || d <= 0) {
			return r.timeout
		}
		return d.Round(time.Millisecond)
	}
	return r.timeout
}

func errValueString(v glua.LValue) string {
	if v == nil {
		return "error"
	}
	if t, ok := v.(*glua.LTable); ok {
		if m, ok := t.RawGetString("message").(glua.LString); ok {
			return string(m)
		}
		return "error object is a table"
	}
	return v.String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// describe names a Lua value's type for messages.
func describe(v glua.LValue) string {
	switch v := v.(type) {
	case glua.LString:
		if len(v) > 40 {
			return fmt.Sprintf("a string (%q…)", string(v[:40]))
		}
		return fmt.Sprintf("a string (%q)", string(v))
	case glua.LNumber:
		return "a number (" + v.String() + ")"
	case glua.LBool:
		return "a boolean (" + v.String() + ")"
	case *glua.LNilType:
		return "nil"
	}
	return "a " + v.Type().String()
}
