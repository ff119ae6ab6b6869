// Command recon is the monitoring agent: one binary for running the agent,
// validating configuration, running checks by hand and the other tools.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit codes. check run exits with the worst Nagios status instead, so it
// can itself serve as a plugin.
const (
	exitOK     = 0
	exitFailed = 1 // the command ran and found problems (invalid config, agent error)
	exitUsage  = 2
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, a *app, args []string) int
}

// app carries the process's streams so commands can be tested in-process.
type app struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
}

func commands() []command {
	return []command{
		{"agent", "run the agent in the foreground", cmdAgent},
		{"config", "config check -c FILE: validate a configuration", cmdConfig},
		{"check", "check run: run checks once and print the results", cmdCheck},
		{"version", "print version and build information", cmdVersion},
		{"import", "import nagios FILES… | import nrpe FILE: translate Nagios/NRPE configuration", cmdImport},
		{"ingest", "ingest -c FILE: scale-out consumer, NATS JetStream → the configured store", cmdIngest},
		{"lua", "lua run FILE: run a Lua check script once", cmdLua},
		{"plugin", "plugin inspect BIN: print a plugin's info, config schema and sha256", cmdPlugin},
		{"rules", "rules test -c FILE [--from T --to T]: backtest alert rules on stored history", cmdRules},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &app{stdout: os.Stdout, stderr: os.Stderr, env: os.LookupEnv}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, a *app, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(a.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, a, args[1:])
		}
	}
	fmt.Fprintf(a.stderr, "recon: unknown command %q\n\n", args[0])
	usage(a.stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "recon — monitoring agent: fault detection and trend analysis from one check definition")
	fmt.Fprintln(w, "\nUsage: recon COMMAND [flags]\n\nCommands:")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'recon COMMAND --help' for the flags of a command.")
}

// subcommand dispatches "recon NOUN VERB" forms such as "config check".
func subcommand(ctx context.Context, a *app, noun string, args []string, verbs map[string]func(context.Context, *app, []string) int) int {
	names := make([]string, 0, len(verbs))
	for v := range verbs {
		names = append(names, v)
	}
	sort.Strings(names)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(a.stdout, "Usage: recon %s {%s} [flags]\n", noun, strings.Join(names, "|"))
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	f, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(a.stderr, "recon %s: unknown subcommand %q (want %s)\n", noun, args[0], strings.Join(names, ", "))
		return exitUsage
	}
	return f(ctx, a, args[1:])
}
