package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	toml "github.com/pelletier/go-toml/v2"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/sink"
)

// fileDoc is the shape of one TOML file. Check and sink tables are kept as
// maps here and decoded later, once all files are read and the defaults
// are known, into common fields plus their type's own settings.
type fileDoc struct {
	Include  []string         `toml:"include"`
	Agent    *Agent           `toml:"agent"`
	Defaults *Defaults        `toml:"defaults"`
	Nagios   *Nagios          `toml:"nagios"`
	Check    []map[string]any `toml:"check"`
	Sink     []map[string]any `toml:"sink"`
}

// checkCommon holds the keys every check has; pointers tell "unset" from zero.
type checkCommon struct {
	// Name is unique among checks (required).
	Name string `toml:"name"`
	// ID is a UUID; default UUIDv5 of the agent and check name, stable across restarts.
	ID string `toml:"id"`
	// Type is nagios, lua, plugin, snmp, passive, … (required).
	Type string `toml:"type"`
	// Target is the host or address checked ($HOSTADDRESS$).
	Target string `toml:"target"`
	// Period between runs (default from [defaults]).
	Period *Duration `toml:"period"`
	// Timeout of a run; at most the period (runs never overlap).
	Timeout *Duration `toml:"timeout"`
	// MaxAttempts before a non-OK state turns HARD.
	MaxAttempts *int `toml:"max_attempts"`
	// RetryPeriod between runs while SOFT.
	RetryPeriod *Duration `toml:"retry_period"`
	// Tags are added to every result (labels for stores and alerts).
	Tags map[string]string `toml:"tags"`
	// Enabled = false keeps a validated definition without scheduling it (default true).
	Enabled *bool `toml:"enabled"`
}

type sinkCommon struct {
	// Name is unique among sinks and names the spool directory (default: the type).
	Name string `toml:"name"`
	// Type is sqlite, postgres, lineproto, alerter, nats, plugin (required).
	Type string `toml:"type"`
	// BatchSize is the most results per write (default 1000).
	BatchSize *int `toml:"batch_size"`
	// MaxSpoolBytes bounds the spool on disk; when full, producers wait (default 0: bounded by free disk).
	MaxSpoolBytes *int64 `toml:"max_spool_bytes"`
	// Fsync is the spool's durability: always (default; acknowledged = on disk), interval or never.
	Fsync string `toml:"fsync"`
	// FsyncInterval applies to fsync = "interval" (default 1s).
	FsyncInterval *Duration `toml:"fsync_interval"`
	// Enabled = false skips the sink; its spool stays on disk.
	Enabled *bool `toml:"enabled"`
}

var (
	checkKeys = tomlKeys(checkCommon{})
	sinkKeys  = tomlKeys(sinkCommon{})
)

func tomlKeys(v any) map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeOf(v)
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		keys[name] = true
	}
	return keys
}

type entry struct {
	file string
	dir  string
	idx  keyIndex
	path []string // e.g. ["check", "3"]
	m    map[string]any
}

func (e *entry) where(key ...string) (string, int) {
	full := append(append([]string{}, e.path...), key...)
	if l, ok := e.idx[strings.Join(full, ".")]; ok || len(key) < 2 {
		if ok {
			return e.file, l
		}
		return e.file, e.idx.line(full...)
	}
	// Decode errors name keys inside arrays of tables without the element
	// index ("user.bogus" for [[x.user]] bogus = …): match the index
	// entries with their numeric segments removed, earliest line first.
	prefix := strings.Join(e.path, ".") + "."
	want := strings.Join(key, ".")
	best := 0
	for k, l := range e.idx {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || stripIndexes(rest) != want {
			continue
		}
		if best == 0 || l < best {
			best = l
		}
	}
	if best > 0 {
		return e.file, best
	}
	return e.file, e.idx.line(full...)
}

