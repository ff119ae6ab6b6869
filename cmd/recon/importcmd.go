package main

import (
	"context"
	"fmt"

	"github.com/reconmon/recon/compat/importer"
)

func cmdImport(ctx context.Context, a *app, args []string) int {
	return subcommand(ctx, a, "import", args, map[string]func(context.Context, *app, []string) int{
		"nagios": cmdImportNagios,
		"nrpe":   cmdImportNRPE,
	})
}

func cmdImportNagios(_ context.Context, a *app, args []string) int {
	fs := newFlags(a, "import nagios", `import nagios [--resource FILE] FILE|DIR...

Reads Nagios object configuration (object files, nagios.cfg with cfg_file and
cfg_dir, or directories of *.cfg) and prints equivalent recon TOML on stdout.
What cannot be translated is kept as comments; warnings go to stderr.`)
	resource := fs.String("resource", "", "resource.cfg defining $USERn$ (default: from nagios.cfg, else /etc/nagios4/resource.cfg)")
	files, code := parseFlags(fs, args)
	if code >= 0 {
		return code
	}
	if len(files) == 0 {
		fmt.Fprintln(a.stderr, "recon import nagios: give at least one file or directory")
		return exitUsage
	}
	out, err := importer.ImportNagios(files, importer.NagiosOptions{ResourceFile: *resource})
	if err != nil {
		fmt.Fprintln(a.stderr, "recon import nagios:", err)
		return exitFailed
	}
	a.stdout.Write(out.TOML)
	for _, w := range out.Warnings {
		fmt.Fprintln(a.stderr, "warning:", w)
	}
	fmt.Fprintf(a.stderr, "imported %d runnable checks\n", out.Checks)
	return exitOK
}

func cmdImportNRPE(_ context.Context, a *app, args []string) int {
	fs := newFlags(a, "import nrpe", `import nrpe FILE

Reads an nrpe.cfg (with include and include_dir) and prints the equivalent
[nrpe] section on stdout.`)
	files, code := parseFlags(fs, args)
	if code >= 0 {
		return code
	}
	if len(files) != 1 {
		fmt.Fprintln(a.stderr, "recon import nrpe: give exactly one nrpe.cfg")
		return exitUsage
	}
	out, err := importer.ImportNRPE(files[0])
	if err != nil {
		fmt.Fprintln(a.stderr, "recon import nrpe:", err)
		return exitFailed
	}
	a.stdout.Write(out.TOML)
	for _, w := range out.Warnings {
		fmt.Fprintln(a.stderr, "warning:", w)
	}
	fmt.Fprintf(a.stderr, "imported %d commands\n", out.Checks)
	return exitOK
}
