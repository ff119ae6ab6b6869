// Command docgen regenerates docs/configuration.md.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/reconmon/recon/internal/docgen"
)

func main() {
	write := flag.Bool("write", false, "write docs/configuration.md instead of printing")
	flag.Parse()
	out, err := docgen.Generate(".", docgen.Sections)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *write {
		if err := os.WriteFile("docs/configuration.md", out, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Stdout.Write(out)
}