func stripIndexes(path string) string {
	parts := strings.Split(path, ".")
	out := parts[:0]
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

type loader struct {
	reg     Registries
	opts    *Options
	errs    Errors
	cfg     *Config
	visited map[string]bool
	checks  []*entry
	sinks   []*entry
	section map[string]string // section name -> "file:line" of its definition
	where   map[string]*entry // section name -> its file and key index
	extra   map[string][]*entry
}

// sectionErr reports a problem with key of a singleton section at the line
// that set it (or the main file when the section is absent).
func (l *loader) sectionErr(section, key, format string, args ...any) {
	e, ok := l.where[section]
	if !ok {
		l.errs.add(l.cfg.mainFile(), 0, section+"."+key+": "+format, args...)
		return
	}
	f, line := e.where(key)
	l.errs.add(f, line, section+"."+key+": "+format, args...)
}

const (
	maxIncludeDepth = 8
	maxFileSize     = 16 << 20
)

// Load reads the configuration at path with its includes, validates it
// completely and returns it, or returns Errors listing every problem.
func Load(path string, reg Registries, opts *Options) (*Config, error) {
	l := &loader{
		reg:     reg,
		opts:    opts,
		cfg:     &Config{Fingerprints: map[string]string{}},
		visited: map[string]bool{},
		section: map[string]string{},
		where:   map[string]*entry{},
		extra:   map[string][]*entry{},
	}
	l.readFile(path, 0)
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	l.finishAgent()
	l.decodeChecks()
	l.decodeSinks()
	l.decodeSections()
	if err := l.errs.err(); err != nil {
		return nil, err
	}
	return l.cfg, nil
}

// Parse loads a configuration from memory, as if read from file name; the
// CLI uses it for ad-hoc checks built from flags.
func Parse(name string, data []byte, reg Registries, opts *Options) (*Config, error) {
	l := &loader{reg: reg, opts: opts, cfg: &Config{Fingerprints: map[string]string{}},
		visited: map[string]bool{}, section: map[string]string{}, where: map[string]*entry{}, extra: map[string][]*entry{}}
	dir, err := filepath.Abs(filepath.Dir(name))
	if err != nil {
		dir = filepath.Dir(name)
	}
	l.parseDoc(name, dir, data, 0)
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	l.finishAgent()
	l.decodeChecks()
	l.decodeSinks()
	l.decodeSections()
	if err := l.errs.err(); err != nil {
		return nil, err
	}
	return l.cfg, nil
}

func (l *loader) readFile(path string, depth int) {
	abs, err := filepath.Abs(path)
	if err != nil {
		l.errs.add(path, 0, "%v", err)
		return
	}
	if l.visited[abs] {
		l.errs.add(path, 0, "included more than once (include cycle?)")
		return
	}
	l.visited[abs] = true
	st, err := os.Stat(path)
	if err != nil {
		l.errs.add(path, 0, "read: %v", err)
		return
	}
	if !st.Mode().IsRegular() || st.Size() > maxFileSize {
		l.errs.add(path, 0, "not a regular file of at most %d bytes", maxFileSize)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		l.errs.add(path, 0, "read: %v", err)
		return
	}
	l.cfg.Files = append(l.cfg.Files, path)
	l.parseDoc(path, filepath.Dir(abs), data, depth)
}

func (l *loader) parseDoc(file, dir string, data []byte, depth int) {
	data = expandEnv(file, data, l.opts.env(), &l.errs)
	var doc fileDoc
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := l.withoutSections(dec.Decode(&doc)); err != nil {
		l.addTOMLError(file, nil, nil, err)
		return
	}
	idx := buildIndex(data)
	if len(l.reg.Sections) > 0 {
		l.collectSections(file, dir, idx, data)
	}
	l.setSection("agent", doc.Agent != nil, file, idx, func() { l.cfg.Agent = *doc.Agent })
	l.setSection("defaults", doc.Defaults != nil, file, idx, func() { l.cfg.Defaults = *doc.Defaults })
	l.setSection("nagios", doc.Nagios != nil, file, idx, func() { l.cfg.Nagios = *doc.Nagios })
	for i, m := range doc.Check {
		l.checks = append(l.checks, &entry{file: file, dir: dir, idx: idx, path: []string{"check", fmt.Sprint(i)}, m: m})
	}
	for i, m := range doc.Sink {
		l.sinks = append(l.sinks, &entry{file: file, dir: dir, idx: idx, path: []string{"sink", fmt.Sprint(i)}, m: m})
	}
	for _, inc := range doc.Include {
		l.include(file, filepath.Dir(file), idx.line("include"), inc, depth)
	}
}

// withoutSections drops "unknown key" errors for registered sections, which
// the core document does not describe.
func (l *loader) withoutSections(err error) error {
	var strict *toml.StrictMissingError
	if len(l.reg.Sections) == 0 || !errors.As(err, &strict) {
		return err
	}
	var keep []toml.DecodeError
	for _, e := range strict.Errors {
		if k := e.Key(); len(k) > 0 {
			if _, ok := l.reg.Sections[k[0]]; ok {
				continue
			}
		}
		keep = append(keep, e)
	}
	if len(keep) == 0 {
		return nil
	}
	strict.Errors = keep
	return strict
}

// collectSections keeps the raw tables of registered sections; they are
// decoded once every file is read.
func (l *loader) collectSections(file, dir string, idx keyIndex, data []byte) {
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		return // already reported by the strict decode
	}
	for name, sec := range l.reg.Sections {
		v, ok := raw[name]
		if !ok {
			continue
		}
		if sec.Multi {
			list, ok := v.([]map[string]any)
			if !ok {
				if anyList, isList := v.([]any); isList {
					for _, x := range anyList {
						if m, isMap := x.(map[string]any); isMap {
							list = append(list, m)
						}
					}
					ok = len(list) == len(anyList)
				}
			}
			if !ok {
				l.errs.add(file, idx.line(name), "%s: want [[%s]] tables", name, name)
				continue
			}
			for i, m := range list {
				l.extra[name] = append(l.extra[name], &entry{file: file, dir: dir, idx: idx, path: []string{name, fmt.Sprint(i)}, m: m})
			}
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			l.errs.add(file, idx.line(name), "%s: want a [%s] table", name, name)
			continue
		}
		l.setSection(name, true, file, idx, func() {
			l.extra[name] = []*entry{{file: file, dir: dir, idx: idx, path: []string{name}, m: m}}
		})
	}
}

