package nagios

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios/threshold"
)

// Output is a plugin's stdout split per the Nagios plugin API.
type Output struct {
	Text       string // first line, without perfdata
	LongOutput string // following lines, without perfdata
	Metrics    []model.Metric
	// Notes lists every part of the perfdata that could not be parsed or
	// was only partly kept; the runner shows them in the long output, so
	// nothing vanishes silently.
	Notes []string
}

// ParseOutput splits plugin output into text, long output and perfdata:
//
//	TEXT | PERFDATA
//	LONG TEXT
//	LONG TEXT | PERFDATA
//	PERFDATA
//
// Perfdata is whatever follows the first '|' on the first line, plus
// whatever follows the first '|' in the long output, including every line
// after that one. CRLF line ends are accepted. The result is valid UTF-8
// without NUL bytes (invalid bytes become U+FFFD), so every sink can store
// it as text.
func ParseOutput(out []byte) Output {
	s := clean(string(out))
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
	}
	s = strings.TrimRight(s, "\n")
	first, rest, _ := strings.Cut(s, "\n")
	var o Output
	text, perf, hasPerf := strings.Cut(first, "|")
	o.Text = strings.TrimSpace(text)
	if hasPerf {
		o.parsePerf(perf)
	}
	if rest != "" {
		long, perf, hasPerf := strings.Cut(rest, "|")
		o.LongOutput = strings.TrimRight(long, " \t\n")
		if hasPerf {
			o.parsePerf(perf)
		}
	}
	return o
}

func (o *Output) parsePerf(s string) {
	var p perfParser
	p.metrics, p.notes = o.Metrics, o.Notes
	p.parse(s)
	o.Metrics, o.Notes = p.metrics, p.notes
}

// ParsePerfdata parses space-separated perfdata items
// 'label'=value[UOM];[warn];[crit];[min];[max]. An item whose label or
// value cannot be parsed (including the value U, "undetermined") yields a
// note instead of a metric; a bad warn, crit, min or max is dropped from an
// otherwise good metric, with a note. The notes say what was lost and why.
func ParsePerfdata(s string) (metrics []model.Metric, notes []string) {
	var p perfParser
	p.parse(clean(s))
	return p.metrics, p.notes
}

// clean makes s valid UTF-8 without NULs: stores reject both in text.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}

type perfParser struct {
	s       string
	i       int
	metrics []model.Metric
	notes   []string
	names   map[string]int // index of metrics by name, built once there are many
}

func (p *perfParser) parse(s string) {
	p.s, p.i = s, 0
	for {
		p.skipSpace()
		if p.done() {
			return
		}
		start := p.i
		m, err := p.item()
		if err != nil {
			if err == errUnterminated {
				// The quote never closes: take it as a stray character
				// so that the items after it still parse.
				p.i = start
				p.skipWord()
			} else {
				p.skipItem()
			}
			p.notef(start, "%v; not kept", err)
			continue
		}
		if dup := p.find(m.Name); dup >= 0 {
			// Stores key a sample by check, metric name and time: a second
			// value under one name would overwrite the first there.
			p.notef(start, "duplicate label %q; only the first value (%s) is kept", m.Name, p.metrics[dup].Value)
			continue
		}
		p.metrics = append(p.metrics, m)
	}
}

// find returns the index of the metric called name, or -1. A linear scan
// is fastest for the usual handful of metrics; a map keeps a plugin that
// prints thousands from making this quadratic.
func (p *perfParser) find(name string) int {
	if len(p.metrics) < 16 {
		for i := range p.metrics {
			if p.metrics[i].Name == name {
				return i
			}
		}
		return -1
	}
	if p.names == nil {
		p.names = make(map[string]int, 2*len(p.metrics))
	}
	for i := len(p.names); i < len(p.metrics); i++ {
		p.names[p.metrics[i].Name] = i
	}
	if i, ok := p.names[name]; ok {
		return i
	}
	return -1
}

// notef records a note about the item that starts at start and ends at
// the parser's position.
func (p *perfParser) notef(start int, format string, args ...any) {
	item := strings.TrimSpace(p.s[start:min(p.i, len(p.s))])
	p.notes = append(p.notes, fmt.Sprintf("perfdata %q: ", item)+fmt.Sprintf(format, args...))
}

func (p *perfParser) done() bool { return p.i >= len(p.s) }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (p *perfParser) skipSpace() {
	for !p.done() && isSpace(p.s[p.i]) {
		p.i++
	}
}

var errUnterminated = fmt.Errorf("unterminated quoted label")

// skipWord moves to the next whitespace.
func (p *perfParser) skipWord() {
	for !p.done() && !isSpace(p.s[p.i]) {
		p.i++
	}
}

// skipItem moves past a bad item: to the next whitespace outside quotes.
func (p *perfParser) skipItem() {
	quoted := false
	for !p.done() {
		c := p.s[p.i]
		if c == '\'' {
			quoted = !quoted
		} else if isSpace(c) && !quoted {
			return
		}
		p.i++
	}
}

