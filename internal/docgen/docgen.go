// Package docgen generates docs/configuration.md from the configuration
// structs themselves (their toml tags, Go types and doc comments), so the
// reference cannot drift from the code: a test fails when the committed
// file is stale (`go run ./internal/docgen/cmd -write` regenerates it).
package docgen

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strings"
)

// Section is one table of the reference.
type Section struct {
	Title string // e.g. "[agent]"
	Intro string
	Dir   string // package directory, relative to the repository root
	Type  string // struct type name
	Skip  []string
}

// Sections lists what the reference documents, in order.
var Sections = []Section{
	{Title: "[agent]", Dir: "agent/config", Type: "Agent", Intro: "The agent itself. Only in the main file."},
	{Title: "[defaults]", Dir: "agent/config", Type: "Defaults", Intro: "Values for checks that do not set them."},
	{Title: "[nagios]", Dir: "agent/config", Type: "Nagios", Intro: "The Nagios plugin runner. Changes need a restart."},
	{Title: "[[check]] (every type)", Dir: "agent/config", Type: "checkCommon", Intro: "Keys every check has; the type's own keys follow in the same table."},
	{Title: "[[check]] type = \"nagios\"", Dir: "compat/nagios", Type: "Settings"},
	{Title: "[[check]] type = \"passive\"", Dir: "compat/passive", Type: "Settings"},
	{Title: "[[check]] type = \"lua\"", Dir: "lua", Type: "Settings", Intro: "A check script in Lua; see lua/README.md for the script contract, modules and sandbox."},
	{Title: "[[check]] type = \"plugin\"", Dir: "plugins/host", Type: "CommonSettings", Intro: "An out-of-process check plugin; see plugins/sdk/README.md. `recon plugin inspect BIN` prints its schema and sha256."},
	{Title: "[[check]] type = \"snmp\"", Dir: "compat/snmp", Type: "Settings", Intro: "SNMP polling: get, walk and the IF-MIB interface table."},
	{Title: "[[sink]] (every type)", Dir: "agent/config", Type: "sinkCommon", Intro: "Keys every sink has. Each sink has its own durable spool under data_dir/sinks/NAME."},
	{Title: "[[sink]] type = \"sqlite\"", Dir: "sinks/sqlite", Type: "Settings"},
	{Title: "[[sink]] type = \"postgres\"", Dir: "sinks/postgres", Type: "Settings"},
	{Title: "[[sink]] type = \"lineproto\"", Dir: "sinks/lineproto", Type: "Settings"},
	{Title: "[[sink]] type = \"alerter\"", Dir: "sinks/alerter", Type: "Settings"},
	{Title: "[[sink.notifier]] (alerter)", Dir: "sinks/alerter", Type: "NotifierConfig"},
	{Title: "[[sink]] type = \"plugin\"", Dir: "plugins/host", Type: "SinkSettings", Intro: "An out-of-process sink plugin behind the durable spool: the keys of a plugin check (`path`, `sha256`, `insecure_skip_checksum`, `auto_mtls`, `env`, `config`) plus these."},
	{Title: "[[sink]] type = \"nats\"", Dir: "sinks/nats", Type: "Connection", Intro: "Publishes results to NATS JetStream for `recon ingest` (scale-out)."},
	{Title: "[ingest]", Dir: "sinks/nats", Type: "IngestConfig", Intro: "`recon ingest`: every key of the nats sink (url, stream, …) plus these."},
	{Title: "[nrpe]", Dir: "compat/nrpe", Type: "Config", Intro: "The NRPE server for check_nrpe."},
	{Title: "[passive]", Dir: "compat/passive", Type: "Config", Intro: "External commands (PROCESS_SERVICE_CHECK_RESULT) for passive checks."},
	{Title: "[[snmp_trap]]", Dir: "compat/snmp", Type: "ReceiverConfig", Intro: "An SNMP trap receiver (v1, v2c, v3; informs acknowledged). Give each its own name; see compat/snmp/README.md."},
	{Title: "[[snmp_trap.user]]", Dir: "compat/snmp", Type: "UserConfig", Intro: "An SNMPv3 USM user of a trap receiver."},
	{Title: "[[snmp_trap.rule]]", Dir: "compat/snmp", Type: "RuleConfig", Intro: "Maps traps to a status; the first match wins."},
}

