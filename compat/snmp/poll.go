package snmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/reconmon/recon/agent/checktype"
	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios/threshold"
)

// Settings are the keys of a check with type = "snmp".
type Settings struct {
	// Version is "1", "2c" (default) or "3".
	Version string `toml:"version"`
	// Community for v1/v2c (default "public").
	Community string `toml:"community"`
	// User is the v3 USM user name.
	User string `toml:"user"`
	// AuthProtocol is MD5, SHA, SHA224, SHA256, SHA384, SHA512 or empty (v3).
	AuthProtocol string `toml:"auth_protocol"`
	// AuthPassphrase goes with auth_protocol.
	AuthPassphrase string `toml:"auth_passphrase"`
	// PrivProtocol is DES, AES, AES192, AES256, AES192C, AES256C or empty (v3).
	PrivProtocol string `toml:"priv_protocol"`
	// PrivPassphrase goes with priv_protocol.
	PrivPassphrase string `toml:"priv_passphrase"`
	// Context is the v3 context name.
	Context string `toml:"context"`
	// Port is the agent's UDP port (default 161; a port in target wins).
	Port int `toml:"port"`
	// OIDs to GET: numeric or MIB names with their instance (sysUpTime.0, IF-MIB::ifHCInOctets.2).
	OIDs []string `toml:"oids"`
	// Walk lists subtrees to walk; every leaf becomes a metric.
	Walk []string `toml:"walk"`
	// IfTable walks IF-MIB's ifTable and ifXTable into per-interface metrics (ifHCInOctets.eth0).
	IfTable bool `toml:"if_table"`
	// Warn maps metric names (or * patterns) to Nagios ranges.
	Warn map[string]string `toml:"warn"`
	// Crit maps metric names (or * patterns) to Nagios ranges.
	Crit map[string]string `toml:"crit"`
	// Retries per request after the first try (default 1).
	Retries *int `toml:"retries"`
	// MaxRepetitions per GETBULK request of a walk (default 25).
	MaxRepetitions int `toml:"max_repetitions"`
}

// TypeOptions configure the "snmp" check type.
type TypeOptions struct {
	// MIBDirs are loaded once, on first use, to resolve names in oids/walk
	// and to name metrics (default /usr/share/snmp/mibs if it exists).
	MIBDirs []string
	Logger  *slog.Logger
}

// Type is the "snmp" polling check type.
type Type struct {
	opts TypeOptions
	once sync.Once
	mib  *MIB
	err  error
}

// NewType returns the type; it reads no MIB until a check needs it.
func NewType(opts TypeOptions) *Type {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Type{opts: opts}
}

// NewSettings implements checktype.Type.
func (t *Type) NewSettings() any { return &Settings{} }

// MIB loads (once) and returns the type's MIB.
func (t *Type) MIB() (*MIB, error) {
	t.once.Do(func() {
		dirs := t.opts.MIBDirs
		if dirs == nil {
			if st, err := os.Stat(DefaultMIBDir); err == nil && st.IsDir() {
				dirs = []string{DefaultMIBDir}
			}
		}
		t.mib, t.err = LoadMIB(dirs, t.opts.Logger)
	})
	return t.mib, t.err
}

const (
	defaultPort           = 161
	defaultRetries        = 1
	defaultMaxRepetitions = 25
	// maxWalk bounds the varbinds one walk may return: a walk of the wrong
	// subtree (or of a misbehaving agent) must not exhaust memory.
	maxWalk = 100000
)

// ifTable roots: IF-MIB::ifTable and ifXTable.
const (
	oidIfTable  = "1.3.6.1.2.1.2.2"
	oidIfXTable = "1.3.6.1.2.1.31.1.1"
	oidIfDescr  = "1.3.6.1.2.1.2.2.1.2"
	oidIfOper   = "1.3.6.1.2.1.2.2.1.8"
	oidIfName   = "1.3.6.1.2.1.31.1.1.1.1"
)

// ifLabelColumns are the ifTable/ifXTable columns that name interfaces
// (and ifIndex, which is the index); every other column becomes a metric.
var ifLabelColumns = map[string]bool{"1.3.6.1.2.1.2.2.1.1": true, oidIfDescr: true, oidIfName: true}

