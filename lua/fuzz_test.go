package lua

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

// fuzzType is a Type with small limits so that arbitrary scripts end
// quickly.
func fuzzType() *Type {
	return New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxStringSize: 1 << 16, MaxIdle: 2,
		MaxInstructions: 200_000, HTTPMaxBody: 1 << 12})
}

func seedFiles(f *testing.F, pattern string) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "lua", pattern))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds %s: %v", pattern, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
}

// checkSane fails on what must never happen whatever the script: a panic
// reaching Run's recover, an invalid status, unsorted or unnamed metrics.
func checkSane(t *testing.T, res model.Result) {
	t.Helper()
	if strings.HasPrefix(res.Output, "lua: internal error") {
		t.Fatalf("Go side panicked: %s\n%s", res.Output, res.LongOutput)
	}
	if !res.Status.Valid() {
		t.Fatalf("invalid status %d", res.Status)
	}
	for i, m := range res.Metrics {
		if m.Name == "" || (i > 0 && res.Metrics[i-1].Name >= m.Name) {
			t.Fatalf("bad metrics %+v", res.Metrics)
		}
	}
}

// FuzzScript runs arbitrary source text under a short timeout and a small
// instruction budget: compiling or running it must never panic the Go
// side, and every failure is an UNKNOWN result.
func FuzzScript(f *testing.F) {
	seedFiles(f, "scripts/*.lua")
	for _, s := range []string{"", "return", "while true do end", "return {status=", "(((((((((", "\x1bLua",
		`return setmetatable({}, {__index = function(t, k) return t[k] end}).x`, `string.rep("x", 1e9)`,
		`local t = {} for i = 1, 1e6 do t[i] = {} end`, `return {metrics = {[1.5] = 1}}`, "#!shebang\nreturn {status=0}"} {
		f.Add(s)
	}
	typ := fuzzType()
	defer typ.Close()
	prev := &model.Result{Status: model.Warning, Output: "prev", Metrics: []model.Metric{{Name: "n", Value: model.Int(1)}}}
	f.Fuzz(func(t *testing.T, src string) {
		sc, err := typ.scripts.compile("fuzz.lua", src, os.DirFS(t.TempDir()), ".")
		if err != nil {
			return
		}
		r := &runner{t: typ, s: sc, name: "fuzz", target: "127.0.0.1", timeout: 100 * time.Millisecond,
			maxInstr: typ.opts.MaxInstructions, config: map[string]any{"k": "v"}}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		checkSane(t, r.Run(ctx, prev))
		// Run must return by its deadline; the bound is loose for slow CI.
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("ran %v with a 100ms timeout", d)
		}
	})
}

// FuzzResult feeds arbitrary JSON, decoded into Lua tables, to the result
// conversion: any shape must give a valid result or an UNKNOWN naming the
// mistake.
func FuzzResult(f *testing.F) {
	seedFiles(f, "results/*.json")
	typ := fuzzType()
	defer typ.Close()
	sc, err := typ.scripts.compile("result.lua", `return (json.decode(ctx.config.doc)) or {status = "OK", output = "not json"}`, nil, ".")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		r := &runner{t: typ, s: sc, name: "fuzz", timeout: time.Second, maxInstr: typ.opts.MaxInstructions,
			config: map[string]any{"doc": doc}}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res := r.Run(ctx, nil)
		checkSane(t, res)
		if res.Status == model.Unknown && res.Output == "" {
			t.Fatalf("UNKNOWN without a reason for %q", doc)
		}
	})
}

// Bad result documents each give an UNKNOWN with a specific reason.
func TestResultSeeds(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	for file, want := range map[string]string{
		"ok.json": "", "thresholds.json": "", "bad_status.json": `invalid status "MAYBE"`,
		"weird.json": `unknown key "extra"`, "kinds.json": "value 1e+20 is not a 64-bit integer",
	} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "lua", "results", file))
		if err != nil {
			t.Fatal(err)
		}
		res := runSrc(t, typ, `return (json.decode(ctx.config.doc))`, withConfig(map[string]any{"doc": string(b)}))
		if want == "" {
			if res.Status == model.Unknown {
				t.Errorf("%s: %q", file, res.Output)
			}
			continue
		}
		wantStatus(t, res, model.Unknown, want)
	}
	res := runSrc(t, typ, `return (json.decode(ctx.config.doc))`, withConfig(map[string]any{"doc": `{"metrics":{"load":{"value":7,"warn":"5","crit":"10"},"free":{"value":3,"warn":"@0:5"}}}`}))
	wantStatus(t, res, model.Warning)
	if res.Output != "WARNING: free=3 (warn @0:5), load=7 (warn 5)" {
		t.Fatalf("output %q", res.Output)
	}
}

// The seed scripts all run to a sane result (most OK).
func TestSeedScripts(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "lua", "scripts", "*.lua"))
	for _, p := range files {
		r := prepareFile(t, typ, p)
		res := runWith(r, 5*time.Second, nil)
		checkSane(t, res)
		want := model.OK
		if strings.HasSuffix(p, "error.lua") {
			want = model.Unknown
		}
		if res.Status != want {
			t.Errorf("%s: %v %q %s", p, res.Status, res.Output, res.LongOutput)
		}
	}
}
