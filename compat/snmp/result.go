package snmp

import (
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gosnmp/gosnmp"
	"github.com/sleepinggenius2/gosmi/models"

	"github.com/reconmon/recon/agent/model"
)

// TrapType is the Result.Type of every trap.
const TrapType = "snmptrap"

// builder turns trap events into results.
type builder struct {
	mib          *MIB
	rules        []rule
	varbindRules bool // some rule matches varbinds
	check        string
	checkID      uuid.UUID
	agent        string
	tags         map[string]string
}

// varbind is a decoded varbind with its translation, as the status rules
// see it.
type varbind struct {
	oid   string // numeric, no leading dot
	name  string // MODULE::name.suffix or numeric
	value model.Value
	label string // enumeration label, if any
}

// result builds the Result of one trap. Nothing in the trap is dropped:
// an untranslatable OID stays numeric, an odd value becomes text. This is
// the per-trap hot path, so it allocates little: one tags map, one
// metrics slice, one long-output string.
func (b *builder) result(ev *trapEvent, at time.Time, from netip.AddrPort) model.Result {
	pkt := ev.pkt
	tags := make(map[string]string, len(b.tags)+8)
	maps.Copy(tags, b.tags)
	tags["version"] = ev.version
	if ev.user != "" {
		tags["user"] = ev.user
	} else {
		tags["community"] = ev.community
	}
	tags["pdu"] = "trap"
	if ev.inform {
		tags["pdu"] = "inform"
	}
	n := len(pkt.Variables) + 1
	metrics := make([]model.Metric, 0, n)
	long := make([]byte, 0, 48*n)
	var vbs []varbind // only when a rule looks at varbinds
	if b.varbindRules {
		vbs = make([]varbind, 0, n)
	}
	var seen map[string]int // duplicate names, for long varbind lists
	if n > 16 {
		seen = make(map[string]int, n)
	}
	add := func(oid string, v model.Value, label string) {
		name := b.mib.Translate(oid)
		if dup := countName(metrics, seen, name); dup > 0 {
			// The same OID twice in one trap: keep both under distinct names.
			name = name + "#" + strconv.Itoa(dup+1)
		}
		metrics = append(metrics, model.Metric{Name: name, Value: v})
		if len(long) > 0 {
			long = append(long, '\n')
		}
		long = append(append(long, name...), " = "...)
		if label != "" {
			long = append(append(long, label...), '(')
			long = appendValue(long, v)
			long = append(long, ')')
		} else {
			long = appendValue(long, v)
		}
		if vbs != nil {
			vbs = append(vbs, varbind{oid: oid, name: name, value: v, label: label})
		}
	}
	var trapOID string
	if ev.version == "1" {
		// RFC 3584 §3.1: the v2 form of a v1 trap.
		ent := strings.TrimPrefix(pkt.Enterprise, ".")
		if pkt.GenericTrap >= 0 && pkt.GenericTrap <= 5 {
			trapOID = oidSnmpTraps + "." + strconv.Itoa(pkt.GenericTrap+1)
		} else {
			trapOID = ent + ".0." + strconv.Itoa(pkt.SpecificTrap)
		}
		tags["agent_addr"] = pkt.AgentAddress
		tags["enterprise"] = ent
		add(oidSysUpTime, model.Uint(uint64(pkt.Timestamp)), "")
	}
	for i := range pkt.Variables {
		pdu := &pkt.Variables[i]
		oid := strings.TrimPrefix(pdu.Name, ".")
		if ev.version != "1" && oid == oidSnmpTrapOID && trapOID == "" {
			if s, ok := pdu.Value.(string); ok {
				trapOID = strings.TrimPrefix(s, ".")
				continue
			}
		}
		v, label := convertValue(b.mib, pdu)
		add(oid, v, label)
	}
	trapName := ""
	output := "trap without snmpTrapOID.0"
	if trapOID != "" {
		trapName = b.mib.Translate(trapOID)
		output = trapName
	}
	tags["trap_oid"] = trapOID
	tags["trap_name"] = trapName
	return model.Result{
		CheckID: b.checkID, Check: b.check, Type: TrapType, Agent: b.agent,
		Target: from.Addr().Unmap().String(), Time: at,
		Status: b.status(trapName, trapOID, vbs), StateType: model.Hard, Attempt: 1,
		Output: output, LongOutput: string(long), Metrics: metrics, Tags: tags,
	}
}

// countName counts earlier metrics named name (or the name with a #n
// suffix already taken): through seen for long lists, by scanning short
// ones.
func countName(metrics []model.Metric, seen map[string]int, name string) int {
	if seen != nil {
		n := seen[name]
		seen[name] = n + 1
		return n
	}
	n := 0
	for i := range metrics {
		if m := metrics[i].Name; m == name || len(m) > len(name) && m[len(name)] == '#' && m[:len(name)] == name {
			n++
		}
	}
	return n
}

// appendValue appends a value as text without fmt.
func appendValue(b []byte, v model.Value) []byte {
	switch v.Kind() {
	case model.KindInt:
		return strconv.AppendInt(b, v.Int(), 10)
	case model.KindUint:
		return strconv.AppendUint(b, v.Uint(), 10)
	case model.KindString:
		return append(b, v.Str()...)
	}
	return append(b, v.String()...)
}