type limit struct {
	pattern string
	glob    bool
	warn    threshold.Range
	crit    threshold.Range
}

type poller struct {
	t        *Type
	mib      *MIB
	host     string
	port     uint16
	version  gosnmp.SnmpVersion
	comm     string
	v3       *gosnmp.UsmSecurityParameters
	level    gosnmp.SnmpV3MsgFlags
	context  string
	oids     []string // numeric
	walks    []string // numeric
	ifTable  bool
	limits   []*limit // exact names first, then patterns in name order
	retries  int
	maxReps  uint32
	describe string // "host:port v2c"
}

// Prepare validates the settings, resolves names to OIDs and returns the
// runner. Nothing is sent.
func (t *Type) Prepare(c *model.Check) (checktype.Runner, error) {
	s, ok := c.Settings.(*Settings)
	if !ok || s == nil {
		return nil, fmt.Errorf("snmp: settings are %T, want *snmp.Settings", c.Settings)
	}
	p := &poller{t: t, ifTable: s.IfTable, retries: defaultRetries, maxReps: defaultMaxRepetitions, context: s.Context}
	if s.Retries != nil {
		if *s.Retries < 0 || *s.Retries > 10 {
			return nil, fmt.Errorf("retries must be 0-10, got %d", *s.Retries)
		}
		p.retries = *s.Retries
	}
	if s.MaxRepetitions < 0 || s.MaxRepetitions > 1000 {
		return nil, fmt.Errorf("max_repetitions must be 1-1000, got %d", s.MaxRepetitions)
	} else if s.MaxRepetitions > 0 {
		p.maxReps = uint32(s.MaxRepetitions)
	}
	host, port, err := splitTarget(c.Target, s.Port)
	if err != nil {
		return nil, err
	}
	p.host, p.port = host, port
	switch s.Version {
	case "1":
		p.version = gosnmp.Version1
	case "", "2c", "2":
		p.version = gosnmp.Version2c
	case "3":
		p.version = gosnmp.Version3
	default:
		return nil, fmt.Errorf("version %q: want 1, 2c or 3", s.Version)
	}
	if p.version == gosnmp.Version3 {
		if s.Community != "" {
			return nil, errors.New("community is for versions 1 and 2c; version 3 uses user")
		}
		u, err := (&UserConfig{Name: s.User, AuthProtocol: s.AuthProtocol, AuthPassphrase: s.AuthPassphrase,
			PrivProtocol: s.PrivProtocol, PrivPassphrase: s.PrivPassphrase}).validate()
		if err != nil {
			return nil, err
		}
		p.level = u.level
		p.v3 = &gosnmp.UsmSecurityParameters{UserName: u.name, AuthenticationProtocol: u.auth, AuthenticationPassphrase: u.authPass,
			PrivacyProtocol: u.priv, PrivacyPassphrase: u.privPass}
	} else {
		if s.User != "" || s.AuthProtocol != "" || s.PrivProtocol != "" {
			return nil, errors.New("user, auth_protocol and priv_protocol need version = \"3\"")
		}
		p.comm = s.Community
		if p.comm == "" {
			p.comm = "public"
		}
	}
	if len(s.OIDs) == 0 && len(s.Walk) == 0 && !s.IfTable {
		return nil, errors.New("nothing to poll: set oids, walk or if_table")
	}
	if p.mib, err = t.MIB(); err != nil {
		return nil, err
	}
	for _, o := range s.OIDs {
		n, err := p.mib.Resolve(o)
		if err != nil {
			return nil, fmt.Errorf("oids: %w", err)
		}
		p.oids = append(p.oids, n)
	}
	for _, o := range s.Walk {
		n, err := p.mib.Resolve(o)
		if err != nil {
			return nil, fmt.Errorf("walk: %w", err)
		}
		p.walks = append(p.walks, n)
	}
	if p.limits, err = parseLimits(s.Warn, s.Crit); err != nil {
		return nil, err
	}
	p.describe = net.JoinHostPort(host, strconv.Itoa(int(port))) + " " + p.version.String()
	return p, nil
}

