package nagios

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios/threshold"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/perfdata")

var perfdataDir = filepath.Join("..", "..", "testdata", "perfdata")

// golden is the JSON form of an Output for golden files; metrics use the
// agent's JSON encoding, so the files also pin what sinks receive.
type golden struct {
	Text       string            `json:"text"`
	LongOutput string            `json:"long_output"`
	Metrics    []json.RawMessage `json:"metrics"`
	Notes      []string          `json:"notes"`
}

func metricsJSON(t testing.TB, ms []model.Metric) []json.RawMessage {
	t.Helper()
	if len(ms) == 0 {
		return nil
	}
	var w struct {
		Metrics []json.RawMessage `json:"metrics"`
	}
	r := model.Result{Metrics: ms}
	if err := json.Unmarshal(r.AppendJSON(nil), &w); err != nil {
		t.Fatalf("model JSON of %+v: %v", ms, err)
	}
	return w.Metrics
}

// TestGoldenPerfdata parses every testdata/perfdata/*.txt (real outputs of
// monitoring-plugins and tricky cases) and compares with the .json beside
// it. go test -run TestGoldenPerfdata -update rewrites the .json files.
func TestGoldenPerfdata(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join(perfdataDir, "*.txt"))
	if err != nil || len(inputs) < 40 {
		t.Fatalf("golden inputs: %d files, %v", len(inputs), err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			o := ParseOutput(data)
			got, err := json.MarshalIndent(golden{Text: o.Text, LongOutput: o.LongOutput,
				Metrics: metricsJSON(t, o.Metrics), Notes: o.Notes}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			want := strings.TrimSuffix(in, ".txt") + ".json"
			if *update {
				if err := os.WriteFile(want, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			exp, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (go test -run TestGoldenPerfdata -update creates it)", err)
			}
			if string(exp) != string(got) {
				t.Errorf("differs from %s (go test -update rewrites it after review):\n%s", want, got)
			}
			checkInvariants(t, data, o)
		})
	}
}

func TestParseOutputStructure(t *testing.T) {
	cases := []struct {
		in, text, long string
		metrics        []string
	}{
		{"", "", "", nil},
		{"OK", "OK", "", nil},
		{"OK - fine|a=1", "OK - fine", "", []string{"a"}},
		{"OK - fine | a=1 b=2\n", "OK - fine", "", []string{"a", "b"}},
		{"OK\nl1\nl2", "OK", "l1\nl2", nil},
		{"OK | a=1\nl1\nl2 | b=2\nc=3\n", "OK", "l1\nl2", []string{"a", "b", "c"}},
		{"OK\r\nl1 | b=2\r\n", "OK", "l1", []string{"b"}},
		{"|a=1", "", "", []string{"a"}},
		{"\n\nsecond", "", "\nsecond", nil},
		{"OK | a=1 | b=2", "OK", "", []string{"a", "b"}}, // the second '|' is a bad item, noted
	}
	for _, c := range cases {
		o := ParseOutput([]byte(c.in))
		var names []string
		for _, m := range o.Metrics {
			names = append(names, m.Name)
		}
		if o.Text != c.text || o.LongOutput != c.long || strings.Join(names, ",") != strings.Join(c.metrics, ",") {
			t.Errorf("%q: text %q long %q metrics %q; want %q %q %q", c.in, o.Text, o.LongOutput, names, c.text, c.long, c.metrics)
		}
	}
}

