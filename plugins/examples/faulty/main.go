// Command faulty is a check plugin that misbehaves on purpose, for the
// agent's supervision tests: with mode "exit" it exits mid-run, "hang"
// never answers, "panic" crashes the process from another goroutine (the
// SDK recovers panics in the check itself), "ok" behaves.
package main

import (
	"context"
	"os"
	"time"

	"github.com/reconmon/recon/plugins/sdk"
)

type config struct {
	Mode string `json:"mode"`
}

type faulty struct{}

func (faulty) Info() sdk.Info { return sdk.Info{Name: "faulty", Version: "1.0.0"} }

func (faulty) ConfigSchema() string {
	return `{"type": "object", "properties": {"mode": {"enum": ["ok", "exit", "hang", "panic"]}},
	         "required": ["mode"], "additionalProperties": false}`
}

func (faulty) Check(ctx context.Context, cfg *config, req sdk.Request) (sdk.Result, error) {
	switch cfg.Mode {
	case "exit":
		os.Exit(2)
	case "hang":
		time.Sleep(time.Hour) // ignores ctx, like a stuck plugin does
	case "panic":
		go func() { panic("faulty: boom") }()
		time.Sleep(time.Hour)
	}
	return sdk.OK("fine"), nil
}

func main() { sdk.ServeCheck[config](faulty{}) }