// splitTarget takes "host", "host:port", "[v6]:port" or a bare IPv6
// address.
func splitTarget(target string, port int) (string, uint16, error) {
	target = strings.TrimSpace(target)
	if target == "" {
		return "", 0, errors.New("target is required (the SNMP agent's host)")
	}
	if port == 0 {
		port = defaultPort
	}
	if port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %d out of range", port)
	}
	if h, ps, err := net.SplitHostPort(target); err == nil {
		pv, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || pv == 0 {
			return "", 0, fmt.Errorf("target %q: bad port", target)
		}
		return h, uint16(pv), nil
	}
	return strings.TrimSuffix(strings.TrimPrefix(target, "["), "]"), uint16(port), nil
}

func parseLimits(warn, crit map[string]string) ([]*limit, error) {
	byName := map[string]*limit{}
	get := func(name string) *limit {
		l := byName[name]
		if l == nil {
			l = &limit{pattern: name, glob: strings.ContainsAny(name, "*?")}
			byName[name] = l
		}
		return l
	}
	for name, r := range warn {
		rg, err := threshold.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("warn %q: %w", name, err)
		}
		get(name).warn = rg
	}
	for name, r := range crit {
		rg, err := threshold.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("crit %q: %w", name, err)
		}
		get(name).crit = rg
	}
	out := make([]*limit, 0, len(byName))
	for _, l := range byName {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].glob != out[j].glob {
			return !out[i].glob
		}
		return out[i].pattern < out[j].pattern
	})
	return out, nil
}

func (p *poller) client(ctx context.Context) *gosnmp.GoSNMP {
	per := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		per = time.Until(dl) / time.Duration(p.retries+1)
		per = min(max(per, 50*time.Millisecond), 10*time.Second)
	}
	g := &gosnmp.GoSNMP{Target: p.host, Port: p.port, Transport: "udp", Version: p.version, Community: p.comm,
		Context: ctx, Timeout: per, Retries: p.retries, MaxOids: gosnmp.MaxOids, MaxRepetitions: p.maxReps, ContextName: p.context}
	if p.v3 != nil {
		g.SecurityModel = gosnmp.UserSecurityModel
		g.MsgFlags = p.level
		g.SecurityParameters = p.v3.Copy()
	}
	return g
}

// Run polls once. Every value becomes a metric, counters raw (rates are
// derived at query time); thresholds decide the status; any failure to
// get what was configured is UNKNOWN with the reason.
func (p *poller) Run(ctx context.Context, _ *model.Result) model.Result {
	start := time.Now()
	g := p.client(ctx)
	if err := g.Connect(); err != nil {
		return checktype.Unknown("SNMP UNKNOWN - %s: %v", p.describe, err)
	}
	defer g.Conn.Close()
	var metrics []model.Metric
	var problems []string
	fail := func(what string, err error) model.Result {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (check timeout)", err)
		}
		r := checktype.Unknown("SNMP UNKNOWN - %s: %s: %s", p.describe, what, explain(err))
		r.Metrics = metrics
		r.Duration = time.Since(start)
		return r
	}
	for i := 0; i < len(p.oids); i += gosnmp.MaxOids {
		chunk := p.oids[i:min(i+gosnmp.MaxOids, len(p.oids))]
		pkt, err := g.Get(chunk)
		if err != nil {
			return fail("get", err)
		}
		if pkt.Error != gosnmp.NoError {
			bad := ""
			if k := int(pkt.ErrorIndex) - 1; k >= 0 && k < len(chunk) {
				bad = " (" + p.mib.Short(chunk[k]) + ")"
			}
			return fail("get", fmt.Errorf("agent answered %v%s", pkt.Error, bad))
		}
		for j := range pkt.Variables {
			vb := &pkt.Variables[j]
			if vb.Type == gosnmp.NoSuchObject || vb.Type == gosnmp.NoSuchInstance || vb.Type == gosnmp.EndOfMibView {
				problems = append(problems, p.mib.Short(vb.Name)+": "+vb.Type.String())
				continue
			}
			v, _ := convertValue(p.mib, vb)
			metrics = append(metrics, model.Metric{Name: p.mib.Short(vb.Name), Value: v})
		}
	}
	for _, root := range p.walks {
		n := 0
		err := p.walk(g, root, func(vb *gosnmp.SnmpPDU) error {
			if n++; n > maxWalk {
				return fmt.Errorf("more than %d values", maxWalk)
			}
			v, _ := convertValue(p.mib, vb)
			metrics = append(metrics, model.Metric{Name: p.mib.Short(vb.Name), Value: v})
			return nil
		})
		if err != nil {
			return fail("walk "+p.mib.Short(root), err)
		}
		if n == 0 {
			problems = append(problems, "walk "+p.mib.Short(root)+": no values")
		}
	}
	ifSummary := ""
	if p.ifTable {
		ms, summary, err := p.walkIfTable(g)
		if err != nil {
			return fail("if_table", err)
		}
		metrics = append(metrics, ms...)
		ifSummary = summary
	}
	r := p.evaluate(metrics, problems, ifSummary)
	r.Duration = time.Since(start)
	return r
}