func TestParsePerfdataItems(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		in   string
		want model.Metric
	}{
		{"load1=0.420;5.000;10.000;0;", model.Metric{Name: "load1", Value: model.Float(0.42), Warn: "5.000", Crit: "10.000", Min: f(0)}},
		{"'C:\\ Used Space'=12.5GB;20;25;0;30", model.Metric{Name: `C:\ Used Space`, Value: model.Float(12.5), Unit: "GB", Warn: "20", Crit: "25", Min: f(0), Max: f(30)}},
		{"'it''s'=1", model.Metric{Name: "it's", Value: model.Int(1)}},
		{"'a=b'=2c", model.Metric{Name: "a=b", Value: model.Int(2), Unit: "c"}},
		{"x=3,5ms", model.Metric{Name: "x", Value: model.Float(3.5), Unit: "ms"}},
		{"big=18446744073709551615c", model.Metric{Name: "big", Value: model.Uint(18446744073709551615), Unit: "c"}},
		{"bignc=18446744073709551615", model.Metric{Name: "bignc", Value: model.Float(18446744073709551615)}},
		{"imax=9223372036854775807", model.Metric{Name: "imax", Value: model.Int(math.MaxInt64)}},
		{"neg=-4", model.Metric{Name: "neg", Value: model.Int(-4)}},
		{"e=1.5e3", model.Metric{Name: "e", Value: model.Float(1500)}},
		{"r=1;@10:20;~:30", model.Metric{Name: "r", Value: model.Int(1), Warn: "@10:20", Crit: "~:30"}},
		{"pct=50%;80;90", model.Metric{Name: "pct", Value: model.Int(50), Unit: "%", Warn: "80", Crit: "90"}},
		{"emptymin=1;;;;5", model.Metric{Name: "emptymin", Value: model.Int(1), Max: f(5)}},
		{"t=0.001524s;;;0.000000;10.000000", model.Metric{Name: "t", Value: model.Float(0.001524), Unit: "s", Min: f(0), Max: f(10)}},
		{"size=436B;;;0;", model.Metric{Name: "size", Value: model.Int(436), Unit: "B", Min: f(0)}},
		{"mm=1,5;2,5;3,5;0,5;9,5", model.Metric{Name: "mm", Value: model.Float(1.5), Warn: "2,5", Crit: "3,5", Min: f(0.5), Max: f(9.5)}},
		{"us=3us", model.Metric{Name: "us", Value: model.Int(3), Unit: "us"}},
		{"tb=1.5TB", model.Metric{Name: "tb", Value: model.Float(1.5), Unit: "TB"}},
		{"temp=21°C", model.Metric{Name: "temp", Value: model.Int(21), Unit: "°C"}},
		{"'  padded  '=1", model.Metric{Name: "  padded  ", Value: model.Int(1)}},
	}
	for _, c := range cases {
		ms, notes := ParsePerfdata(c.in)
		if len(notes) > 0 || len(ms) != 1 {
			t.Errorf("%q: metrics %+v notes %q", c.in, ms, notes)
			continue
		}
		g, w := metricsJSON(t, ms), metricsJSON(t, []model.Metric{c.want})
		if string(g[0]) != string(w[0]) || ms[0].Value.Kind() != c.want.Value.Kind() {
			t.Errorf("%q:\n got %s\nwant %s", c.in, g[0], w[0])
		}
	}
}

