package nagios

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios/threshold"
)

// Output is a plugin's stdout split per the Nagios plugin API.
type Output struct {
	Text       string // first line, without perfdata
	LongOutput string // following lines, without perfdata
	Metrics    []model.Metric
	// Notes lists every part of the perfdata that could not be parsed; the
	// runner shows them in the long output so nothing vanishes silently.
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
// after that one.
func ParseOutput(out []byte) Output {
	s := strings.ReplaceAll(string(out), "\r\n", "\n")
	s = strings.TrimRight(s, "\n")
	first, rest, _ := strings.Cut(s, "\n")
	var o Output
	var perf []string
	text, p, hasPerf := strings.Cut(first, "|")
	o.Text = strings.TrimSpace(text)
	if hasPerf {
		perf = append(perf, p)
	}
	if rest != "" {
		long, p, hasPerf := strings.Cut(rest, "|")
		o.LongOutput = strings.TrimRight(long, " \t\n")
		if hasPerf {
			perf = append(perf, p)
		}
	}
	for _, p := range perf {
		ms, notes := ParsePerfdata(p)
		o.Metrics = append(o.Metrics, ms...)
		o.Notes = append(o.Notes, notes...)
	}
	return o
}

// ParsePerfdata parses space-separated perfdata items
// 'label'=value[UOM];[warn];[crit];[min];[max]. Items that cannot be parsed
// are reported in notes (one per item) and the rest are still returned.
func ParsePerfdata(s string) (metrics []model.Metric, notes []string) {
	p := perfScanner{s: s}
	for {
		p.skipSpace()
		if p.done() {
			return metrics, notes
		}
		start := p.i
		m, err := p.item()
		if err != nil {
			if err == errUnterminated {
				// The quote never closes: treat it as a stray character
				// so the items after it still parse.
				p.i = start
				p.skipWord()
			} else {
				p.skipItem()
			}
			notes = append(notes, fmt.Sprintf("perfdata %q: %v", strings.TrimSpace(s[start:p.i]), err))
			continue
		}
		metrics = append(metrics, m)
	}
}

type perfScanner struct {
	s string
	i int
}

func (p *perfScanner) done() bool { return p.i >= len(p.s) }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (p *perfScanner) skipSpace() {
	for !p.done() && isSpace(p.s[p.i]) {
		p.i++
	}
}

var errUnterminated = fmt.Errorf("unterminated quoted label")

// skipWord moves to the next whitespace.
func (p *perfScanner) skipWord() {
	for !p.done() && !isSpace(p.s[p.i]) {
		p.i++
	}
}

// skipItem moves past a bad item: to the next whitespace outside quotes.
func (p *perfScanner) skipItem() {
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

func (p *perfScanner) label() (string, error) {
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
				if !p.done() && p.s[p.i] == '\'' { // '' is a literal quote
					b.WriteByte('\'')
					p.i++
					continue
				}
				break
			}
			b.WriteByte(c)
		}
		if p.done() || p.s[p.i] != '=' {
			return "", fmt.Errorf("missing '=' after label")
		}
		p.i++
		if b.Len() == 0 {
			return "", fmt.Errorf("empty label")
		}
		return b.String(), nil
	}
	start := p.i
	for !p.done() && p.s[p.i] != '=' {
		if isSpace(p.s[p.i]) {
			return "", fmt.Errorf("missing '=' (labels with spaces must be quoted)")
		}
		p.i++
	}
	if p.done() {
		return "", fmt.Errorf("missing '='")
	}
	label := p.s[start:p.i]
	p.i++
	if label == "" {
		return "", fmt.Errorf("empty label")
	}
	return label, nil
}

func (p *perfScanner) item() (model.Metric, error) {
	var m model.Metric
	label, err := p.label()
	if err != nil {
		return m, err
	}
	m.Name = label
	start := p.i
	for !p.done() && !isSpace(p.s[p.i]) {
		p.i++
	}
	fields := strings.Split(p.s[start:p.i], ";")
	if len(fields) > 5 {
		return m, fmt.Errorf("%d fields, at most 5 (value;warn;crit;min;max)", len(fields))
	}
	num, unit := splitUnit(fields[0])
	m.Unit = unit
	switch {
	case num == "" && unit == "U":
		return m, fmt.Errorf("value is U (undetermined)")
	case num == "" && unit != "":
		return m, fmt.Errorf("invalid value %q", unit)
	case num == "":
		return m, fmt.Errorf("missing value")
	}
	v, err := parseValue(num, unit)
	if err != nil {
		return m, err
	}
	m.Value = v
	get := func(i int) string {
		if i < len(fields) {
			return strings.TrimSpace(fields[i])
		}
		return ""
	}
	for i, dst := range []*string{&m.Warn, &m.Crit} {
		txt := get(i + 1)
		if _, err := threshold.Parse(txt); err != nil {
			return m, fmt.Errorf("%s: %v", [...]string{"warn", "crit"}[i], err)
		}
		*dst = txt
	}
	for i, dst := range []**float64{&m.Min, &m.Max} {
		txt := get(i + 3)
		if txt == "" {
			continue
		}
		f, err := parseFloat(txt)
		if err != nil {
			return m, fmt.Errorf("%s: invalid number %q", [...]string{"min", "max"}[i], txt)
		}
		*dst = &f
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

func parseFloat(s string) (float64, error) {
	if strings.Contains(s, ",") && !strings.Contains(s, ".") {
		s = strings.Replace(s, ",", ".", 1)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	return f, nil
}

func parseValue(num, unit string) (model.Value, error) {
	if !strings.ContainsAny(num, ".,eE") {
		if i, err := strconv.ParseInt(num, 10, 64); err == nil {
			return model.Int(i), nil
		}
		if u, err := strconv.ParseUint(strings.TrimPrefix(num, "+"), 10, 64); err == nil {
			return model.Uint(u), nil
		}
	}
	f, err := parseFloat(num)
	if err != nil {
		return model.Value{}, fmt.Errorf("invalid value %q", num+unit)
	}
	return model.Float(f), nil
}
