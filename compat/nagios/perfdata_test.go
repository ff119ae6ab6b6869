package nagios

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reconmon/recon/agent/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/perfdata")

// golden is the JSON form of an Output for golden files.
type golden struct {
	Text       string            `json:"text"`
	LongOutput string            `json:"long_output"`
	Metrics    []json.RawMessage `json:"metrics"`
	Notes      []string          `json:"notes"`
}

func toGolden(o Output) golden {
	g := golden{Text: o.Text, LongOutput: o.LongOutput, Notes: o.Notes}
	for _, m := range o.Metrics {
		r := model.Result{Metrics: []model.Metric{m}}
		var w struct {
			Metrics []json.RawMessage `json:"metrics"`
		}
		json.Unmarshal(r.AppendJSON(nil), &w)
		g.Metrics = append(g.Metrics, w.Metrics[0])
	}
	return g
}

func TestGoldenPerfdata(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "perfdata")
	inputs, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	if len(inputs) < 10 {
		t.Fatalf("only %d golden inputs", len(inputs))
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.MarshalIndent(toGolden(ParseOutput(data)), "", "  ")
			want := strings.TrimSuffix(in, ".txt") + ".json"
			if *update {
				os.WriteFile(want, append(got, '\n'), 0o644)
				return
			}
			exp, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if strings.TrimSpace(string(exp)) != strings.TrimSpace(string(got)) {
				t.Errorf("output differs from %s:\n%s", want, got)
			}
		})
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
		{"neg=-4", model.Metric{Name: "neg", Value: model.Int(-4)}},
		{"e=1.5e3", model.Metric{Name: "e", Value: model.Float(1500)}},
		{"r=1;@10:20;~:30", model.Metric{Name: "r", Value: model.Int(1), Warn: "@10:20", Crit: "~:30"}},
		{"pct=50%;80;90", model.Metric{Name: "pct", Value: model.Int(50), Unit: "%", Warn: "80", Crit: "90"}},
		{"emptymin=1;;;;5", model.Metric{Name: "emptymin", Value: model.Int(1), Max: f(5)}},
	}
	for _, c := range cases {
		ms, notes := ParsePerfdata(c.in)
		if len(notes) > 0 || len(ms) != 1 {
			t.Errorf("%q: metrics %v notes %v", c.in, ms, notes)
			continue
		}
		if g, w := string((&model.Result{Metrics: ms}).AppendJSON(nil)), string((&model.Result{Metrics: []model.Metric{c.want}}).AppendJSON(nil)); g != w {
			t.Errorf("%q:\n got %s\nwant %s", c.in, g, w)
		}
	}
}

func TestParsePerfdataBad(t *testing.T) {
	cases := map[string]string{
		"abc":           "missing '='",
		"a=":            "missing value",
		"a=U":           "U (undetermined)",
		"a=xyz":         "invalid value",
		"'a=1":          "unterminated quoted label",
		"''=1":          "empty label",
		"=1":            "empty label",
		"a=1;;;;;":      "at most 5",
		"a=1;10:5":      "start 10 is greater than end 5",
		"a=1;1;2;x":     "min: invalid number",
		"a=1;1;2;0;NaN": "max: invalid number",
		"'x'y=1":        "missing '=' after label",
		"a=--1":         "invalid value",
	}
	for in, want := range cases {
		ms, notes := ParsePerfdata(in)
		if len(ms) != 0 || len(notes) != 1 || !strings.Contains(notes[0], want) {
			t.Errorf("%q: metrics %v notes %q, want one note containing %q", in, ms, notes, want)
		}
	}
	// Good items around a bad one survive.
	ms, notes := ParsePerfdata("a=1 bad b=2")
	if len(ms) != 2 || len(notes) != 1 {
		t.Errorf("mixed: %v %v", ms, notes)
	}
}

func FuzzParseOutput(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "perfdata", "*.txt"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o := ParseOutput(b)
		if strings.Contains(o.Text, "\n") {
			t.Fatalf("text has a newline: %q", o.Text)
		}
		for _, m := range o.Metrics {
			if m.Name == "" {
				t.Fatal("metric without name")
			}
		}
	})
}

func FuzzParsePerfdata(f *testing.F) {
	for _, s := range []string{"a=1;2;3;4;5", "'x y'=1,5%;@1:2;~:3", "a=U", "''''=1c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, notes := ParsePerfdata(s)
		for _, m := range ms {
			if m.Name == "" {
				t.Fatal("metric without name")
			}
			if f, ok := m.Value.Float(); ok && f != f {
				t.Fatal("NaN value accepted")
			}
		}
		if strings.TrimSpace(s) == "" && (len(ms) > 0 || len(notes) > 0) {
			t.Fatal("blank input produced output")
		}
	})
}

func BenchmarkParseOutput(b *testing.B) {
	data := []byte("DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968 /boot=68MB;88;93;0;98 /home=69357MB;253404;253409;0;253414 /var/log=818MB;970;975;0;980 'C:\\ Used'=1.5GB;2;3;0;4\n")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		ParseOutput(data)
	}
	b.ReportMetric(float64(b.N*5)/b.Elapsed().Seconds(), "metrics/s")
}