// TestParsePerfdataBad: every bad item gives one note naming the problem;
// a bad value loses the metric, a bad optional field only that field.
func TestParsePerfdataBad(t *testing.T) {
	cases := []struct {
		in, note string
		kept     bool // the metric survives without the bad field
	}{
		{"abc", "missing '='", false},
		{"a=", "missing value", false},
		{"a=U", "value is U (undetermined", false},
		{"a=U;1;2;0;10", "value is U", false},
		{"a=xyz", `invalid value "xyz"`, false},
		{"a=12:30", `invalid value "12:30"`, false},
		{"a=1x2", `invalid value "1x2"`, false},
		{"a=--1", "invalid value", false},
		{"a=1.2.3", "invalid value", false},
		{"a=1e999", "invalid value", false},
		{"a=nan", "invalid value", false},
		{"a='5'", "invalid value", false},
		{"'a=1", "unterminated quoted label", false},
		{"''=1", "empty label", false},
		{"' '=1", "empty label", false},
		{"=1", "empty label", false},
		{"'x'y=1", "missing '=' after the quoted label", false},
		{"a=1;2;3;4;5;6", `6 fields, at most 5 (value;warn;crit;min;max): "6" ignored`, true},
		{"a=1;10:5", `warn range dropped: threshold "10:5": start 10 is greater than end 5`, true},
		{"a=1;;x", `crit range dropped: threshold "x"`, true},
		{"a=1;1:2:3", "more than one ':'", true},
		{"a=1;1;2;x", `min dropped: invalid number "x"`, true},
		{"a=1;1;2;0;NaN", `max dropped: invalid number "NaN"`, true},
		{"a=1;1;2;0;1e999", "max dropped", true},
	}
	for _, c := range cases {
		ms, notes := ParsePerfdata(c.in)
		if len(notes) != 1 || !strings.Contains(notes[0], c.note) || !strings.Contains(notes[0], strconv.Quote(c.in)) {
			t.Errorf("%q: notes %q, want one note quoting the item and containing %q", c.in, notes, c.note)
		}
		if c.kept != (len(ms) == 1) || len(ms) > 1 {
			t.Errorf("%q: metrics %+v, kept=%v wanted", c.in, ms, c.kept)
		}
		if !c.kept && !strings.HasSuffix(notes[0], "not kept") {
			t.Errorf("%q: note %q does not say the value was lost", c.in, notes[0])
		}
	}
	// Good items around bad ones survive.
	ms, notes := ParsePerfdata("a=1 bad b=2 'open c=3")
	if len(ms) != 3 || len(notes) != 2 {
		t.Errorf("mixed: %+v %q", ms, notes)
	}
	// A duplicate name keeps the first value and says so.
	ms, notes = ParsePerfdata("a=1 a=2")
	if len(ms) != 1 || ms[0].Value.Int() != 1 || len(notes) != 1 || !strings.Contains(notes[0], `duplicate label "a"`) {
		t.Errorf("duplicate: %+v %q", ms, notes)
	}
	// Many metrics: duplicate detection switches to a map and still works.
	var b strings.Builder
	for i := range 100 {
		b.WriteString("m" + strconv.Itoa(i) + "=1 ")
	}
	b.WriteString("m7=2 m99=3 m100=4")
	ms, notes = ParsePerfdata(b.String())
	if len(ms) != 101 || len(notes) != 2 {
		t.Errorf("100 metrics with duplicates: %d metrics, notes %q", len(ms), notes)
	}
}

// checkInvariants holds for any input: no panic (the caller survived),
// clean text, and every metric valid and stable under a format/parse
// round trip.
func checkInvariants(t *testing.T, in []byte, o Output) {
	t.Helper()
	if strings.Contains(o.Text, "\n") {
		t.Fatalf("text has a newline: %q", o.Text)
	}
	for _, s := range append([]string{o.Text, o.LongOutput}, o.Notes...) {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("not clean UTF-8: %q", s)
		}
	}
	blank := strings.TrimFunc(string(in), func(r rune) bool { return unicode.IsSpace(r) || r == '|' }) == ""
	if !blank && o.Text == "" && o.LongOutput == "" && len(o.Metrics) == 0 && len(o.Notes) == 0 {
		t.Fatalf("input %q vanished without a note", in)
	}
	seen := map[string]bool{}
	for _, m := range o.Metrics {
		checkMetric(t, m)
		if seen[m.Name] {
			t.Fatalf("duplicate metric %q", m.Name)
		}
		seen[m.Name] = true
	}
	if len(o.Metrics) == 0 {
		return
	}
	again, notes := ParsePerfdata(formatPerfdata(o.Metrics))
	if len(notes) > 0 || string(mustJSON(t, again)) != string(mustJSON(t, o.Metrics)) {
		t.Fatalf("round trip of %s:\n got %s\nnotes %q", formatPerfdata(o.Metrics), mustJSON(t, again), notes)
	}
}

