package config

import (
	"bytes"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyIndex maps dotted key paths to the line that defines them. Array
// tables get their element index in the path: "check.2.command".
type keyIndex map[string]int

// lineStarts holds the offset of every line's first byte, so an offset's
// line is a binary search (the parser's Shape rescans the document from
// the start, which made loading N checks O(N²)).
type lineStarts []int

func newLineStarts(data []byte) lineStarts {
	ls := lineStarts{0}
	for off := 0; ; {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return ls
		}
		off += i + 1
		ls = append(ls, off)
	}
}

// line returns the 1-based line of a byte offset.
func (ls lineStarts) line(off int) int {
	return sort.Search(len(ls), func(i int) bool { return ls[i] > off })
}

func buildIndex(data []byte) keyIndex {
	idx := keyIndex{}
	var p unstable.Parser
	p.Reset(data)
	lines := newLineStarts(data)
	counts := map[string]int{}
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			keys, line := keyParts(lines, e.Key())
			table = resolveTable(keys, counts, e.Kind == unstable.ArrayTable)
			path := strings.Join(table, ".")
			if _, seen := idx[path]; !seen || e.Kind == unstable.ArrayTable {
				idx[path] = line
			}
		case unstable.KeyValue:
			keys, line := keyParts(lines, e.Key())
			path := append(append([]string{}, table...), keys...)
			idx.add(lines, path, line, e.Value())
		}
	}
	return idx
}

func (idx keyIndex) add(lines lineStarts, path []string, line int, v *unstable.Node) {
	idx[strings.Join(path, ".")] = line
	if v == nil || v.Kind != unstable.InlineTable {
		return
	}
	it := v.Children()
	for it.Next() {
		kv := it.Node()
		if kv.Kind != unstable.KeyValue {
			continue
		}
		keys, l := keyParts(lines, kv.Key())
		idx.add(lines, append(append([]string{}, path...), keys...), l, kv.Value())
	}
}

// resolveTable turns a header into its indexed path: for [[check]] the n-th
// occurrence becomes check.n, and [check.config] after it check.n.config.
func resolveTable(keys []string, counts map[string]int, array bool) []string {
	var out []string
	for i, k := range keys {
		out = append(out, k)
		prefix := strings.Join(out, ".")
		last := i == len(keys)-1
		if last && array {
			n := counts[prefix]
			counts[prefix] = n + 1
			out = append(out, strconv.Itoa(n))
			continue
		}
		if n, ok := counts[prefix]; ok {
			out = append(out, strconv.Itoa(n-1))
		}
	}
	return out
}

func keyParts(lines lineStarts, it unstable.Iterator) ([]string, int) {
	var parts []string
	line := 0
	for it.Next() {
		n := it.Node()
		parts = append(parts, string(n.Data))
		if line == 0 {
			line = lines.line(int(n.Raw.Offset))
		}
	}
	return parts, line
}

// line returns the line of path or of its closest defined parent.
func (idx keyIndex) line(path ...string) int {
	for len(path) > 0 {
		if l, ok := idx[strings.Join(path, ".")]; ok {
			return l
		}
		path = path[:len(path)-1]
	}
	return 0
}