func (l *loader) decodeSections() {
	for name, entries := range l.extra {
		sec := l.reg.Sections[name]
		var list []any
		for _, e := range entries {
			v := sec.New()
			if !l.decodeInto(e, e.m, v, nil) {
				continue
			}
			list = append(list, v)
			fp, _ := toml.Marshal(e.m)
			l.cfg.Fingerprints["section:"+strings.Join(e.path, ".")] = string(fp)
		}
		if l.cfg.Sections == nil {
			l.cfg.Sections = map[string]any{}
		}
		if sec.Multi {
			l.cfg.Sections[name] = list
		} else if len(list) == 1 {
			l.cfg.Sections[name] = list[0]
		}
	}
}

// setSection allows each singleton section in exactly one file.
func (l *loader) setSection(name string, present bool, file string, idx keyIndex, apply func()) {
	if !present {
		return
	}
	at := fmt.Sprintf("%s:%d", file, idx.line(name))
	if prev, dup := l.section[name]; dup {
		l.errs.add(file, idx.line(name), "[%s] is already defined at %s", name, prev)
		return
	}
	l.section[name] = at
	l.where[name] = &entry{file: file, idx: idx, path: []string{name}}
	apply()
}

func (l *loader) include(file, dir string, line int, pattern string, depth int) {
	if depth >= maxIncludeDepth {
		l.errs.add(file, line, "include %q: includes nested deeper than %d", pattern, maxIncludeDepth)
		return
	}
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(dir, pattern)
	}
	var files []string
	if st, err := os.Stat(pattern); err == nil && st.IsDir() {
		matches, _ := filepath.Glob(filepath.Join(pattern, "*.toml"))
		files = matches
	} else {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			l.errs.add(file, line, "include %q: %v", pattern, err)
			return
		}
		if len(matches) == 0 && !strings.ContainsAny(pattern, "*?[") {
			l.errs.add(file, line, "include %q: no such file or directory", pattern)
			return
		}
		files = matches
	}
	sort.Strings(files)
	for _, f := range files {
		l.readFile(f, depth+1)
	}
}

// addTOMLError converts go-toml's errors into file:line errors. For
// re-decoded sub-documents (check and sink tables) the line comes from the
// key index of the original file, since positions in the sub-document are
// meaningless.
func (l *loader) addTOMLError(file string, e *entry, prefix []string, err error) {
	var strict *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case errors.As(err, &strict):
		for i := range strict.Errors {
			l.addDecodeError(file, e, prefix, &strict.Errors[i], "unknown key %q")
		}
	case errors.As(err, &de):
		l.addDecodeError(file, e, prefix, de, "")
	default:
		l.errs.add(file, 0, "%v", err)
	}
}