// convertValue maps a varbind value to a metric value: numbers stay
// numbers of their kind (Counter64 and TimeTicks unsigned, Integer
// signed), everything else is text.
func convertValue(mib *MIB, pdu *gosnmp.SnmpPDU) (model.Value, string) {
	var node *Node
	if mib != nil {
		node, _, _ = mib.Lookup(pdu.Name)
	}
	switch v := pdu.Value.(type) {
	case int:
		if node != nil && node.Enum != nil {
			return model.Int(int64(v)), node.Enum[int64(v)]
		}
		return model.Int(int64(v)), ""
	case int64:
		return model.Int(v), ""
	case uint:
		return model.Uint(uint64(v)), ""
	case uint32:
		return model.Uint(uint64(v)), ""
	case uint64:
		return model.Uint(v), ""
	case float32:
		return model.Float(float64(v)), ""
	case float64:
		return model.Float(v), ""
	case []byte:
		hint := ""
		if node != nil {
			hint = node.Hint
		}
		return model.String(formatOctets(v, hint)), ""
	case string:
		if pdu.Type == gosnmp.ObjectIdentifier && mib != nil {
			return model.String(mib.Translate(v)), ""
		}
		if s, ok := printableText([]byte(v)); ok {
			return model.String(s), ""
		}
		return model.String("0x" + hex.EncodeToString([]byte(v))), ""
	case nil:
		switch pdu.Type {
		case gosnmp.NoSuchObject:
			return model.String("noSuchObject"), ""
		case gosnmp.NoSuchInstance:
			return model.String("noSuchInstance"), ""
		case gosnmp.EndOfMibView:
			return model.String("endOfMibView"), ""
		}
		return model.String("NULL"), ""
	}
	return model.String(fmt.Sprint(pdu.Value)), ""
}

// formatOctets prints an OCTET STRING: by its DISPLAY-HINT when the MIB
// gives a non-text one (MAC addresses, dates), as text when it is
// printable UTF-8, else as 0x-prefixed hex.
func formatOctets(b []byte, hint string) string {
	if hint != "" && !textHint(hint) && len(b) > 0 {
		if s, ok := displayHint(hint, b); ok {
			return s
		}
	}
	if s, ok := printableText(b); ok {
		return s
	}
	return "0x" + hex.EncodeToString(b)
}

// textHint reports hints like "255a" and "255t" (text as is).
func textHint(h string) bool {
	h = strings.TrimLeft(h, "0123456789")
	return h == "a" || h == "t"
}

func displayHint(hint string, b []byte) (s string, ok bool) {
	defer func() {
		// The hint comes from a MIB file; never let one break a trap.
		if recover() != nil {
			s, ok = "", false
		}
	}()
	s = models.StringDisplayHint(hint, b)
	return s, utf8.ValidString(s)
}

// printableText returns b as text if it is printable UTF-8 (trailing NULs,
// which some agents send C-style, removed).
func printableText(b []byte) (string, bool) {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	if !utf8.Valid(b) {
		return "", false
	}
	s := string(b)
	for _, r := range s {
		if !unicode.IsPrint(r) && r != '\t' && r != '\n' && r != '\r' {
			return "", false
		}
	}
	return s, true
}

// rule is a compiled status rule.
type rule struct {
	trap          string
	vbName, vbVal string
	varbind       bool
	status        model.Status
}

func compileRules(rs []RuleConfig) ([]rule, error) {
	out := make([]rule, 0, len(rs))
	for _, r := range rs {
		st, err := model.ParseStatus(r.Status)
		if err != nil {
			return nil, fmt.Errorf("rule trap=%q: %w", r.Trap, err)
		}
		c := rule{trap: strings.TrimSpace(r.Trap), status: st}
		if r.Varbind != "" {
			n, v, ok := strings.Cut(r.Varbind, "=")
			if !ok {
				return nil, fmt.Errorf("rule trap=%q: varbind %q: want name=value", r.Trap, r.Varbind)
			}
			c.varbind, c.vbName, c.vbVal = true, strings.TrimSpace(n), strings.TrimSpace(v)
		}
		out = append(out, c)
	}
	return out, nil
}

func hasVarbindRule(rs []rule) bool {
	for _, r := range rs {
		if r.varbind {
			return true
		}
	}
	return false
}

// status applies the rules: the first that matches decides, else WARNING
// (a trap is news someone should look at).
func (b *builder) status(name, oid string, vbs []varbind) model.Status {
	for _, r := range b.rules {
		if r.trap != "" && !matchName(r.trap, name, oid) {
			continue
		}
		if r.varbind && !matchVarbind(r, vbs) {
			continue
		}
		return r.status
	}
	return model.Warning
}

// matchName matches a pattern against a translated name, its bare form
// and the numeric OID (with or without the leading dot).
func matchName(pat, name, oid string) bool {
	if name != "" && (glob(pat, name) || glob(pat, bareName(name))) {
		return true
	}
	return oid != "" && (glob(pat, oid) || glob(pat, "."+oid))
}

func matchVarbind(r rule, vbs []varbind) bool {
	for _, vb := range vbs {
		if !matchName(r.vbName, vb.name, vb.oid) {
			continue
		}
		v := vb.value.String()
		if glob(r.vbVal, v) || vb.label != "" && (glob(r.vbVal, vb.label) || glob(r.vbVal, vb.label+"("+v+")")) {
			return true
		}
	}
	return false
}

func bareName(s string) string {
	if _, after, ok := strings.Cut(s, "::"); ok {
		return after
	}
	return s
}

// glob matches s against a pattern where * is any run of characters and ?
// one character; nothing else is special (names hold '.', ':' and '/').
func glob(pat, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pat) && pat[px] == '*':
			starP, starS = px, sx
			px++
		case px < len(pat) && (pat[px] == '?' || pat[px] == s[sx]):
			px++
			sx++
		case starP >= 0:
			starS++
			px, sx = starP+1, starS
		default:
			return false
		}
	}
	for px < len(pat) && pat[px] == '*' {
		px++
	}
	return px == len(pat)
}