func (p *poller) walk(g *gosnmp.GoSNMP, root string, fn func(*gosnmp.SnmpPDU) error) error {
	w := func(vb gosnmp.SnmpPDU) error { return fn(&vb) }
	if p.version == gosnmp.Version1 {
		return g.Walk(root, w)
	}
	return g.BulkWalk(root, w)
}

// walkIfTable walks ifTable and ifXTable and names each interface by
// ifName (ifDescr when the agent has no ifXTable), ifIndex as a last
// resort.
func (p *poller) walkIfTable(g *gosnmp.GoSNMP) ([]model.Metric, string, error) {
	type cell struct {
		col string // column OID
		idx string
		vb  gosnmp.SnmpPDU
	}
	var cells []cell
	names := map[string]string{}
	descrs := map[string]string{}
	var order []string
	for _, root := range []string{oidIfTable, oidIfXTable} {
		n := 0
		err := p.walk(g, root, func(vb *gosnmp.SnmpPDU) error {
			if n++; n > maxWalk {
				return fmt.Errorf("more than %d values", maxWalk)
			}
			oid := strings.TrimPrefix(vb.Name, ".")
			i := strings.LastIndexByte(oid, '.')
			if i < 0 {
				return nil
			}
			col, idx := oid[:i], oid[i+1:]
			switch col {
			case oidIfDescr:
				descrs[idx] = valueText(p.mib, vb)
				order = append(order, idx)
			case oidIfName:
				names[idx] = valueText(p.mib, vb)
			}
			if !ifLabelColumns[col] {
				cells = append(cells, cell{col, idx, *vb})
			}
			return nil
		})
		if err != nil {
			return nil, "", err
		}
		if root == oidIfTable && n == 0 {
			return nil, "", errors.New("the agent has no IF-MIB ifTable")
		}
	}
	label := map[string]string{}
	used := map[string]string{}
	for _, idx := range order {
		l := names[idx]
		if l == "" {
			l = descrs[idx]
		}
		if l == "" {
			l = idx
		}
		if other, dup := used[l]; dup && other != idx {
			l = l + "#" + idx // two interfaces with one name: keep both
		}
		used[l] = idx
		label[idx] = l
	}
	metrics := make([]model.Metric, 0, len(cells))
	up, down := 0, []string{}
	for _, c := range cells {
		l, ok := label[c.idx]
		if !ok {
			l = c.idx
		}
		colName := p.mib.Short(c.col)
		v, _ := convertValue(p.mib, &c.vb)
		metrics = append(metrics, model.Metric{Name: colName + "." + l, Value: v})
		if c.col == oidIfOper {
			if v.Int() == 1 {
				up++
			} else {
				down = append(down, l)
			}
		}
	}
	summary := fmt.Sprintf("%d interfaces, %d up", len(order), up)
	if len(down) > 0 {
		sort.Strings(down)
		list := strings.Join(down[:min(len(down), 10)], ", ")
		if len(down) > 10 {
			list += ", …"
		}
		summary += fmt.Sprintf(", %d not up (%s)", len(down), list)
	}
	return metrics, summary, nil
}