func (l *loader) addDecodeError(file string, e *entry, prefix []string, de *toml.DecodeError, unknownFmt string) {
	key := []string(de.Key())
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if unknownFmt != "" {
		msg = fmt.Sprintf(unknownFmt, strings.Join(key, "."))
	} else if len(key) > 0 {
		msg = fmt.Sprintf("%s: %s", strings.Join(key, "."), msg)
	}
	if e == nil {
		row, _ := de.Position()
		l.errs.add(file, row, "%s", msg)
		return
	}
	f, line := e.where(append(append([]string{}, prefix...), key...)...)
	l.errs.add(f, line, "%s: %s", e.label(), msg)
}

// label names the table in messages: check "load", sink "pg".
func (e *entry) label() string {
	if e.path[0] != "check" && e.path[0] != "sink" {
		if len(e.path) == 1 {
			return e.path[0]
		}
		n, _ := strconv.Atoi(e.path[1])
		return fmt.Sprintf("%s #%d", e.path[0], n+1)
	}
	name, _ := e.m["name"].(string)
	if name == "" {
		name, _ = e.m["type"].(string)
	}
	return fmt.Sprintf("%s %q", e.path[0], name)
}

// decodeInto re-encodes a table and decodes it strictly into dst.
func (l *loader) decodeInto(e *entry, m map[string]any, dst any, prefix []string) bool {
	data, err := toml.Marshal(m)
	if err != nil {
		f, line := e.where()
		l.errs.add(f, line, "%v", err)
		return false
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		l.addTOMLError(e.file, e, prefix, err)
		return false
	}
	return true
}

func split(m map[string]any, common map[string]bool) (c, rest map[string]any) {
	c, rest = map[string]any{}, map[string]any{}
	for k, v := range m {
		if common[k] {
			c[k] = v
		} else {
			rest[k] = v
		}
	}
	return c, rest
}

func (l *loader) finishAgent() {
	a := &l.cfg.Agent
	if a.Name == "" {
		h, err := l.opts.hostname()
		if err != nil || h == "" {
			h = "recon"
		}
		a.Name = h
	}
	if a.Listen == "" {
		a.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(a.Listen); err != nil {
		l.sectionErr("agent", "listen", "%q: %v", a.Listen, err)
	}
	if a.DataDir == "" {
		a.DataDir = DefaultDataDir
	}
	switch a.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		l.sectionErr("agent", "log_level", "%q: want debug, info, warn or error", a.LogLevel)
	}
	switch a.LogFormat {
	case "", "text", "json":
	default:
		l.sectionErr("agent", "log_format", "%q: want text or json", a.LogFormat)
	}
	if a.Shutdown == 0 {
		a.Shutdown = Duration(DefaultShutdown)
	}
	if a.MaxConcurrency < 0 {
		l.sectionErr("agent", "max_concurrency", "must be >= 0")
	}
	for t, n := range a.Concurrency {
		if n < 1 {
			l.sectionErr("agent", "concurrency."+t, "must be >= 1")
		}
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		l.sectionErr("agent", "tls_cert", "tls_cert and tls_key must be set together")
	}
	d := &l.cfg.Defaults
	if d.Period == 0 {
		d.Period = Duration(DefaultPeriod)
	}
	if d.Timeout == 0 {
		d.Timeout = Duration(DefaultTimeout)
	}
	if d.MaxAttempts == 0 {
		d.MaxAttempts = DefaultMaxAttempts
	}
	if d.MaxAttempts < 0 {
		l.sectionErr("defaults", "max_attempts", "must be >= 1")
	}
	if d.RetryPeriod == 0 {
		d.RetryPeriod = Duration(DefaultRetryPeriod)
	}
	if l.cfg.Nagios.OutputLimit < 0 || l.cfg.Nagios.MaxConcurrent < 0 {
		l.sectionErr("nagios", "output_limit", "output_limit and max_concurrent must be >= 0")
	}
}

func (c *Config) mainFile() string {
	if len(c.Files) > 0 {
		return c.Files[0]
	}
	return "config"
}

