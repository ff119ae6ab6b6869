package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/lua"
	pluginhost "github.com/reconmon/recon/plugins/host"
	"github.com/reconmon/recon/sinks/lineproto"
)

func cmdLua(ctx context.Context, a *app, args []string) int {
	return subcommand(ctx, a, "lua", args, map[string]func(context.Context, *app, []string) int{
		"run": cmdLuaRun,
	})
}

// cmdLuaRun runs one script outside any configuration: the quickest loop
// for writing a check. It exits with the result's Nagios status.
func cmdLuaRun(ctx context.Context, a *app, args []string) int {
	fs := newFlags(a, "lua run", `lua run FILE [--target T] [--set key=value]... [--allow CAP]... [--timeout 10s] [--format lineproto|json]

Runs a Lua check script once, prints the result and exits with its Nagios
status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).`)
	var sets, allow listFlag
	target := fs.String("target", "", "the check's target (ctx.target)")
	fs.Var(&sets, "set", "config value `key=value` for ctx.config (value in TOML syntax, else a string; repeatable)")
	fs.Var(&allow, "allow", "grant a capability: "+strings.Join(lua.Capabilities(), ", ")+" (repeatable)")
	timeout := fs.Duration("timeout", 10*time.Second, "run timeout")
	format := fs.String("format", "lineproto", "output format: lineproto or json")
	pos, code := parseFlags(fs, args)
	if code >= 0 {
		if code == exitUsage {
			return int(model.Unknown)
		}
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(a.stderr, "recon lua run: want exactly one script FILE")
		return int(model.Unknown)
	}
	if *format != "lineproto" && *format != "json" {
		fmt.Fprintf(a.stderr, "recon lua run: --format %q: want lineproto or json\n", *format)
		return int(model.Unknown)
	}
	conf := map[string]any{}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			fmt.Fprintf(a.stderr, "recon lua run: --set %q: want key=value\n", s)
			return int(model.Unknown)
		}
		var parsed map[string]any
		if err := toml.Unmarshal([]byte("v = "+v), &parsed); err == nil {
			conf[k] = parsed["v"]
		} else {
			conf[k] = v
		}
	}
	log := slog.New(slog.NewTextHandler(a.stderr, nil))
	res, err := lua.RunFile(ctx, pos[0], lua.RunOptions{Target: *target, Config: conf, Allow: allow, Timeout: *timeout, Logger: log})
	if err != nil {
		fmt.Fprintln(a.stderr, "recon lua run:", err)
		return int(model.Unknown)
	}
	var buf []byte
	if *format == "json" {
		buf = append(res.AppendJSON(nil), '\n')
	} else {
		var enc lineproto.Encoder
		if buf, _, err = enc.Append(nil, &res); err != nil {
			fmt.Fprintln(a.stderr, "recon lua run:", err)
		}
	}
	a.stdout.Write(buf)
	if res.LongOutput != "" && *format != "json" {
		fmt.Fprintln(a.stderr, res.LongOutput)
	}
	return statusExit(res.Status)
}

func cmdPlugin(ctx context.Context, a *app, args []string) int {
	return subcommand(ctx, a, "plugin", args, map[string]func(context.Context, *app, []string) int{
		"inspect": cmdPluginInspect,
	})
}

// cmdPluginInspect starts a plugin, prints what it says about itself and
// its config schema, and the sha256 to pin in the configuration.
func cmdPluginInspect(ctx context.Context, a *app, args []string) int {
	fs := newFlags(a, "plugin inspect", "plugin inspect BIN [--format text|json] [--timeout 10s]")
	format := fs.String("format", "text", "output format: text or json")
	timeout := fs.Duration("timeout", 10*time.Second, "how long the plugin may take to start and answer")
	pos, code := parseFlags(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(a.stderr, "recon plugin inspect: want exactly one plugin binary")
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(a.stderr, "recon plugin inspect: --format %q: want text or json\n", *format)
		return exitUsage
	}
	ictx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	info, schema, err := pluginhost.Inspect(ictx, pos[0])
	if err != nil {
		fmt.Fprintln(a.stderr, "recon plugin inspect:", err)
		return exitFailed
	}
	var pretty any
	if len(schema) > 0 && json.Unmarshal(schema, &pretty) != nil {
		pretty = string(schema)
	}
	if *format == "json" {
		out, _ := json.MarshalIndent(struct {
			pluginhost.Info
			ConfigSchema any `json:"config_schema,omitempty"`
		}{info, pretty}, "", "  ")
		fmt.Fprintln(a.stdout, string(out))
		return exitOK
	}
	fmt.Fprintf(a.stdout, "name:        %s\nversion:     %s\nkind:        %s\nprotocol:    %d\n", info.Name, info.Version, info.Kind, info.ProtocolVersion)
	if info.Description != "" {
		fmt.Fprintf(a.stdout, "description: %s\n", info.Description)
	}
	if info.SDK != "" {
		fmt.Fprintf(a.stdout, "sdk:         %s\n", info.SDK)
	}
	fmt.Fprintf(a.stdout, "path:        %s\nsha256:      %s\n", info.Path, info.SHA256)
	if pretty != nil {
		s, _ := json.MarshalIndent(pretty, "", "  ")
		fmt.Fprintf(a.stdout, "config schema:\n%s\n", s)
	}
	fmt.Fprintf(a.stdout, "\nconfig:\n  path = %q\n  sha256 = %q\n", info.Path, info.SHA256)
	return exitOK
}
