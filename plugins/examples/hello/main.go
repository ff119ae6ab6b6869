// Command hello is the smallest useful recon check plugin — the one the
// SDK tutorial builds (plugins/sdk/README.md).
package main

import (
	"context"

	"github.com/reconmon/recon/plugins/sdk"
)

type config struct {
	Greeting string `json:"greeting"`
}

type hello struct{}

func (hello) Info() sdk.Info { return sdk.Info{Name: "hello", Version: "1.0.0"} }

func (hello) ConfigSchema() string {
	return `{"type": "object", "properties": {"greeting": {"type": "string", "minLength": 1}},
	         "required": ["greeting"], "additionalProperties": false}`
}

func (hello) Check(ctx context.Context, cfg *config, req sdk.Request) (sdk.Result, error) {
	return sdk.OK("%s, %s", cfg.Greeting, req.Target).With(sdk.IntMetric("answer", 42)), nil
}

func main() { sdk.ServeCheck[config](hello{}) }
