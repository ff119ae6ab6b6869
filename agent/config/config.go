// Package config loads recon's TOML configuration strictly: an unknown key,
// a wrong type, a bad duration or a duplicate check name is an error naming
// file:line. It supports `include` of files, directories and globs and
// ${ENV} substitution. Type-specific keys of checks and sinks are decoded,
// just as strictly, into the settings struct their registered type provides.
package config

import (
	"os"
	"time"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

// Config is a fully loaded and validated configuration.
type Config struct {
	Agent    Agent
	Defaults Defaults
	Nagios   Nagios
	Checks   []*model.Check
	// Disabled are checks with enabled = false: validated, not scheduled.
	Disabled []*model.Check
	Sinks    []*sink.Spec
	// Files lists every file read, main file first.
	Files []string
	// Fingerprints holds a canonical form of each check's and sink's
	// definition, keyed by check ID string or "sink:"+name; reload compares
	// them to keep unchanged checks and sinks running untouched.
	Fingerprints map[string]string
	// DefaultSink is true when no [[sink]] was configured and the loader
	// added the default store, so nothing is discarded by default.
	DefaultSink bool
	// Sections holds the decoded registered sections ([nrpe],
	// [[snmp_trap]], …): for a single section the value New returned, for
	// a Multi section a []any of them. Absent sections are absent.
	Sections map[string]any
}

// Section is a top-level table that a component outside the core owns;
// the loader decodes it as strictly as its own sections.
type Section struct {
	// New returns a pointer to a zero value to decode into.
	New func() any
	// Multi marks an array of tables ([[name]]).
	Multi bool
}

// Agent is the [agent] section.
type Agent struct {
	// Name of this agent in results and check IDs (default: the host name).
	Name string `toml:"name"`
	// Listen is the HTTP API and web UI address (default 127.0.0.1:43919); any non-loopback address requires token.
	Listen string `toml:"listen"`
	// DataDir holds spools, the embedded store and alerter state (default "data", relative to the working directory).
	DataDir string `toml:"data_dir"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `toml:"log_level"`
	// LogFormat is text (default) or json.
	LogFormat string `toml:"log_format"`
	// Token is the bearer token the API requires (on everything but /healthz).
	Token string `toml:"token"`
	// TLSCert is a PEM certificate; with tls_key the API serves HTTPS.
	TLSCert string `toml:"tls_cert"`
	// TLSKey is the PEM key of tls_cert.
	TLSKey string `toml:"tls_key"`
	// Shutdown is how long in-flight checks may finish on stop (default 10s).
	Shutdown Duration `toml:"shutdown_grace"`
	// MaxConcurrency caps checks running at once across all types (0 = 512).
	MaxConcurrency int `toml:"max_concurrency"`
	// Concurrency caps checks running at once per check type.
	Concurrency map[string]int `toml:"concurrency"`
}

// Defaults is the [defaults] section: values for checks that omit them.
type Defaults struct {
	// Period between runs (default 1m).
	Period Duration `toml:"period"`
	// Timeout of a run (default 10s, capped at the check's period).
	Timeout Duration `toml:"timeout"`
	// MaxAttempts is Nagios's max_check_attempts: non-OK results are SOFT until this many in a row (default 3).
	MaxAttempts int `toml:"max_attempts"`
	// RetryPeriod is Nagios's retry_interval, used while SOFT (default 30s, capped at the period).
	RetryPeriod Duration `toml:"retry_period"`
}

// Nagios is the [nagios] section: options of the plugin runner.
type Nagios struct {
	// ResourceFile is a Nagios resource.cfg defining $USER1$…$USER256$.
	ResourceFile string `toml:"resource_file"`
	// MaxConcurrent caps plugin processes at once, NRPE included (0 = no extra cap).
	MaxConcurrent int `toml:"max_concurrent"`
	// OutputLimit is the bytes kept of each of stdout and stderr (default 65536); truncation is noted.
	OutputLimit int `toml:"output_limit"`
}

// Built-in defaults, documented in configs/recon.toml.
const (
	DefaultListen      = "127.0.0.1:43919"
	DefaultDataDir     = "data"
	DefaultPeriod      = time.Minute
	DefaultTimeout     = 10 * time.Second
	DefaultMaxAttempts = 3
	DefaultRetryPeriod = 30 * time.Second
	DefaultShutdown    = 10 * time.Second
	DefaultBatchSize   = 1000
	DefaultSinkType    = "sqlite"
	MinPeriod          = 10 * time.Millisecond
)

// Registries are the check and sink types the loader may decode into.
type Registries struct {
	Checks *checktype.Registry
	Sinks  *sink.Registry
	// DefaultSink is the sink type added when none is configured; empty
	// means DefaultSinkType.
	DefaultSink string
	// Sections are the extra top-level tables, by name.
	Sections map[string]Section
}

// Options tune loading.
type Options struct {
	// Env looks up ${VAR}; nil means os.LookupEnv.
	Env LookupEnv
	// Hostname names the agent when [agent] name is unset; nil means os.Hostname.
	Hostname func() (string, error)
}

func (o *Options) env() LookupEnv {
	if o == nil || o.Env == nil {
		return os.LookupEnv
	}
	return o.Env
}

func (o *Options) hostname() (string, error) {
	if o == nil || o.Hostname == nil {
		return os.Hostname()
	}
	return o.Hostname()
}
