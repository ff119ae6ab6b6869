package lua

import (
	"context"
	"fmt"
	"sort"
	"strings"

	glua "github.com/yuin/gopher-lua"

	"github.com/reconmon/recon/compat/nagios"
)

// buildExec (only with allow = ["exec"]):
//
//	exec.run(cmd [, args] [, opts]) → {code=, signal=, stdout=, stderr=, timed_out=, truncated=, duration=} | nil, err
//
// cmd is a path or a name looked up in PATH; args an array of strings; no
// shell. The command runs in its own process group, which is killed at the
// timeout (opts.timeout, else the check's), with the minimal environment of
// Nagios plugins plus opts.env; opts.dir is its working directory and
// opts.max_output caps each of stdout and stderr (default 64 KiB). It goes
// through the same executor as Nagios plugins, so it shares their
// concurrency limit.
func (st *state) buildExec() *glua.LTable {
	L := st.L
	m := L.NewTable()
	m.RawSetString("run", L.NewFunction(st.execRun))
	return m
}

func (st *state) execRun(L *glua.LState) int {
	argv := []string{L.CheckString(1)}
	optArg := 2
	// exec.run(cmd, {args...} [, opts]) or exec.run(cmd, opts): a table
	// with array items, or followed by another argument, is the args.
	if t, ok := L.Get(2).(*glua.LTable); ok && (t.Len() > 0 || L.GetTop() >= 3) {
		optArg = 3
		for i := 1; i <= t.Len(); i++ {
			switch v := t.RawGetInt(i).(type) {
			case glua.LString, glua.LNumber:
				argv = append(argv, v.String())
			default:
				L.ArgError(2, fmt.Sprintf("exec.run: args[%d] must be a string, got %s", i, v.Type().String()))
			}
		}
	}
	o := getOpts(L, optArg, "exec.run", "timeout", "env", "dir", "max_output")
	env := nagios.MinimalEnv()
	extra := o.stringMap("env")
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			L.RaiseError("exec.run: invalid environment variable name %q", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	maxOut := o.integer("max_output", nagios.DefaultOutputLimit)
	if maxOut <= 0 || maxOut > st.t.opts.MaxStringSize {
		L.RaiseError("exec.run: max_output must be 1 to %d", st.t.opts.MaxStringSize)
	}
	ctx := st.run.ctx
	if d := o.duration("timeout", 0); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	x := st.t.opts.Exec(ctx, argv, nagios.ExecOptions{Env: env, OutputLimit: maxOut, Dir: o.str("dir", "")})
	if x.StartErr != nil {
		return fail(L, "exec.run %s: %v", argv[0], x.StartErr)
	}
	t := L.CreateTable(0, 7)
	t.RawSetString("code", glua.LNumber(x.ExitCode))
	if x.Signal != 0 {
		t.RawSetString("signal", glua.LString(x.Signal.String()))
	}
	t.RawSetString("stdout", glua.LString(x.Stdout))
	t.RawSetString("stderr", glua.LString(x.Stderr))
	t.RawSetString("timed_out", glua.LBool(x.TimedOut))
	t.RawSetString("truncated", glua.LBool(x.Truncated > 0))
	t.RawSetString("duration", glua.LNumber(x.Duration.Seconds()))
	L.Push(t)
	return 1
}