func (l *loader) decodeChecks() {
	names := map[string]string{}
	ids := map[uuid.UUID]string{}
	for _, e := range l.checks {
		cm, rest := split(e.m, checkKeys)
		var c checkCommon
		if !l.decodeInto(e, cm, &c, nil) {
			continue
		}
		file, line := e.where()
		at := fmt.Sprintf("%s:%d", file, line)
		disabled := c.Enabled != nil && !*c.Enabled
		ok := true
		fail := func(key, format string, args ...any) {
			f, ln := e.where(key)
			l.errs.add(f, ln, "check %q: "+format, append([]any{c.Name}, args...)...)
			ok = false
		}
		if c.Name == "" {
			l.errs.add(file, line, "check: name is required")
			continue
		}
		if prev, dup := names[c.Name]; dup {
			fail("name", "duplicate check name (first defined at %s)", prev)
			continue
		}
		names[c.Name] = at
		chk := &model.Check{Name: c.Name, Type: c.Type, Target: c.Target, Tags: c.Tags, Source: at, Dir: e.dir}
		if c.ID != "" {
			id, err := uuid.Parse(c.ID)
			if err != nil {
				fail("id", "id %q is not a UUID", c.ID)
			}
			chk.ID = id
		} else {
			chk.ID = model.CheckID(l.cfg.Agent.Name, c.Name)
		}
		if prev, dup := ids[chk.ID]; dup && ok {
			fail("id", "id %s is already used by the check at %s", chk.ID, prev)
		}
		ids[chk.ID] = at
		chk.Period = pick(c.Period, l.cfg.Defaults.Period)
		chk.Timeout = pick(c.Timeout, l.cfg.Defaults.Timeout)
		if c.Timeout == nil && chk.Timeout > chk.Period {
			chk.Timeout = chk.Period
		}
		chk.RetryPeriod = pick(c.RetryPeriod, l.cfg.Defaults.RetryPeriod)
		if c.RetryPeriod == nil && chk.RetryPeriod > chk.Period {
			chk.RetryPeriod = chk.Period
		}
		chk.MaxAttempts = l.cfg.Defaults.MaxAttempts
		if c.MaxAttempts != nil {
			chk.MaxAttempts = *c.MaxAttempts
		}
		switch {
		case chk.Period < MinPeriod:
			fail("period", "period %v is below the minimum %v", chk.Period, MinPeriod)
		case chk.Timeout <= 0:
			fail("timeout", "timeout must be > 0")
		case chk.Timeout > chk.Period:
			fail("timeout", "timeout %v exceeds period %v (runs of one check never overlap)", chk.Timeout, chk.Period)
		case chk.MaxAttempts < 1:
			fail("max_attempts", "max_attempts must be >= 1")
		case chk.RetryPeriod < MinPeriod:
			fail("retry_period", "retry_period %v is below the minimum %v", chk.RetryPeriod, MinPeriod)
		}
		if c.Type == "" {
			fail("type", "type is required (one of %s)", strings.Join(l.reg.Checks.Names(), ", "))
			continue
		}
		typ, found := l.reg.Checks.Lookup(c.Type)
		if !found {
			fail("type", "unknown check type %q (one of %s)", c.Type, strings.Join(l.reg.Checks.Names(), ", "))
			continue
		}
		settings := typ.NewSettings()
		if settings == nil {
			for k := range rest {
				fail(k, "unknown key %q (check type %s has no settings)", k, c.Type)
			}
		} else if !l.decodeInto(e, rest, settings, nil) {
			ok = false
		}
		if !ok {
			continue
		}
		chk.Settings = settings
		if disabled {
			// Validated like any check (a template must stay valid) but
			// never scheduled.
			l.cfg.Disabled = append(l.cfg.Disabled, chk)
			continue
		}
		l.cfg.Checks = append(l.cfg.Checks, chk)
		l.cfg.Fingerprints[chk.ID.String()] = fingerprint(chk, rest)
	}
}

func pick(v *Duration, def Duration) time.Duration {
	if v != nil {
		return v.D()
	}
	return def.D()
}