// Generate renders the reference from the sources under root.
func Generate(root string, sections []Section) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("<!-- Generated from the configuration structs by `go run ./internal/docgen/cmd -write`; do not edit. -->\n\n")
	b.WriteString("recon reads TOML. Unknown keys, wrong types and bad durations are errors naming `file:line`.\n")
	b.WriteString("Durations are Go duration strings (`500ms`, `30s`, `5m`, `1h`). `${VAR}` and `${VAR:-default}` are\n")
	b.WriteString("replaced from the environment. `include = [\"conf.d\"]` reads more files (files, directories of `*.toml`, globs).\n")
	b.WriteString("An annotated example is `configs/recon.toml`.\n")
	cache := map[string]map[string]*ast.StructType{}
	docs := map[string]map[string]string{}
	for _, s := range sections {
		structs, ok := cache[s.Dir]
		if !ok {
			var err error
			structs, docs[s.Dir], err = parseDir(filepath.Join(root, s.Dir))
			if err != nil {
				return nil, err
			}
			cache[s.Dir] = structs
		}
		st, ok := structs[s.Type]
		if !ok {
			return nil, fmt.Errorf("docgen: type %s not found in %s", s.Type, s.Dir)
		}
		fmt.Fprintf(&b, "\n## %s\n\n", s.Title)
		intro := s.Intro
		if intro == "" {
			intro = docs[s.Dir][s.Type]
		}
		if intro != "" {
			b.WriteString(oneLine(intro) + "\n\n")
		}
		b.WriteString("| key | type | description |\n|---|---|---|\n")
		for _, f := range st.Fields.List {
			if f.Tag == nil || len(f.Names) == 0 {
				continue
			}
			tag := reflect.StructTag(strings.Trim(f.Tag.Value, "`")).Get("toml")
			name, _, _ := strings.Cut(tag, ",")
			if name == "" || name == "-" {
				continue
			}
			doc := ""
			if f.Doc != nil {
				doc = f.Doc.Text()
			}
			if f.Comment != nil {
				doc = strings.TrimSpace(doc + " " + f.Comment.Text())
			}
			if strings.TrimSpace(doc) == "" {
				return nil, fmt.Errorf("docgen: %s.%s (%s) has no doc comment: document it", s.Type, f.Names[0].Name, s.Dir)
			}
			// Drop the Go field name the comment starts with.
			doc = strings.TrimPrefix(strings.TrimSpace(doc), f.Names[0].Name+" ")
			doc = strings.TrimPrefix(doc, "is ")
			if doc != "" {
				doc = strings.ToUpper(doc[:1]) + doc[1:]
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, typeName(f.Type), escape(oneLine(doc)))
		}
	}
	return b.Bytes(), nil
}

func parseDir(dir string) (map[string]*ast.StructType, map[string]string, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, nil, err
	}
	structs := map[string]*ast.StructType{}
	docs := map[string]string{}
	for _, fn := range files {
		if strings.HasSuffix(fn, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, fn, nil, parser.ParseComments)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, sp := range g.Specs {
				ts := sp.(*ast.TypeSpec)
				if st, ok := ts.Type.(*ast.StructType); ok {
					structs[ts.Name.Name] = st
					if g.Doc != nil {
						docs[ts.Name.Name] = g.Doc.Text()
					}
				}
			}
		}
	}
	return structs, docs, nil
}

func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		switch t.Name {
		case "Duration":
			return "duration"
		case "int", "int64":
			return "integer"
		case "float64":
			return "number"
		}
		return t.Name
	case *ast.StarExpr:
		return typeName(t.X)
	case *ast.SelectorExpr:
		if t.Sel.Name == "Duration" {
			return "duration"
		}
		return t.Sel.Name
	case *ast.ArrayType:
		return "array of " + typeName(t.Elt)
	case *ast.MapType:
		return "table of " + typeName(t.Value)
	}
	return "value"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func escape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
