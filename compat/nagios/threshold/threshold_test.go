package threshold

import (
	"math"
	"testing"

	"github.com/reconmon/recon/agent/model"
)

func TestAlert(t *testing.T) {
	cases := []struct {
		rng   string
		value float64
		alert bool
	}{
		{"10", -1, true}, {"10", 0, false}, {"10", 10, false}, {"10", 10.1, true},
		{"10:", 9.9, true}, {"10:", 10, false}, {"10:", 1e300, false},
		{"~:10", -1e300, false}, {"~:10", 10, false}, {"~:10", 11, true},
		{"10:20", 9, true}, {"10:20", 10, false}, {"10:20", 20, false}, {"10:20", 21, true},
		{"@10:20", 9, false}, {"@10:20", 10, true}, {"@10:20", 15, true}, {"@10:20", 20, true}, {"@10:20", 21, false},
		{"@10", 5, true}, {"@10", 11, false},
		{"0,5", 0.6, true}, {"0,5", 0.4, false},
		{"-5:-1", -3, false}, {"-5:-1", 0, true},
		{":5", 3, false}, {":5", -1, true},
		{"", 1e9, false},
		{"10", math.NaN(), true},
	}
	for _, c := range cases {
		r, err := Parse(c.rng)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.rng, err)
		}
		if got := r.Alert(c.value); got != c.alert {
			t.Errorf("Parse(%q).Alert(%v) = %v, want %v", c.rng, c.value, got, c.alert)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{"abc", "10:5", "1:2:3", "@", "~", "10:x", "x:10", "NaN", "1e"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) succeeded, want error", s)
		}
	}
}

func TestEvaluate(t *testing.T) {
	w, c := MustParse("5"), MustParse("10")
	for v, want := range map[float64]model.Status{1: model.OK, 6: model.Warning, 11: model.Critical} {
		if got := Evaluate(v, w, c); got != want {
			t.Errorf("Evaluate(%v) = %v, want %v", v, got, want)
		}
	}
	if got := Evaluate(100, Range{}, Range{}); got != model.OK {
		t.Errorf("unset ranges: got %v", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"10", "10:", "~:10", "10:20", "@10:20", "0,5", "", "@~:-1e308"} {
		f.Add(s, 1.5)
	}
	f.Fuzz(func(t *testing.T, s string, v float64) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.IsSet() && r.Start > r.End {
			t.Fatalf("Parse(%q) gave start > end", s)
		}
		_ = r.Alert(v)
		// Re-parsing the canonical text must give the same range.
		r2, err := Parse(r.String())
		if err != nil || r2.Start != r.Start || r2.End != r.End || r2.Inside != r.Inside {
			t.Fatalf("reparse of %q: %v %+v vs %+v", s, err, r2, r)
		}
	})
}