// label reads 'quoted label'= or label= . Quoted labels may hold spaces,
// '=' and ” (a literal quote), as the plugin guidelines allow.
func (p *perfParser) label() (string, error) {
	if p.s[p.i] == '\'' {
		p.i++
		var b strings.Builder
		for {
			if p.done() {
				return "", errUnterminated
			}
			c := p.s[p.i]
			p.i++
			if c == '\'' {
				if !p.done() && p.s[p.i] == '\'' {
					b.WriteByte('\'')
					p.i++
					continue
				}
				break
			}
			b.WriteByte(c)
		}
		if p.done() || p.s[p.i] != '=' {
			return "", fmt.Errorf("missing '=' after the quoted label")
		}
		p.i++
		if strings.TrimSpace(b.String()) == "" {
			return "", fmt.Errorf("empty label")
		}
		return b.String(), nil
	}
	start := p.i
	for !p.done() && p.s[p.i] != '=' {
		if isSpace(p.s[p.i]) {
			break
		}
		p.i++
	}
	if p.s[start:p.i] == "|" {
		return "", fmt.Errorf("stray '|' (only the first '|' of the output and of the long output starts perfdata)")
	}
	if p.done() || p.s[p.i] != '=' {
		return "", fmt.Errorf("missing '='")
	}
	label := p.s[start:p.i]
	p.i++
	if label == "" {
		return "", fmt.Errorf("empty label")
	}
	return label, nil
}

var fieldNames = [...]string{"value", "warn", "crit", "min", "max"}

// item parses one label=value;warn;crit;min;max. An error means no metric;
// problems with the optional fields are notes on a kept metric.
func (p *perfParser) item() (model.Metric, error) {
	var m model.Metric
	start := p.i
	label, err := p.label()
	if err != nil {
		return m, err
	}
	m.Name = label
	vstart := p.i
	p.skipWord()
	fields := strings.Split(p.s[vstart:p.i], ";")
	num, unit := splitUnit(fields[0])
	switch {
	case num == "" && unit == "U":
		return m, fmt.Errorf("value is U (undetermined: the plugin could not measure it)")
	case num == "" && unit == "":
		return m, fmt.Errorf("missing value")
	case num == "" || !validUnit(unit):
		return m, fmt.Errorf("invalid value %q", fields[0])
	}
	v, err := parseValue(num, unit)
	if err != nil {
		return m, err
	}
	m.Value, m.Unit = v, unit
	// From here on the metric is kept; what is wrong with the optional
	// fields is dropped from it, with a note.
	var problems []string
	if len(fields) > len(fieldNames) {
		// Trailing empty fields ("1;2;3;4;5;") are harmless.
		if extra := strings.Join(fields[len(fieldNames):], ";"); strings.Trim(extra, ";") != "" {
			problems = append(problems, fmt.Sprintf("%d fields, at most 5 (value;warn;crit;min;max): %q ignored", len(fields), extra))
		}
		fields = fields[:len(fieldNames)]
	}
	for i := 1; i < len(fields); i++ {
		txt := fields[i]
		if txt == "" {
			continue
		}
		switch i {
		case 1, 2:
			if _, err := threshold.Parse(txt); err != nil {
				problems = append(problems, fmt.Sprintf("%s range dropped: %v", fieldNames[i], err))
				continue
			}
			if i == 1 {
				m.Warn = txt
			} else {
				m.Crit = txt
			}
		case 3, 4:
			f, err := parseFloat(txt)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s dropped: %v", fieldNames[i], err))
				continue
			}
			if i == 3 {
				m.Min = &f
			} else {
				m.Max = &f
			}
		}
	}
	if len(problems) > 0 {
		p.notef(start, "%s", strings.Join(problems, "; "))
	}
	return m, nil
}

// splitUnit separates the numeric prefix from the unit of measure.
func splitUnit(s string) (num, unit string) {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= '0' && c <= '9' || c == '.' || c == ',' || c == '-' || c == '+' {
			i++
			continue
		}
		// An exponent is part of the number only when digits follow it.
		if (c == 'e' || c == 'E') && i > 0 && i+1 < len(s) {
			j := i + 1
			if s[j] == '-' || s[j] == '+' {
				j++
			}
			if j < len(s) && s[j] >= '0' && s[j] <= '9' {
				i = j
				continue
			}
		}
		break
	}
	return s[:i], s[i:]
}

// validUnit accepts the guidelines' UOMs (s ms us % B KB MB GB TB c) and,
// as graphing tools do, any other unit a plugin prints (°C, dBm, req/s,
// KiB), kept as printed: letters, '%', '/', '°' and '_'. Anything else
// means the value is garbage ("12:30", "1x2", "0x1F"), not a number with
// a unit.
func validUnit(u string) bool {
	for _, r := range u {
		if !unicode.IsLetter(r) && r != '%' && r != '/' && r != '°' && r != '_' {
			return false
		}
	}
	return true
}

// parseFloat parses a finite number, accepting a decimal comma.
func parseFloat(s string) (float64, error) {
	t := s
	if strings.IndexByte(t, ',') >= 0 && strings.IndexByte(t, '.') < 0 {
		t = strings.Replace(t, ",", ".", 1)
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	return f, nil
}

// parseValue keeps integers exact: int64, or uint64 for counters (unit c)
// beyond int64; everything else is float64.
func parseValue(num, unit string) (model.Value, error) {
	if strings.IndexAny(num, ".,eE") < 0 {
		if i, err := strconv.ParseInt(num, 10, 64); err == nil {
			return model.Int(i), nil
		}
		if unit == "c" {
			if u, err := strconv.ParseUint(strings.TrimPrefix(num, "+"), 10, 64); err == nil {
				return model.Uint(u), nil
			}
		}
	}
	f, err := parseFloat(num)
	if err != nil {
		return model.Value{}, fmt.Errorf("invalid value %q", num+unit)
	}
	return model.Float(f), nil
}
