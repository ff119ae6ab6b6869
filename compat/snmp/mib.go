package snmp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/sleepinggenius2/gosmi/parser"
)

// NodeKind tells what a named OID is.
type NodeKind uint8

const (
	KindOther        NodeKind = iota // an OID assignment, group, identity…
	KindObject                       // an OBJECT-TYPE
	KindNotification                 // a NOTIFICATION-TYPE or SMIv1 TRAP-TYPE
)

// Node is one named OID of a MIB module.
type Node struct {
	Module string
	Name   string
	OID    string // dotted decimal, without a leading dot
	Kind   NodeKind
	// Syntax is the object's type as written in the module ("Counter64",
	// "DisplayString", "INTEGER"); empty for non-objects.
	Syntax string
	// Hint is the DISPLAY-HINT of the syntax's textual convention, used to
	// print octet strings (MAC addresses, dates).
	Hint string
	// Enum maps the values of an enumerated INTEGER to their labels.
	Enum map[int64]string
}

// MIB translates between numeric OIDs and MODULE::name. It holds the
// built-in standard nodes plus every module loaded from MIB files. A MIB is
// read-only once loaded and safe for concurrent use.
type MIB struct {
	byOID  map[string]*Node
	byName map[string]*Node // "MODULE::name"
	bare   map[string]*Node // "name": the first module that defines it
	// Modules are the modules loaded from files, sorted.
	Modules []string
	// Failed maps MIB files that could not be used to the reason.
	Failed map[string]error
}

// BuiltinMIB returns a MIB that knows only the built-in nodes.
func BuiltinMIB() *MIB {
	m := &MIB{byOID: map[string]*Node{}, byName: map[string]*Node{}, bare: map[string]*Node{}, Failed: map[string]error{}}
	m.addBuiltins()
	return m
}

// maxMIBFile bounds the size of a file parsed as a MIB module; anything
// larger is not a MIB (or not one worth stalling startup for).
const maxMIBFile = 16 << 20