// fingerprint is the canonical text of everything that defines a check's
// behaviour; two loads with equal fingerprints run the check identically.
func fingerprint(c *model.Check, settings map[string]any) string {
	tags, _ := toml.Marshal(c.Tags)
	st, _ := toml.Marshal(settings)
	return fmt.Sprintf("%s|%s|%s|%v|%v|%d|%v|%s|%s|%s", c.Name, c.Type, c.Target, c.Period, c.Timeout,
		c.MaxAttempts, c.RetryPeriod, tags, st, c.Dir)
}

func (l *loader) decodeSinks() {
	names := map[string]string{}
	for _, e := range l.sinks {
		cm, rest := split(e.m, sinkKeys)
		var c sinkCommon
		if !l.decodeInto(e, cm, &c, nil) {
			continue
		}
		if c.Enabled != nil && !*c.Enabled {
			continue
		}
		file, line := e.where()
		ok := true
		fail := func(key, format string, args ...any) {
			f, ln := e.where(key)
			l.errs.add(f, ln, "sink %q: "+format, append([]any{c.Name}, args...)...)
			ok = false
		}
		if c.Type == "" {
			l.errs.add(file, line, "sink: type is required (one of %s)", strings.Join(l.reg.Sinks.Names(), ", "))
			continue
		}
		if c.Name == "" {
			c.Name = c.Type
		}
		if !validSinkName(c.Name) {
			fail("name", "name must be letters, digits, '-', '_' or '.' (it names the spool directory)")
			continue
		}
		if prev, dup := names[c.Name]; dup {
			fail("name", "duplicate sink name (first defined at %s); give each sink of the same type a name", prev)
			continue
		}
		names[c.Name] = fmt.Sprintf("%s:%d", file, line)
		spec := &sink.Spec{Name: c.Name, Type: c.Type, Source: names[c.Name], Dir: e.dir, BatchSize: DefaultBatchSize, Fsync: "always"}
		if c.BatchSize != nil {
			spec.BatchSize = *c.BatchSize
			if spec.BatchSize < 1 {
				fail("batch_size", "batch_size must be >= 1")
			}
		}
		if c.MaxSpoolBytes != nil {
			spec.MaxSpoolBytes = *c.MaxSpoolBytes
			if spec.MaxSpoolBytes < 0 {
				fail("max_spool_bytes", "max_spool_bytes must be >= 0 (0 = limited by free disk space)")
			}
		}
		switch c.Fsync {
		case "", "always":
		case "interval", "never":
			spec.Fsync = c.Fsync
		default:
			fail("fsync", "fsync %q: want always, interval or never", c.Fsync)
		}
		spec.FsyncInterval = pick(c.FsyncInterval, Duration(time.Second))
		typ, found := l.reg.Sinks.Lookup(c.Type)
		if !found {
			fail("type", "unknown sink type %q (one of %s)", c.Type, strings.Join(l.reg.Sinks.Names(), ", "))
			continue
		}
		settings := typ.NewSettings()
		if settings == nil {
			for k := range rest {
				fail(k, "unknown key %q (sink type %s has no settings)", k, c.Type)
			}
		} else if !l.decodeInto(e, rest, settings, nil) {
			ok = false
		}
		if !ok {
			continue
		}
		spec.Settings = settings
		l.cfg.Sinks = append(l.cfg.Sinks, spec)
		st, _ := toml.Marshal(e.m)
		l.cfg.Fingerprints["sink:"+spec.Name] = string(st)
	}
	if len(l.sinks) == 0 {
		l.addDefaultSink()
	}
}

// addDefaultSink keeps the promise that nothing is discarded by default:
// with no sink configured, results go to the embedded store.
func (l *loader) addDefaultSink() {
	name := l.reg.DefaultSink
	if name == "" {
		name = DefaultSinkType
	}
	typ, ok := l.reg.Sinks.Lookup(name)
	if !ok {
		return
	}
	l.cfg.Sinks = append(l.cfg.Sinks, &sink.Spec{Name: name, Type: name, Settings: typ.NewSettings(),
		Source: l.cfg.mainFile() + " (default sink)", BatchSize: DefaultBatchSize, Fsync: "always",
		FsyncInterval: time.Second})
	l.cfg.Fingerprints["sink:"+name] = "default:" + name
	l.cfg.DefaultSink = true
}

func validSinkName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return s != "" && s != "." && s != ".."
}
