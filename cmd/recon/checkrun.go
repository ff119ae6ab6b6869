package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/sinks/lineproto"
)

func cmdCheck(ctx context.Context, a *app, args []string) int {
	return subcommand(ctx, a, "check", args, map[string]func(context.Context, *app, []string) int{
		"run": cmdCheckRun,
	})
}

// statusExit maps the worst status to the process exit code (Nagios codes).
func statusExit(s model.Status) int { return int(s) }

func cmdCheckRun(ctx context.Context, a *app, args []string) int {
	fs := newFlags(a, "check run", `check run -c FILE [--check NAME]... [--format lineproto|json]
       recon check run --type nagios --command "CMD" [--target T] [--timeout 10s] [--set key=value]...
       recon check run --type lua --script FILE ...   |   --type plugin --path BIN ...

Runs checks once and prints one result per line, like 'telegraf --test'.
Exits with the worst Nagios status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN);
a usage or configuration error exits 3 as well, as plugins do.`)
	cfgPath := fs.String("c", "", "configuration `file` to take checks from")
	var names, sets listFlag
	fs.Var(&names, "check", "run only the check `NAME` (repeatable)")
	format := fs.String("format", "lineproto", "output format: lineproto or json")
	typ := fs.String("type", "", "ad-hoc check type: nagios, lua, plugin, …")
	command := fs.String("command", "", "nagios: plugin command line")
	script := fs.String("script", "", "lua: script file")
	path := fs.String("path", "", "plugin: plugin binary")
	name := fs.String("name", "", "ad-hoc: check name (default: the type)")
	target := fs.String("target", "", "ad-hoc: target host or address")
	timeout := fs.Duration("timeout", 10*time.Second, "ad-hoc: timeout")
	fs.Var(&sets, "set", "ad-hoc: type setting `key=value` (value in TOML syntax, else a string; repeatable)")
	if _, code := parseFlags(fs, args); code >= 0 {
		if code == exitUsage {
			return int(model.Unknown)
		}
		return code
	}
	if *format != "lineproto" && *format != "json" {
		fmt.Fprintf(a.stderr, "recon check run: --format %q: want lineproto or json\n", *format)
		return int(model.Unknown)
	}
	if (*cfgPath == "") == (*typ == "") {
		fmt.Fprintln(a.stderr, "recon check run: give either -c FILE or --type TYPE")
		return int(model.Unknown)
	}
	var cfg *config.Config
	var w *wiring
	var err error
	if *cfgPath != "" {
		var pre *config.Config
		pre, err = config.Load(*cfgPath, wire(a, nil).registries, &config.Options{Env: a.env})
		if err == nil {
			w = wire(a, pre)
			cfg, err = config.Load(*cfgPath, w.registries, &config.Options{Env: a.env})
		}
	} else {
		doc, derr := adhocConfig(*typ, *name, *command, *script, *path, *target, *timeout, sets)
		if derr != nil {
			fmt.Fprintln(a.stderr, "recon check run:", derr)
			return int(model.Unknown)
		}
		w = wire(a, nil)
		cfg, err = config.Parse("command line", doc, w.registries, &config.Options{Env: a.env})
	}
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return int(model.Unknown)
	}
	defer w.close()
	checks, err := selectChecks(cfg.Checks, names)
	if err != nil {
		fmt.Fprintln(a.stderr, "recon check run:", err)
		return int(model.Unknown)
	}
	results := runOnce(ctx, w.registries.Checks, cfg.Agent.Name, checks)
	worst := model.OK
	var buf []byte
	var enc lineproto.Encoder
	for i := range results {
		r := &results[i]
		worst = model.Worst(worst, r.Status)
		buf = buf[:0]
		if *format == "json" {
			buf = append(r.AppendJSON(buf), '\n')
		} else {
			var skipped int
			buf, skipped, err = enc.Append(buf, r)
			if err != nil {
				fmt.Fprintf(a.stderr, "recon check run: %s: %v\n", r.Check, err)
			} else if skipped > 0 {
				fmt.Fprintf(a.stderr, "recon check run: %s: %d NaN/Inf metric values cannot be written as line protocol\n", r.Check, skipped)
			}
		}
		a.stdout.Write(buf)
	}
	return statusExit(worst)
}

// adhocConfig builds the TOML of a single check from flags, so ad-hoc
// checks go through exactly the validation of configured ones.
func adhocConfig(typ, name, command, script, path, target string, timeout time.Duration, sets []string) ([]byte, error) {
	if name == "" {
		name = typ
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be > 0")
	}
	check := map[string]any{
		"name": name, "type": typ, "timeout": timeout.String(), "period": timeout.String(), "max_attempts": 1,
	}
	if target != "" {
		check["target"] = target
	}
	for k, v := range map[string]string{"command": command, "script": script, "path": path} {
		if v != "" {
			check[k] = v
		}
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want key=value", s)
		}
		var parsed map[string]any
		if err := toml.Unmarshal([]byte("v = "+v), &parsed); err == nil {
			check[k] = parsed["v"]
		} else {
			check[k] = v
		}
	}
	return toml.Marshal(map[string]any{"check": []any{check}})
}

func selectChecks(all []*model.Check, names []string) ([]*model.Check, error) {
	if len(names) == 0 {
		return all, nil
	}
	byName := map[string]*model.Check{}
	for _, c := range all {
		byName[c.Name] = c
	}
	var out []*model.Check
	for _, n := range names {
		c, ok := byName[n]
		if !ok {
			known := make([]string, 0, len(byName))
			for k := range byName {
				known = append(known, k)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("no check named %q (have: %s)", n, strings.Join(known, ", "))
		}
		out = append(out, c)
	}
	return out, nil
}

// runOnce runs each check once, concurrently, and returns the results in
// the order of checks.
func runOnce(ctx context.Context, reg *checktype.Registry, agent string, checks []*model.Check) []model.Result {
	results := make([]model.Result, len(checks))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = runCheck(ctx, reg, agent, c)
		}()
	}
	wg.Wait()
	return results
}

func runCheck(ctx context.Context, reg *checktype.Registry, agent string, c *model.Check) model.Result {
	var res model.Result
	start := time.Now()
	typ, ok := reg.Lookup(c.Type)
	if !ok {
		res = checktype.Unknown("unknown check type %q", c.Type)
	} else if r, err := typ.Prepare(c); err != nil {
		res = checktype.Unknown("%v", err)
	} else {
		rctx, cancel := context.WithTimeout(ctx, c.Timeout)
		res = r.Run(rctx, nil)
		cancel()
		closeRunner(r)
	}
	if res.Duration == 0 {
		res.Duration = time.Since(start)
	}
	res.CheckID, res.Check, res.Type, res.Target, res.Agent, res.Time = c.ID, c.Name, c.Type, c.Target, agent, start
	res.StateType, res.Attempt = model.Hard, 1
	if res.Tags == nil {
		res.Tags = c.Tags
	}
	return res
}

func closeRunner(r checktype.Runner) {
	if c, ok := r.(checktype.Closer); ok {
		c.Close()
	}
}
