// Package nagios runs Nagios plugins with the complete Nagios Plugin API:
// exit codes, first line and long output, perfdata anywhere it may appear,
// macros ($USERn$, $HOSTADDRESS$, $ARGn$…), a timeout that kills the whole
// process group, capped output, and no shell unless one is asked for.
package nagios

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
)

// Settings are the keys of a check with type = "nagios".
type Settings struct {
	// Command is the plugin command line, with macros.
	Command string `toml:"command"`
	// Shell runs the command with /bin/sh -c (pipes, redirection, $VARS).
	Shell bool `toml:"shell"`
	// Args are $ARG1$, $ARG2$, … of the command line.
	Args []string `toml:"args"`
	// Env adds environment variables to the minimal default environment.
	Env map[string]string `toml:"env"`
	// OutputLimit overrides the per-stream output cap in bytes.
	OutputLimit int `toml:"output_limit"`
}

// Options configure the runner for every nagios check.
type Options struct {
	// ResourceFile is a Nagios resource.cfg defining $USERn$ macros.
	ResourceFile string
	// MaxConcurrent caps plugin processes at once across every user of
	// this Type (scheduled checks, NRPE); 0 means no extra cap.
	MaxConcurrent int
	// OutputLimit caps bytes kept per stream; 0 means DefaultOutputLimit.
	OutputLimit int
	Logger      *slog.Logger
}

// Type is the "nagios" check type.
type Type struct {
	opts  Options
	users map[int]string
	sem   chan struct{}
}

// New reads the resource file (if any) and returns the type.
func New(opts Options) (*Type, error) {
	t := &Type{opts: opts, users: map[int]string{}}
	if opts.ResourceFile != "" {
		u, err := ReadResourceFile(opts.ResourceFile)
		if err != nil {
			return nil, err
		}
		t.users = u
	}
	if opts.MaxConcurrent > 0 {
		t.sem = make(chan struct{}, opts.MaxConcurrent)
	}
	if t.opts.Logger == nil {
		t.opts.Logger = slog.Default()
	}
	return t, nil
}

// NewSettings implements checktype.Type.
func (t *Type) NewSettings() any { return &Settings{} }

// Prepare expands macros and splits the command once.
func (t *Type) Prepare(c *model.Check) (checktype.Runner, error) {
	s, ok := c.Settings.(*Settings)
	if !ok || s == nil {
		return nil, fmt.Errorf("nagios: missing settings")
	}
	argv, err := t.CommandLine(s.Command, s.Shell, &Macros{
		HostAddress: c.Target, HostName: c.Target, ServiceDesc: c.Name, Args: s.Args,
	})
	if err != nil {
		return nil, err
	}
	if !s.Shell && !filepath.IsAbs(argv[0]) && c.Dir != "" && strings.Contains(argv[0], "/") {
		argv[0] = filepath.Join(c.Dir, argv[0])
	}
	env := append([]string(nil), minimalEnv...)
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+s.Env[k])
	}
	limit := s.OutputLimit
	if limit <= 0 {
		limit = t.opts.OutputLimit
	}
	if s.OutputLimit < 0 {
		return nil, fmt.Errorf("output_limit must be >= 0")
	}
	return &runner{t: t, argv: argv, opts: ExecOptions{Env: env, OutputLimit: limit}}, nil
}

// CommandLine expands macros in command and returns the argv to run:
// split without a shell, or /bin/sh -c when shell is set. Besides the
// check's own macros, $USERn$ come from the resource file.
func (t *Type) CommandLine(command string, shell bool, m *Macros) ([]string, error) {
	if strings.TrimSpace(command) == "" {
		return nil, fmt.Errorf("command is required")
	}
	m.User = t.users
	expanded, err := m.Expand(command)
	if err != nil {
		return nil, err
	}
	if shell {
		return []string{"/bin/sh", "-c", expanded}, nil
	}
	argv, err := SplitCommand(expanded)
	if err != nil {
		return nil, fmt.Errorf("command %q: %w", command, err)
	}
	return argv, nil
}

// Run executes argv under the type's concurrency cap.
func (t *Type) Run(ctx context.Context, argv []string, opts ExecOptions) ExecResult {
	if t.sem != nil {
		select {
		case t.sem <- struct{}{}:
			defer func() { <-t.sem }()
		case <-ctx.Done():
			return ExecResult{ExitCode: -1, TimedOut: true}
		}
	}
	return Exec(ctx, argv, opts)
}

type runner struct {
	t    *Type
	argv []string
	opts ExecOptions
}

func (r *runner) Run(ctx context.Context, _ *model.Result) model.Result {
	timeout := ""
	if d, ok := ctx.Deadline(); ok {
		timeout = fmt.Sprintf(" after %.1fs", timeUntilOrZero(d))
	}
	return Interpret(r.t.Run(ctx, r.argv, r.opts), r.argv[0], timeout)
}