// LoadMIB parses every file in dirs as a MIB module (with gosmi's SMI
// parser) and resolves their OIDs. Files that do not parse or whose
// imports are missing are logged and skipped: one broken vendor MIB must
// not cost the translation of all others. A directory that cannot be read
// is an error.
func LoadMIB(dirs []string, log *slog.Logger) (*MIB, error) {
	if log == nil {
		log = slog.Default()
	}
	m := BuiltinMIB()
	var files []string
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("snmp: mib_dirs: %w", err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	return buildMIB(m, files, parseFiles(files), log), nil
}

// buildMIB resolves parsed modules into m. files name parsed's entries.
func buildMIB(m *MIB, files []string, parsed []parsedFile, log *slog.Logger) *MIB {
	mods := map[string]*module{}
	var order []string
	for i, p := range parsed {
		if p.err != nil {
			m.Failed[files[i]] = p.err
			log.Warn("snmp: MIB file skipped", "file", files[i], "err", p.err)
			continue
		}
		name := string(p.mod.Name)
		if _, dup := mods[name]; dup {
			log.Debug("snmp: MIB module defined twice; the first file wins", "module", name, "file", files[i])
			continue
		}
		mods[name] = newModule(p.mod, files[i])
		order = append(order, name)
	}
	r := &resolver{mib: m, mods: mods}
	for _, name := range order {
		mod := mods[name]
		unresolved := 0
		for _, sym := range mod.order {
			if _, ok := r.resolve(mod, sym, 0); !ok {
				unresolved++
				continue
			}
			r.register(mod, sym)
		}
		if unresolved > 0 {
			log.Warn("snmp: MIB module partly resolved (missing imports?)", "module", name, "file", mod.file,
				"unresolved", unresolved, "of", len(mod.order))
		}
		m.Modules = append(m.Modules, name)
	}
	sort.Strings(m.Modules)
	return m
}

type parsedFile struct {
	mod *parser.Module
	err error
}

// parseFiles parses files concurrently; vendor MIB directories hold
// thousands of modules.
func parseFiles(files []string) []parsedFile {
	out := make([]parsedFile, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i].mod, out[i].err = parseFile(files[i])
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func parseFile(path string) (mod *parser.Module, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxMIBFile {
		return nil, fmt.Errorf("larger than %d bytes", maxMIBFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseModule(f)
}

// parseModule parses one MIB module.
func parseModule(r io.Reader) (mod *parser.Module, err error) {
	defer func() {
		// The parser is generated from a grammar; a file it was never
		// tested on must not take the agent down.
		if p := recover(); p != nil {
			mod, err = nil, fmt.Errorf("parser panic: %v", p)
		}
	}()
	mod, err = parser.Parse(r)
	if err != nil {
		return nil, shortErr(err)
	}
	if mod == nil || mod.Name == "" {
		return nil, errors.New("no module definition")
	}
	return mod, nil
}

// shortErr keeps parser errors to one line.
func shortErr(err error) error {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return errors.New(s)
}

// module is a parsed module's symbol table.
type module struct {
	name    string
	file    string
	imports map[string]string // symbol → module it comes from
	defs    map[string]*def
	types   map[string]*parser.Type
	order   []string // definition order
}

type def struct {
	oid        []parser.SubIdentifier
	enterprise string // TRAP-TYPE: ENTERPRISE
	trapNum    uint32 // TRAP-TYPE: ::= n
	trap       bool
	kind       NodeKind
	syntax     *parser.SyntaxType
	state      uint8 // 0 new, 1 resolving, 2 resolved, 3 failed
	resolved   []uint32
}

func newModule(pm *parser.Module, file string) *module {
	mod := &module{name: string(pm.Name), file: file, imports: map[string]string{}, defs: map[string]*def{}, types: map[string]*parser.Type{}}
	for _, imp := range pm.Body.Imports {
		for _, n := range imp.Names {
			mod.imports[string(n)] = string(imp.Module)
		}
	}
	add := func(name string, d *def) {
		if _, dup := mod.defs[name]; dup {
			return
		}
		mod.defs[name] = d
		mod.order = append(mod.order, name)
	}
	if id := pm.Body.Identity; id != nil {
		add(string(id.Name), &def{oid: id.Oid.SubIdentifiers})
	}
	for i := range pm.Body.Types {
		t := &pm.Body.Types[i]
		mod.types[string(t.Name)] = t
	}
	for i := range pm.Body.Nodes {
		n := &pm.Body.Nodes[i]
		d := &def{}
		switch {
		case n.TrapType != nil:
			if n.SubIdentifier == nil {
				continue
			}
			d.trap, d.enterprise, d.trapNum, d.kind = true, string(n.TrapType.Enterprise), uint32(*n.SubIdentifier), KindNotification
		case n.Oid == nil:
			continue
		default:
			d.oid = n.Oid.SubIdentifiers
			switch {
			case n.ObjectType != nil:
				d.kind = KindObject
				d.syntax = n.ObjectType.Syntax.Type
			case n.NotificationType != nil:
				d.kind = KindNotification
			}
		}
		add(string(n.Name), d)
	}
	return mod
}

type resolver struct {
	mib  *MIB
	mods map[string]*module
}

const maxResolveDepth = 64

// resolve returns the OID of sym as seen from mod: its own definition,
// else the module it is imported from, else a built-in node.
func (r *resolver) resolve(mod *module, sym string, depth int) ([]uint32, bool) {
	if depth > maxResolveDepth {
		return nil, false
	}
	if d, ok := mod.defs[sym]; ok {
		return r.resolveDef(mod, d, depth)
	}
	if from, ok := mod.imports[sym]; ok {
		if fm, ok := r.mods[from]; ok && fm != mod {
			if oid, ok := r.resolve(fm, sym, depth+1); ok {
				return oid, true
			}
		}
		if n, ok := r.mib.byName[from+"::"+sym]; ok {
			return parseOID(n.OID)
		}
	}
	if n, ok := r.mib.bare[sym]; ok {
		return parseOID(n.OID)
	}
	return nil, false
}

func (r *resolver) resolveDef(mod *module, d *def, depth int) ([]uint32, bool) {
	switch d.state {
	case 1, 3:
		return nil, false // a cycle, or known to fail
	case 2:
		return d.resolved, true
	}
	d.state = 1
	var oid []uint32
	ok := true
	if d.trap {
		// RFC 3584 §3: an SMIv1 trap is enterprise.0.specific.
		base, found := r.resolve(mod, d.enterprise, depth+1)
		if found {
			oid = append(append(append([]uint32{}, base...), 0), d.trapNum)
		}
		ok = found
	} else {
		for i, sub := range d.oid {
			switch {
			case i == 0 && sub.Name != nil:
				base, found := r.resolve(mod, string(*sub.Name), depth+1)
				if !found && sub.Number != nil {
					base, found = []uint32{uint32(*sub.Number)}, true
				}
				if !found {
					ok = false
				}
				oid = append(oid, base...)
			case sub.Number != nil:
				oid = append(oid, uint32(*sub.Number))
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		ok = ok && len(oid) > 0
	}
	if !ok {
		d.state = 3
		return nil, false
	}
	d.state, d.resolved = 2, oid
	return oid, true
}

// register adds a resolved symbol of mod to the MIB.
func (r *resolver) register(mod *module, sym string) {
	d := mod.defs[sym]
	n := &Node{Module: mod.name, Name: sym, OID: formatOID(d.resolved), Kind: d.kind}
	if d.syntax != nil {
		n.Syntax = string(d.syntax.Name)
		n.Enum = enumOf(d.syntax)
		hint, enum := r.typeInfo(mod, n.Syntax, 0)
		n.Hint = hint
		if n.Enum == nil {
			n.Enum = enum
		}
	}
	r.mib.add(n, false)
}

// typeInfo follows a syntax name through textual conventions to its
// DISPLAY-HINT and enumeration.
func (r *resolver) typeInfo(mod *module, name string, depth int) (string, map[int64]string) {
	if depth > maxResolveDepth {
		return "", nil
	}
	if t, ok := mod.types[name]; ok {
		var st *parser.SyntaxType
		hint := ""
		switch {
		case t.TextualConvention != nil:
			hint, st = t.TextualConvention.DisplayHint, &t.TextualConvention.Syntax
		case t.Syntax != nil:
			st = t.Syntax
		}
		if st == nil {
			return hint, nil
		}
		enum := enumOf(st)
		if hint == "" && enum == nil && string(st.Name) != name {
			return r.typeInfo(mod, string(st.Name), depth+1)
		}
		return hint, enum
	}
	if from, ok := mod.imports[name]; ok {
		if fm, ok := r.mods[from]; ok && fm != mod {
			if h, e := r.typeInfo(fm, name, depth+1); h != "" || e != nil {
				return h, e
			}
		}
	}
	if h, ok := builtinHints[name]; ok {
		return h, nil
	}
	if e, ok := builtinEnums[name]; ok {
		return "", parseEnumList(e)
	}
	return "", nil
}

func enumOf(st *parser.SyntaxType) map[int64]string {
	if st == nil || len(st.Enum) == 0 {
		return nil
	}
	out := make(map[int64]string, len(st.Enum))
	for _, e := range st.Enum {
		if v, err := strconv.ParseInt(e.Value, 10, 64); err == nil {
			out[v] = string(e.Name)
		}
	}
	return out
}

// add indexes n. The first node registered for an OID names it, and
// built-in nodes come first: the standard names stay canonical whichever
// modules are installed. A file's definition of a built-in module's node
// lends it what the built-in table lacks (enumerations, hints).
func (m *MIB) add(n *Node, builtin bool) {
	key := n.Module + "::" + n.Name
	if old, ok := m.byName[key]; ok && !builtin {
		if old.Enum == nil {
			old.Enum = n.Enum
		}
		if old.Hint == "" {
			old.Hint = n.Hint
		}
		if old.Kind == KindOther {
			old.Kind = n.Kind
		}
		return
	}
	m.byName[key] = n
	if _, ok := m.byOID[n.OID]; !ok {
		m.byOID[n.OID] = n
	}
	if _, ok := m.bare[n.Name]; !ok {
		m.bare[n.Name] = n
	}
}

// Len is the number of named nodes.
func (m *MIB) Len() int { return len(m.byName) }

// Lookup finds the node with the longest OID that prefixes oid, and the
// instance suffix after it ("3" for ifIndex.3). oid may have a leading
// dot.
func (m *MIB) Lookup(oid string) (n *Node, suffix string, ok bool) {
	oid = strings.TrimPrefix(oid, ".")
	for s := oid; s != ""; {
		if n, ok := m.byOID[s]; ok {
			return n, strings.TrimPrefix(oid[len(s):], "."), true
		}
		i := strings.LastIndexByte(s, '.')
		if i < 0 {
			break
		}
		s = s[:i]
	}
	return nil, "", false
}

// named finds the node naming oid: one whose OID is oid, or an object
// whose instance oid is. An OID merely below some other node (a subtree
// root like enterprises, a notification prefix) is not named: its numeric
// form says more than "SNMPv2-SMI::enterprises.8072.2.3.0.1" would.
func (m *MIB) named(oid string) (*Node, string, bool) {
	n, suffix, ok := m.Lookup(oid)
	if !ok || suffix != "" && n.Kind != KindObject {
		return nil, "", false
	}
	return n, suffix, true
}

// Translate returns MODULE::name[.instance] for oid, or oid itself
// (without a leading dot) when no module names it.
func (m *MIB) Translate(oid string) string {
	n, suffix, ok := m.named(oid)
	if !ok {
		return strings.TrimPrefix(oid, ".")
	}
	if suffix == "" {
		return n.Module + "::" + n.Name
	}
	return n.Module + "::" + n.Name + "." + suffix
}

// Short returns name[.instance] without the module (as `snmpget -Os`
// prints), or the numeric OID.
func (m *MIB) Short(oid string) string {
	n, suffix, ok := m.named(oid)
	if !ok {
		return strings.TrimPrefix(oid, ".")
	}
	if suffix == "" {
		return n.Name
	}
	return n.Name + "." + suffix
}

// Resolve turns a name into a numeric OID (no leading dot). It accepts
// numeric OIDs ("1.3.6.1.2.1.1.3.0", ".1.3.6…"), MODULE::name[.suffix]
// and name[.suffix], where suffix is numeric.
func (m *MIB) Resolve(name string) (string, error) {
	s := strings.TrimSpace(name)
	if s == "" {
		return "", errors.New("empty OID")
	}
	if isNumericOID(strings.TrimPrefix(s, ".")) {
		return strings.TrimPrefix(s, "."), nil
	}
	mod, sym, qualified := strings.Cut(s, "::")
	if !qualified {
		sym, mod = mod, ""
	}
	base, suffix, dotted := strings.Cut(sym, ".")
	var n *Node
	if qualified {
		n = m.byName[mod+"::"+base]
	} else {
		n = m.bare[base]
	}
	if n == nil {
		if qualified {
			return "", fmt.Errorf("unknown MIB object %q (module %s not loaded, or no such name in it)", name, mod)
		}
		return "", fmt.Errorf("unknown MIB object %q", name)
	}
	if !dotted {
		return n.OID, nil
	}
	if !isNumericOID(suffix) {
		return "", fmt.Errorf("OID %q: instance suffix %q is not numeric", name, suffix)
	}
	return n.OID + "." + suffix, nil
}

// isNumericOID reports whether s is dotted decimal ("1.3.6", "3").
func isNumericOID(s string) bool {
	_, ok := parseOID(s)
	return ok
}

func parseOID(s string) ([]uint32, bool) {
	if s == "" {
		return nil, false
	}
	parts := strings.Split(s, ".")
	out := make([]uint32, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil || p == "" || p[0] == '+' {
			return nil, false
		}
		out[i] = uint32(v)
	}
	return out, true
}

func formatOID(oid []uint32) string {
	var b strings.Builder
	for i, v := range oid {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(uint64(v), 10))
	}
	return b.String()
}
