// Package passive accepts check results produced outside recon, the way
// Nagios does: checks of type "passive" (with Nagios freshness checking),
// PROCESS_SERVICE_CHECK_RESULT / PROCESS_HOST_CHECK_RESULT external command
// lines on a command file (FIFO) or Unix socket, and JSON results over HTTP.
package passive

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
)

// Settings are the keys of a check with type = "passive".
type Settings struct {
	// Freshness is Nagios's freshness_threshold: when no result arrived
	// for this long the check reports StaleStatus. 0 disables it.
	Freshness config.Duration `toml:"freshness"`
	// StaleStatus is the status of the stale result (default UNKNOWN).
	StaleStatus string `toml:"stale_status"`
	// StaleOutput replaces the default explanation.
	StaleOutput string `toml:"stale_output"`
}

// Type is the "passive" check type.
type Type struct{}

func (Type) NewSettings() any { return &Settings{} }

func (Type) Prepare(c *model.Check) (checktype.Runner, error) {
	s, ok := c.Settings.(*Settings)
	if !ok || s == nil {
		s = &Settings{}
	}
	st := model.Unknown
	if s.StaleStatus != "" {
		var err error
		if st, err = model.ParseStatus(s.StaleStatus); err != nil {
			return nil, fmt.Errorf("stale_status: %w", err)
		}
	}
	out := s.StaleOutput
	if out == "" {
		out = fmt.Sprintf("(No passive result received for %v: the result is stale)", s.Freshness.D())
	}
	return &runner{freshness: s.Freshness.D(), status: st, output: out}, nil
}

type runner struct {
	freshness time.Duration
	status    model.Status
	output    string
}

func (r *runner) Freshness() time.Duration { return r.freshness }

// Run is called by the scheduler only when the check is stale.
func (r *runner) Run(context.Context, *model.Result) model.Result {
	return model.Result{Status: r.status, Output: r.output}
}

// Command is one parsed external command that carries a check result.
type Command struct {
	Time    time.Time // the [timestamp], or zero
	Host    string
	Service string // empty for a host check result
	Status  model.Status
	Output  string // plugin output: text|perfdata, long output after "\n"
}

// ParseCommand parses an external command line:
//
//	[1700000000] PROCESS_SERVICE_CHECK_RESULT;host;service;code;output
//	[1700000000] PROCESS_HOST_CHECK_RESULT;host;code;output
//
// The timestamp is optional. Host codes 0/1/2 (UP/DOWN/UNREACHABLE) map to
// OK/CRITICAL/UNKNOWN. Output may contain ';' and escaped "\n".
func ParseCommand(line string) (Command, error) {
	var c Command
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "[") {
		end := strings.IndexByte(line, ']')
		if end < 0 {
			return c, fmt.Errorf("external command: unterminated [timestamp]")
		}
		var ts int64
		if _, err := fmt.Sscan(line[1:end], &ts); err != nil || ts < 0 {
			return c, fmt.Errorf("external command: invalid timestamp %q", line[1:end])
		}
		c.Time = time.Unix(ts, 0)
		line = strings.TrimLeft(line[end+1:], " ")
	}
	name, rest, _ := strings.Cut(line, ";")
	switch name {
	case "PROCESS_SERVICE_CHECK_RESULT":
		parts := strings.SplitN(rest, ";", 4)
		if len(parts) < 3 {
			return c, fmt.Errorf("PROCESS_SERVICE_CHECK_RESULT: want host;service;code;output")
		}
		c.Host, c.Service = parts[0], parts[1]
		st, err := model.ParseStatus(parts[2])
		if err != nil {
			return c, fmt.Errorf("PROCESS_SERVICE_CHECK_RESULT: return code: %w", err)
		}
		c.Status = st
		if len(parts) == 4 {
			c.Output = parts[3]
		}
	case "PROCESS_HOST_CHECK_RESULT":
		parts := strings.SplitN(rest, ";", 3)
		if len(parts) < 2 {
			return c, fmt.Errorf("PROCESS_HOST_CHECK_RESULT: want host;code;output")
		}
		c.Host = parts[0]
		switch strings.TrimSpace(parts[1]) {
		case "0", "UP":
			c.Status = model.OK
		case "1", "DOWN":
			c.Status = model.Critical
		case "2", "UNREACHABLE":
			c.Status = model.Unknown
		default:
			return c, fmt.Errorf("PROCESS_HOST_CHECK_RESULT: host state %q (want 0 UP, 1 DOWN, 2 UNREACHABLE)", parts[1])
		}
		if len(parts) == 3 {
			c.Output = parts[2]
		}
	case "":
		return c, fmt.Errorf("external command: empty")
	default:
		return c, fmt.Errorf("external command %q is not supported (PROCESS_SERVICE_CHECK_RESULT and PROCESS_HOST_CHECK_RESULT are)", name)
	}
	if c.Host == "" {
		return c, fmt.Errorf("%s: host name is empty", name)
	}
	c.Output = strings.ReplaceAll(c.Output, `\n`, "\n")
	return c, nil
}

// CheckNames are the check names a command may address, in order of
// preference: "host/service" (how the importer names services) and then
// the service alone; for a host result the host name.
func (c Command) CheckNames() []string {
	if c.Service == "" {
		return []string{c.Host}
	}
	return []string{c.Host + "/" + c.Service, c.Service}
}