func checkMetric(t *testing.T, m model.Metric) {
	t.Helper()
	if strings.TrimSpace(m.Name) == "" || !utf8.ValidString(m.Name) {
		t.Fatalf("bad metric name %q", m.Name)
	}
	if f, ok := m.Value.Float(); !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		t.Fatalf("%s: value %v not a finite number", m.Name, m.Value)
	}
	if m.Value.Kind() == model.KindUint && m.Unit != "c" {
		t.Fatalf("%s: uint value without unit c", m.Name)
	}
	for _, r := range []string{m.Warn, m.Crit} {
		if _, err := threshold.Parse(r); err != nil {
			t.Fatalf("%s: invalid range %q kept: %v", m.Name, r, err)
		}
	}
	for _, p := range []*float64{m.Min, m.Max} {
		if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0)) {
			t.Fatalf("%s: min/max %v", m.Name, *p)
		}
	}
}

func mustJSON(t testing.TB, ms []model.Metric) []byte {
	b, err := json.Marshal(metricsJSON(t, ms))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// formatPerfdata writes metrics back as perfdata, quoting labels as the
// plugin guidelines say; floats always carry a '.' or exponent so that
// they parse back as floats.
func formatPerfdata(ms []model.Metric) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(' ')
		}
		if strings.ContainsAny(m.Name, " \t\n\r\v\f='") {
			b.WriteString("'" + strings.ReplaceAll(m.Name, "'", "''") + "'")
		} else {
			b.WriteString(m.Name)
		}
		b.WriteByte('=')
		switch m.Value.Kind() {
		case model.KindFloat:
			f, _ := m.Value.Float()
			s := strconv.FormatFloat(f, 'g', -1, 64)
			if !strings.ContainsAny(s, ".e") {
				s += ".0"
			}
			b.WriteString(s)
		default:
			b.WriteString(m.Value.String())
		}
		b.WriteString(m.Unit + ";" + m.Warn + ";" + m.Crit + ";")
		for j, p := range []*float64{m.Min, m.Max} {
			if j > 0 {
				b.WriteByte(';')
			}
			if p != nil {
				b.WriteString(strconv.FormatFloat(*p, 'g', -1, 64))
			}
		}
	}
	return b.String()
}

func FuzzParseOutput(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(perfdataDir, "*.txt"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkInvariants(t, b, ParseOutput(b))
	})
}

func FuzzParsePerfdata(f *testing.F) {
	for _, s := range []string{"a=1;2;3;4;5", "'x y'=1,5%;@1:2;~:3", "a=U", "''''=1c", "'a=b'=2c 'c'", "x=1e5;;;-1,5;",
		"big=18446744073709551616c", "a=1 a=2", "t=5°C;10:;@-1:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, notes := ParsePerfdata(s)
		checkInvariants(t, []byte("x|"+s), Output{Text: "x", Metrics: ms, Notes: notes})
		if strings.TrimSpace(s) == "" && (len(ms) > 0 || len(notes) > 0) {
			t.Fatal("blank input produced output")
		}
		if strings.TrimSpace(s) != "" && len(ms) == 0 && len(notes) == 0 {
			t.Fatalf("%q: neither metrics nor notes", s)
		}
	})
}

// BenchmarkParseOutput measures a typical multi-metric output (check_disk
// with five file systems and a long output).
func BenchmarkParseOutput(b *testing.B) {
	data := []byte("DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968 /boot=68MB;88;93;0;98 /home=69357MB;253404;253409;0;253414 /var/log=818MB;970;975;0;980 'C:\\ Used'=1.5GB;2;3;0;4\n" +
		"/ 15272 MB (77%);\n/boot 68 MB (69%);\n")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if o := ParseOutput(data); len(o.Metrics) != 5 {
			b.Fatal(o)
		}
	}
	b.ReportMetric(float64(b.N*5)/b.Elapsed().Seconds(), "metrics/s")
}
