package nagios

import (
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"time"

	"github.com/reconmon/recon/agent/model"
)

func timeUntilOrZero(d time.Time) float64 {
	// The deadline is in the future when the run starts; report the
	// configured timeout, rounded, as Nagios does.
	return max(time.Until(d), 0).Round(100 * time.Millisecond).Seconds()
}

// Interpret turns an execution into a result following the plugin API:
// exit codes 0-3 are the status; anything else, a signal, a timeout or a
// failure to start is UNKNOWN with the reason in the output.
func Interpret(x ExecResult, plugin, timeoutNote string) model.Result {
	res := model.Result{Duration: x.Duration}
	out := ParseOutput(x.Stdout)
	res.Output, res.LongOutput, res.Metrics = out.Text, out.LongOutput, out.Metrics
	var notes []string
	switch {
	case x.StartErr != nil:
		res.Status = model.Unknown
		res.Output = fmt.Sprintf("(could not execute %s: %s)", plugin, startReason(x.StartErr))
	case x.TimedOut:
		res.Status = model.Unknown
		if res.Output != "" {
			notes = append(notes, "partial output: "+res.Output)
		}
		res.Output = fmt.Sprintf("(Plugin timed out%s; its process group was killed)", timeoutNote)
	case x.Signal != 0:
		res.Status = model.Unknown
		if res.Output != "" {
			notes = append(notes, "output: "+res.Output)
		}
		res.Output = fmt.Sprintf("(Plugin killed by signal %d: %v)", int(x.Signal), x.Signal)
	case x.ExitCode < 0 || x.ExitCode > 3:
		res.Status = model.Unknown
		if res.Output != "" {
			notes = append(notes, "output: "+res.Output)
		}
		hint := ""
		if x.ExitCode == 126 || x.ExitCode == 127 {
			hint = " - plugin may be missing or not executable"
		}
		res.Output = fmt.Sprintf("(Return code of %d for %s is out of bounds%s)", x.ExitCode, plugin, hint)
	default:
		res.Status = model.Status(x.ExitCode)
		if res.Output == "" {
			res.Output = "(No output on stdout)"
		}
	}
	// stderr explains failures; on success it is usually noise.
	if len(x.Stderr) > 0 && (res.Status == model.Unknown || len(x.Stdout) == 0) {
		notes = append(notes, "stderr: "+strings.TrimRight(string(x.Stderr), "\n"))
	}
	if x.Truncated > 0 {
		notes = append(notes, fmt.Sprintf("output truncated: %d bytes beyond the limit were dropped", x.Truncated))
	}
	notes = append(notes, out.Notes...)
	if len(notes) > 0 {
		res.LongOutput = joinNonEmpty(res.LongOutput, strings.Join(notes, "\n"))
	}
	return res
}

func startReason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, exec.ErrNotFound):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return err.Error()
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