func valueText(mib *MIB, vb *gosnmp.SnmpPDU) string {
	v, _ := convertValue(mib, vb)
	return v.String()
}

// evaluate applies thresholds and writes the output line.
func (p *poller) evaluate(metrics []model.Metric, problems []string, ifSummary string) model.Result {
	status := model.OK
	var alerts []string
	// Runs of one check may overlap (temporal-stream clones): per-run
	// state stays here, not in the shared limits.
	satisfied := make([]bool, len(p.limits))
	for i := range metrics {
		m := &metrics[i]
		li := p.limitFor(m.Name)
		if li < 0 {
			continue
		}
		l := p.limits[li]
		satisfied[li] = true
		m.Warn, m.Crit = l.warn.String(), l.crit.String()
		f, ok := m.Value.Float()
		if !ok {
			if n, err := strconv.ParseFloat(strings.TrimSpace(m.Value.Str()), 64); err == nil {
				f, ok = n, true
			}
		}
		if !ok {
			status = model.Worst(status, model.Unknown)
			alerts = append(alerts, fmt.Sprintf("%s=%q is not a number", m.Name, m.Value.Str()))
			continue
		}
		if st := threshold.Evaluate(f, l.warn, l.crit); st != model.OK {
			status = model.Worst(status, st)
			rng := l.crit
			if st == model.Warning {
				rng = l.warn
			}
			alerts = append(alerts, fmt.Sprintf("%s=%s (%s %s)", m.Name, m.Value.String(), strings.ToLower(st.String()), rng.String()))
		}
	}
	for i, l := range p.limits {
		if !l.glob && !satisfied[i] {
			status = model.Worst(status, model.Unknown)
			problems = append(problems, fmt.Sprintf("%s: no such metric for its threshold", l.pattern))
		}
	}
	if len(problems) > 0 {
		status = model.Worst(status, model.Unknown)
	}
	var parts []string
	parts = append(parts, problems...)
	parts = append(parts, alerts...)
	if len(parts) == 0 {
		if len(metrics) <= 3 && ifSummary == "" {
			for _, m := range metrics {
				parts = append(parts, m.Name+"="+m.Value.String())
			}
		}
	}
	if ifSummary != "" {
		parts = append(parts, ifSummary)
	}
	parts = append(parts, fmt.Sprintf("%d values from %s", len(metrics), p.describe))
	return model.Result{Status: status, Output: "SNMP " + status.String() + " - " + strings.Join(parts, "; "), Metrics: metrics}
}

// limitFor returns the index of the limit for a metric: an exact name
// first, then the first matching pattern in name order; -1 if none.
func (p *poller) limitFor(name string) int {
	for i, l := range p.limits {
		if l.glob && glob(l.pattern, name) || !l.glob && l.pattern == name {
			return i
		}
	}
	return -1
}

// explain turns gosnmp's errors into an operator's words.
func explain(err error) string {
	switch {
	case errors.Is(err, gosnmp.ErrWrongDigest):
		return "authentication failed (wrong auth passphrase or protocol): " + err.Error()
	case errors.Is(err, gosnmp.ErrUnknownUsername):
		return "unknown v3 user: " + err.Error()
	case errors.Is(err, gosnmp.ErrDecryption):
		return "decryption failed (wrong priv passphrase or protocol): " + err.Error()
	case errors.Is(err, gosnmp.ErrUnknownSecurityLevel):
		return "security level not supported for this user: " + err.Error()
	case strings.Contains(err.Error(), "not authentic"):
		// The agent's report (unknown user, wrong digest) is not
		// authenticated, so all gosnmp can say is that it was not.
		return "authentication failed (the agent refused the v3 user or its auth passphrase/protocol): " + err.Error()
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "timeout"):
		return "no response (timeout): " + err.Error()
	}
	return err.Error()
}

var _ checktype.Type = (*Type)(nil)
