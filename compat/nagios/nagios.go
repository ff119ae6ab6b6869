// Package nagios runs Nagios plugins with the complete Nagios Plugin API:
// exit codes, first line and long output, perfdata anywhere it may appear,
// macros ($USERn$, $HOSTADDRESS$, $ARGn$…), a timeout that kills the whole
// process group, capped output, a concurrency limit, and no shell unless
// one is asked for.
package nagios

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"time"

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

// Type is the "nagios" check type. It is also the executor every other
// runner of plugins (the NRPE server) goes through, so that they share
// one concurrency limit.
type Type struct {
	opts  Options
	users map[int]string
	sem   chan struct{}
	log   *slog.Logger
}

// New reads the resource file (if any) and returns the type. It starts
// nothing.
func New(opts Options) (*Type, error) {
	if opts.MaxConcurrent < 0 || opts.OutputLimit < 0 {
		return nil, fmt.Errorf("nagios: max_concurrent and output_limit must be >= 0")
	}
	t := &Type{opts: opts, users: map[int]string{}, log: opts.Logger}
	if opts.ResourceFile != "" {
		u, err := ReadResourceFile(opts.ResourceFile)
		if err != nil {
			return nil, fmt.Errorf("nagios: %w", err)
		}
		t.users = u
	}
	if opts.MaxConcurrent > 0 {
		t.sem = make(chan struct{}, opts.MaxConcurrent)
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	return t, nil
}

// NewSettings implements checktype.Type.
func (t *Type) NewSettings() any { return &Settings{} }

// Prepare expands the macros and splits the command once; runs only
// execute. Every mistake in the command line is reported here, at load
// time, not as a failing check later.
func (t *Type) Prepare(c *model.Check) (checktype.Runner, error) {
	s, ok := c.Settings.(*Settings)
	if !ok || s == nil {
		return nil, fmt.Errorf("nagios: settings are %T, want *nagios.Settings", c.Settings)
	}
	if s.OutputLimit < 0 {
		return nil, fmt.Errorf("output_limit must be >= 0, got %d", s.OutputLimit)
	}
	argv, err := t.CommandLine(s.Command, s.Shell, &Macros{
		HostAddress: c.Target, HostName: c.Target, ServiceDesc: c.Name, Args: s.Args, StrictArgs: true,
	})
	if err != nil {
		return nil, err
	}
	name := argv[0]
	if s.Shell {
		name = shellName(s.Command)
	} else if !filepath.IsAbs(argv[0]) && c.Dir != "" && strings.Contains(argv[0], "/") {
		// ./plugins/check_x is relative to the file that defines the check.
		argv[0] = filepath.Join(c.Dir, argv[0])
		name = argv[0]
	}
	env := MinimalEnv()
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("env: invalid variable name %q", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+s.Env[k]) // later entries override the defaults
	}
	return &runner{t: t, name: name, argv: argv, opts: ExecOptions{Env: env, OutputLimit: s.OutputLimit}}, nil
}

// shellName names a shell command in messages.
func shellName(command string) string {
	const max = 60
	command = strings.Join(strings.Fields(command), " ")
	if len(command) > max {
		command = command[:max] + "…"
	}
	return fmt.Sprintf("/bin/sh -c %q", command)
}

// CommandLine expands macros in command and returns the argv to run:
// split without a shell, or /bin/sh -c when shell is set. Besides the
// macros in m, $USERn$ come from the resource file. A command that needs a
// shell while shell is false is an error saying so.
func (t *Type) CommandLine(command string, shell bool, m *Macros) ([]string, error) {
	if strings.TrimSpace(command) == "" {
		return nil, errors.New("command is required")
	}
	mm := *m
	mm.User = t.users
	expanded, err := mm.Expand(command)
	if err != nil {
		return nil, fmt.Errorf("command %q: %w", command, err)
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

// Run executes argv under the type's concurrency limit and returns the raw
// execution. opts.OutputLimit 0 means the type's limit.
func (t *Type) Run(ctx context.Context, argv []string, opts ExecOptions) ExecResult {
	if opts.OutputLimit <= 0 {
		opts.OutputLimit = t.opts.OutputLimit
	}
	if t.sem != nil {
		select {
		case t.sem <- struct{}{}:
			defer func() { <-t.sem }()
		default:
			// All slots busy: wait for one, at most until ctx ends.
			start := time.Now()
			select {
			case t.sem <- struct{}{}:
				defer func() { <-t.sem }()
			case <-ctx.Done():
				return ExecResult{ExitCode: -1, TimedOut: true, Cause: context.Cause(ctx), Duration: time.Since(start),
					StartErr: fmt.Errorf("not started: all %d plugin slots ([nagios] max_concurrent) stayed busy until the timeout", cap(t.sem))}
			}
		}
	}
	x := Exec(ctx, argv, opts)
	if x.PipesHeld {
		t.log.Warn("nagios: a plugin's descendant left its process group and kept its output open", "command", argv[0])
	}
	return x
}

// Exec runs argv under the concurrency limit and returns both the raw
// execution (exit code, output) and its interpretation as a result; the
// NRPE server uses it to run a command line. The timeout message names
// ctx's deadline.
func (t *Type) Exec(ctx context.Context, argv []string, opts ExecOptions) (ExecResult, model.Result) {
	start := time.Now()
	x := t.Run(ctx, argv, opts)
	name := ""
	if len(argv) > 0 {
		name = argv[0]
	}
	return x, Interpret(x, name, deadlineNote(ctx, start))
}

type runner struct {
	t    *Type
	name string // the command in messages
	argv []string
	opts ExecOptions
}

func (r *runner) Run(ctx context.Context, _ *model.Result) model.Result {
	start := time.Now()
	return Interpret(r.t.Run(ctx, r.argv, r.opts), r.name, deadlineNote(ctx, start))
}
