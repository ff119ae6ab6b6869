package nagios

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/reconmon/recon/agent/model"
)

// Interpret turns an execution into a result following the plugin API:
// exit codes 0-3 are the status; any other code, a signal, a timeout or a
// failure to start is UNKNOWN with the reason as the output and whatever
// the plugin printed kept in the long output. plugin names the command in
// messages; timeoutNote (e.g. " after 10s") completes the timeout message.
//
// stderr is added to the long output when stdout has no text or the result
// is UNKNOWN for any reason (bad exit code, signal, timeout, exit 3): that
// is when it explains something (usage errors, a missing library, a
// crash). On a normal OK/WARNING/CRITICAL with output, plugins' stderr is
// mostly noise (deprecation warnings) and would bloat every stored result.
func Interpret(x ExecResult, plugin, timeoutNote string) model.Result {
	res := model.Result{Duration: x.Duration}
	stdout := x.Stdout
	var notes []string
	if x.StdoutDropped > 0 {
		// The cut may fall inside a perfdata item ("x=1234" kept as
		// "x=12"): parse only up to the last whitespace.
		if i := bytes.LastIndexAny(stdout, " \t\n"); i >= 0 {
			if tail := string(bytes.TrimSpace(stdout[i:])); tail != "" {
				if len(tail) > 80 {
					tail = tail[:80] + "…"
				}
				notes = append(notes, fmt.Sprintf("stdout cut inside %q; that part was not parsed", tail))
			}
			stdout = stdout[:i]
		}
		notes = append(notes, fmt.Sprintf("stdout truncated: %d bytes kept, %d beyond the limit dropped", len(x.Stdout), x.StdoutDropped))
	}
	out := ParseOutput(stdout)
	res.Output, res.LongOutput, res.Metrics = out.Text, out.LongOutput, out.Metrics

	// failed puts the reason in the output and moves what the plugin
	// printed to the long output.
	failed := func(reason string, completed bool) {
		res.Status = model.Unknown
		res.Output = reason
		if completed {
			// It ran to the end: its long output and metrics are kept.
			if out.Text != "" {
				notes = append(notes, "plugin output: "+out.Text)
			}
			return
		}
		// A plugin stopped midway may have been cut inside a perfdata
		// item: keep its raw output, perfdata included, but no metrics.
		res.Metrics, res.LongOutput, out.Notes = nil, "", nil
		if t := strings.TrimRight(clean(string(stdout)), "\n"); t != "" {
			notes = append(notes, "plugin output before it was stopped:\n"+t)
		}
	}
	switch {
	case x.StartErr != nil:
		failed(fmt.Sprintf("(could not execute %s: %s)", plugin, startReason(x.StartErr)), false)
	case x.TimedOut:
		verb := "timed out" + timeoutNote
		if errors.Is(x.Cause, context.Canceled) {
			verb = "cancelled (the agent is stopping or the check was removed)"
		}
		failed(fmt.Sprintf("(Plugin %s; its process group was killed)", verb), false)
	case x.Signal != 0:
		failed(fmt.Sprintf("(Plugin %s killed by signal %d: %v)", plugin, int(x.Signal), x.Signal), false)
	case x.ExitCode < 0 || x.ExitCode > 3:
		hint := ""
		switch x.ExitCode {
		case 126:
			hint = "; the shell could not execute the plugin (permissions?)"
		case 127:
			hint = "; the shell did not find the plugin"
		}
		// It ran to completion: what it measured is kept.
		failed(fmt.Sprintf("(Return code of %d from %s is out of bounds%s)", x.ExitCode, plugin, hint), true)
	default:
		res.Status = model.Status(x.ExitCode)
		if len(bytes.TrimSpace(stdout)) == 0 {
			res.Output = "(No output on stdout)"
		}
	}
	if len(x.Stderr) > 0 && (res.Status == model.Unknown || out.Text == "") {
		notes = append(notes, "stderr:\n"+strings.TrimRight(clean(string(x.Stderr)), "\n"))
	}
	if x.StderrDropped > 0 {
		notes = append(notes, fmt.Sprintf("stderr truncated: %d bytes kept, %d beyond the limit dropped", len(x.Stderr), x.StderrDropped))
	}
	if x.PipesHeld {
		notes = append(notes, "a process that left the plugin's process group kept its output open; reading stopped")
	}
	notes = append(notes, out.Notes...)
	if len(notes) > 0 {
		res.LongOutput = joinNonEmpty(res.LongOutput, strings.Join(notes, "\n"))
	}
	return res
}

// startReason says why a plugin did not start, without Go's "fork/exec"
// jargon: "no such file or directory", "permission denied", ….
func startReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// deadlineNote formats the timeout a run started at start was given, for
// "timed out after 10s".
func deadlineNote(ctx context.Context, start time.Time) string {
	d, ok := ctx.Deadline()
	if !ok {
		return ""
	}
	return " after " + max(d.Sub(start), 0).Round(10*time.Millisecond).String()
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n" + b
}
