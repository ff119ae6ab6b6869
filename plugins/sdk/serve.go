package sdk

import (
	"log/slog"
	"os"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	pb "github.com/reconmon/recon/plugins/proto"
)

// DefaultConcurrency is how many checks of one batch run at once when the
// plugin does not implement BatchChecker.
const DefaultConcurrency = 64

// Option changes how a plugin is served.
type Option func(*options)

type options struct {
	concurrency int
	logger      *slog.Logger
	test        *plugin.ServeTestConfig
}

// WithConcurrency sets how many checks of one batch run at once
// (default DefaultConcurrency); 1 runs them one after another.
func WithConcurrency(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.concurrency = n
		}
	}
}

// WithLogger replaces Logger() for the SDK's own messages.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

func buildOptions(opts []Option) *options {
	o := &options{concurrency: DefaultConcurrency, logger: Logger()}
	for _, f := range opts {
		f(o)
	}
	return o
}

// ServeCheck serves a check plugin over go-plugin's gRPC protocol and
// returns when recon closes the plugin. Run by hand (not by recon), the
// binary says that it is a plugin and exits with status 1.
func ServeCheck[C any](impl Check[C], opts ...Option) {
	o := buildOptions(opts)
	serve(o, pb.ServeCheck(newCheckServer(impl, o)))
}

// ServeSink serves a sink plugin; see ServeCheck.
func ServeSink[C any](impl Sink[C], opts ...Option) {
	o := buildOptions(opts)
	serve(o, pb.ServeSink(newSinkServer(impl, o)))
}

func serve(o *options, plugins map[int]plugin.PluginSet) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  pb.Handshake(),
		VersionedPlugins: plugins,
		GRPCServer:       plugin.DefaultGRPCServer,
		// go-plugin's own messages, as JSON lines recon parses.
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "go-plugin", Level: hclog.Info, Output: stderr, JSONFormat: true,
		}),
		Test: o.test,
	})
}

// stderr is the process's real standard error, kept before go-plugin
// redirects os.Stderr into its stdio stream: recon reads this one as the
// plugin's log.
var stderr = os.Stderr
