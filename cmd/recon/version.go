package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func cmdVersion(_ context.Context, a *app, args []string) int {
	fs := newFlags(a, "version", "version")
	if _, code := parseFlags(fs, args); code >= 0 {
		return code
	}
	fmt.Fprintf(a.stdout, "recon %s\n", version)
	fmt.Fprintf(a.stdout, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision", "vcs.time", "vcs.modified":
				fmt.Fprintf(a.stdout, "%s: %s\n", s.Key, s.Value)
			}
		}
	}
	return exitOK
}
