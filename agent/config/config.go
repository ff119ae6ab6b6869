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
	Name      string   `toml:"name"`
	Listen    string   `toml:"listen"`
	DataDir   string   `toml:"data_dir"`
	LogLevel  string   `toml:"log_level"`
	LogFormat string   `toml:"log_format"`
	Token     string   `toml:"token"`
	TLSCert   string   `toml:"tls_cert"`
	TLSKey    string   `toml:"tls_key"`
	Shutdown  Duration `toml:"shutdown_grace"`
	// MaxConcurrency caps checks running at once across all types; 0 = auto.
	MaxConcurrency int `toml:"max_concurrency"`
	// Concurrency caps checks running at once per check type.
	Concurrency map[string]int `toml:"concurrency"`
}

// Defaults is the [defaults] section: values for checks that omit them.
type Defaults struct {
	Period      Duration `toml:"period"`
	Timeout     Duration `toml:"timeout"`
	MaxAttempts int      `toml:"max_attempts"`
	RetryPeriod Duration `toml:"retry_period"`
}

// Nagios is the [nagios] section: options of the plugin runner.
type Nagios struct {
	ResourceFile  string `toml:"resource_file"`
	MaxConcurrent int    `toml:"max_concurrent"`
	OutputLimit   int    `toml:"output_limit"`
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
