package lua

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios/threshold"
)

// A Lua metric with warn/crit and no status gets exactly the state
// threshold.Evaluate gives, the function behind the Nagios runner.
func TestThresholdsMatchNagios(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	r := prepareSrc(t, typ, `
local c = ctx.config
local m = { value = c.value }
if c.warn ~= "" then m.warn = c.warn end
if c.crit ~= "" then m.crit = c.crit end
return { metrics = { m = m } }`)
	ranges := []string{"", "10", "10:", "~:10", "10:20", "@10:20", "@~:5", "0", "-5:-1", "1.5:2.5", "@0:0", "5,5"}
	values := []float64{-10, -1, 0, 1.5, 2.5, 5, 9.99, 10, 15, 20, 20.01, 25}
	n := 0
	for _, w := range ranges {
		for _, c := range ranges {
			wr, crr := threshold.MustParse(w), threshold.MustParse(c)
			for _, v := range values {
				want := threshold.Evaluate(v, wr, crr)
				res := runWithConfig(t, typ, r, map[string]any{"value": v, "warn": w, "crit": c})
				n++
				if res.Status != want {
					t.Fatalf("value %v warn %q crit %q: lua %v, threshold.Evaluate %v (%q)", v, w, c, res.Status, want, res.Output)
				}
				m := metric(t, res, "m")
				if m.Warn != strings.TrimSpace(w) || m.Crit != strings.TrimSpace(c) {
					t.Fatalf("ranges not kept: %+v", m)
				}
				if want != model.OK {
					label := map[model.Status]string{model.Warning: "warn", model.Critical: "crit"}[want]
					if !strings.HasPrefix(res.Output, want.String()+": m=") || !strings.Contains(res.Output, "("+label+" ") {
						t.Fatalf("output %q for %v", res.Output, want)
					}
				}
			}
		}
	}
	t.Logf("%d combinations agree with threshold.Evaluate", n)
}

// runWithConfig prepares r's script again with a config (cheap: the
// compiled script is shared) and runs it once.
func runWithConfig(t *testing.T, typ *Type, r any, cfg map[string]any) model.Result {
	t.Helper()
	rr := r.(*runner)
	c := &model.Check{Name: "t", Timeout: time.Second, Settings: &Settings{Script: rr.s.name, Config: cfg}}
	nr, err := typ.Prepare(c)
	if err != nil {
		t.Fatal(err)
	}
	return runWith(nr, 5*time.Second, nil)
}

// An explicit status wins over thresholds; without thresholds and status,
// the result is OK.
func TestStatusPrecedence(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	res := runSrc(t, typ, `return { status = "OK", metrics = { x = { value = 100, crit = "10" } } }`)
	wantStatus(t, res, model.OK)
	res = runSrc(t, typ, `return { metrics = { x = 1, y = "text" } }`)
	wantStatus(t, res, model.OK)
	if res.Output != "OK" {
		t.Fatalf("output %q", res.Output)
	}
	res = runSrc(t, typ, `return { output = "custom", metrics = { a = { value = 11, warn = 10 }, b = { value = 50, warn = 10, crit = 40 } } }`)
	wantStatus(t, res, model.Critical)
	if res.Output != "custom" {
		t.Fatalf("output %q", res.Output)
	}
	res = runSrc(t, typ, `return { metrics = { a = { value = 11, warn = 10, unit = "ms" }, b = { value = 50, warn = 10, crit = 40 } } }`)
	if res.Output != "CRITICAL: a=11ms (warn 10), b=50 (crit 40)" {
		t.Fatalf("output %q", res.Output)
	}
}

func TestCapOutput(t *testing.T) {
	for _, c := range []struct {
		in  string
		max int
	}{{strings.Repeat("a", 100), 100}, {strings.Repeat("a", 1000), 100}, {strings.Repeat("é", 500), 101}, {"short", 10}} {
		out := capOutput(c.in, c.max)
		if len(c.in) <= c.max {
			if out != c.in {
				t.Errorf("%q changed", c.in)
			}
			continue
		}
		if len(out) > c.max || !strings.Contains(out, "bytes truncated") || !strings.HasPrefix(c.in, strings.Split(out, " …")[0]) {
			t.Errorf("cap %d of %d bytes: %d bytes %q", c.max, len(c.in), len(out), out)
		}
		if !strconvValid(out) {
			t.Errorf("invalid UTF-8: %q", out)
		}
	}
}

func strconvValid(s string) bool { return utf8.ValidString(s) }
