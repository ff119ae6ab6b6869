package importer

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// object is one "define TYPE { … }" block.
type object struct {
	typ   string
	vars  map[string]string
	order []string // keys in definition order
	file  string
	line  int
}

func (o *object) where() string { return fmt.Sprintf("%s:%d", o.file, o.line) }

// objectSet holds everything read from Nagios configuration files.
type objectSet struct {
	objects      []*object
	templates    map[string]map[string]*object // type -> name -> template
	resourceFile string
	intervalLen  int // seconds, interval_length from nagios.cfg
	files        []string
	warnings     []string
	seen         map[string]bool
}

func newObjectSet() *objectSet {
	return &objectSet{templates: map[string]map[string]*object{}, intervalLen: 60, seen: map[string]bool{}}
}

// readPath reads an object file, a main nagios.cfg (following cfg_file and
// cfg_dir) or a directory of *.cfg files (recursively, as cfg_dir does).
func (s *objectSet) readPath(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(p, ".cfg") {
				return s.readFile(p)
			}
			return nil
		})
	}
	return s.readFile(path)
}

func (s *objectSet) readFile(path string) error {
	abs, _ := filepath.Abs(path)
	if s.seen[abs] {
		return nil
	}
	s.seen[abs] = true
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s.files = append(s.files, path)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var cur *object
	var pending string // "define X" whose "{" is on a later line
	pendingLine := 0
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(stripComment(toUTF8(sc.Text())))
		if line == "" {
			continue
		}
		if cur == nil {
			if pending != "" && strings.HasPrefix(line, "{") {
				cur = &object{typ: pending, vars: map[string]string{}, file: path, line: pendingLine}
				pending = ""
				line = strings.TrimSpace(line[1:])
				if line == "" {
					continue
				}
			}
		}
		if cur == nil {
			if rest, ok := strings.CutPrefix(line, "define"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '{') {
				head, after, hasBrace := strings.Cut(rest, "{")
				typ := strings.TrimSpace(head)
				if typ == "" {
					return fmt.Errorf("%s:%d: define without an object type", path, n)
				}
				if !hasBrace {
					pending, pendingLine = typ, n
					continue
				}
				cur = &object{typ: typ, vars: map[string]string{}, file: path, line: n}
				line = strings.TrimSpace(after)
				if line == "" {
					continue
				}
			} else if k, v, ok := strings.Cut(line, "="); ok {
				s.mainDirective(path, strings.TrimSpace(k), strings.TrimSpace(v))
				continue
			} else {
				return fmt.Errorf("%s:%d: expected 'define TYPE {' or a directive, got %q", path, n, line)
			}
		}
		if strings.HasSuffix(line, "}") {
			body := strings.TrimSpace(strings.TrimSuffix(line, "}"))
			if body != "" {
				cur.set(body)
			}
			s.add(cur)
			cur = nil
			continue
		}
		cur.set(line)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if cur != nil || pending != "" {
		return fmt.Errorf("%s: unterminated define (missing '}')", path)
	}
	return nil
}

// stripComment removes "# …" lines and "; …" comments (nagios allows "\;"
// for a literal semicolon).
func stripComment(s string) string {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "#") {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == ';' {
			b.WriteByte(';')
			i++
			continue
		}
		if s[i] == ';' {
			break
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (o *object) set(line string) {
	k, v, _ := strings.Cut(line, " ")
	if strings.ContainsRune(k, '\t') {
		k, v, _ = strings.Cut(line, "\t")
	}
	k = strings.TrimSpace(k)
	v = strings.TrimSpace(v)
	if _, dup := o.vars[k]; !dup {
		o.order = append(o.order, k)
	}
	o.vars[k] = v
}

func (s *objectSet) mainDirective(file, k, v string) {
	dir := filepath.Dir(file)
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	switch k {
	case "cfg_file":
		if err := s.readFile(abs(v)); err != nil {
			s.warnings = append(s.warnings, fmt.Sprintf("%s: cfg_file %s: %v", file, v, err))
		}
	case "cfg_dir":
		if err := s.readPath(abs(v)); err != nil {
			s.warnings = append(s.warnings, fmt.Sprintf("%s: cfg_dir %s: %v", file, v, err))
		}
	case "resource_file":
		s.resourceFile = abs(v)
	case "interval_length":
		var n int
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			s.intervalLen = n
		}
	}
}

func (s *objectSet) add(o *object) {
	if name := o.vars["name"]; name != "" {
		if s.templates[o.typ] == nil {
			s.templates[o.typ] = map[string]*object{}
		}
		s.templates[o.typ][name] = o
	}
	if o.vars["register"] == "0" {
		return
	}
	s.objects = append(s.objects, o)
}

// resolve returns o's variables with its templates applied: own values
// first, then each template of "use" in order (the first listed wins),
// recursively. "+value" appends to the inherited value; "null" unsets.
func (s *objectSet) resolve(o *object) (map[string]string, error) {
	return s.resolveDepth(o, 0)
}

func (s *objectSet) resolveDepth(o *object, depth int) (map[string]string, error) {
	if depth > 32 {
		return nil, fmt.Errorf("%s: template inheritance deeper than 32 (loop?)", o.where())
	}
	out := map[string]string{}
	inherited := map[string]string{}
	if use := o.vars["use"]; use != "" {
		for _, name := range splitList(use) {
			t, ok := s.templates[o.typ][name]
			if !ok {
				return nil, fmt.Errorf("%s: template %q (%s) is not defined", o.where(), name, o.typ)
			}
			tv, err := s.resolveDepth(t, depth+1)
			if err != nil {
				return nil, err
			}
			for k, v := range tv {
				if _, set := inherited[k]; !set {
					inherited[k] = v
				}
			}
		}
	}
	for k, v := range inherited {
		out[k] = v
	}
	for k, v := range o.vars {
		if add, ok := strings.CutPrefix(v, "+"); ok {
			if prev := inherited[k]; prev != "" {
				v = prev + "," + add
			} else {
				v = add
			}
		}
		out[k] = v
	}
	for k, v := range out {
		if v == "null" {
			delete(out, k)
		}
	}
	delete(out, "register")
	delete(out, "name")
	delete(out, "use")
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// toUTF8 reads a line that is not valid UTF-8 as Latin-1, the usual
// encoding of old Nagios configurations, so no byte is lost or mangled.
func toUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}
