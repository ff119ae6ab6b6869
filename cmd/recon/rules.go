package main

import (
	"context"
	"fmt"
	"time"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/sink"
	"github.com/reconmon/recon/agent/store"
	"github.com/reconmon/recon/sinks/alerter"
)

func cmdRules(ctx context.Context, a *app, args []string) int {
	return subcommand(ctx, a, "rules", args, map[string]func(context.Context, *app, []string) int{
		"test": cmdRulesTest,
	})
}

// cmdRulesTest backtests the alert rules of the configuration against the
// history in its trend store.
func cmdRulesTest(ctx context.Context, a *app, args []string) int {
	fs := newFlags(a, "rules test", `rules test -c FILE [--from T] [--to T]

Replays stored history from the configured trend store through the alert
rules of the configuration's alerter sink and prints what would have fired
and cleared. Nothing is notified. T is RFC 3339, Unix seconds, or relative
to now (-24h).`)
	cfgPath := fs.String("c", "", "configuration `file` (required)")
	fromS := fs.String("from", "-24h", "start of the replay")
	toS := fs.String("to", "now", "end of the replay")
	if _, code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(a.stderr, "recon rules test: -c FILE is required")
		return exitUsage
	}
	now := time.Now()
	from, err := parseWhen(*fromS, now)
	if err != nil {
		fmt.Fprintln(a.stderr, "recon rules test: --from:", err)
		return exitUsage
	}
	to, err := parseWhen(*toS, now)
	if err != nil {
		fmt.Fprintln(a.stderr, "recon rules test: --to:", err)
		return exitUsage
	}
	pre, err := config.Load(*cfgPath, wire(a, nil).registries, &config.Options{Env: a.env})
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return exitFailed
	}
	w := wire(a, pre)
	defer w.close()
	cfg, err := config.Load(*cfgPath, w.registries, &config.Options{Env: a.env})
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return exitFailed
	}
	var al *alerter.Sink
	var st store.Store
	for _, spec := range cfg.Sinks {
		typ, _ := w.registries.Sinks.Lookup(spec.Type)
		s, err := typ.New(spec, sink.Env{Agent: cfg.Agent.Name, DataDir: cfg.Agent.DataDir})
		if err != nil {
			fmt.Fprintf(a.stderr, "%s: sink %q: %v\n", spec.Source, spec.Name, err)
			return exitFailed
		}
		switch x := s.(type) {
		case *alerter.Sink:
			if al == nil {
				al = x
			}
		case store.Store:
			if st == nil {
				if err := s.Connect(ctx); err != nil {
					fmt.Fprintf(a.stderr, "recon rules test: open the trend store %q: %v\n", spec.Name, err)
					return exitFailed
				}
				defer s.Close()
				st = x
			}
		}
	}
	if al == nil {
		fmt.Fprintln(a.stderr, "recon rules test: the configuration has no alerter sink (type = \"alerter\")")
		return exitFailed
	}
	if st == nil {
		fmt.Fprintln(a.stderr, "recon rules test: the configuration has no queryable trend store (sqlite or postgres)")
		return exitFailed
	}
	rep, err := al.Backtest(ctx, st, from, to)
	if err != nil {
		fmt.Fprintln(a.stderr, "recon rules test:", err)
		return exitFailed
	}
	fmt.Fprintf(a.stdout, "backtest %s .. %s\n", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	rep.PrintTimeline(a.stdout)
	return exitOK
}

func parseWhen(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "now":
		return now, nil
	case len(s) > 0 && (s[0] == '-' || s[0] == '+'):
		d, err := time.ParseDuration(s)
		return now.Add(d), err
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	var sec int64
	if _, err := fmt.Sscan(s, &sec); err == nil {
		return time.Unix(sec, 0), nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339, Unix seconds or a relative duration like -24h", s)
}
