package alerter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
)

// BenchmarkRuleEvaluations: 1,000 rules over 10,000 series (1,000 checks ×
// 10 metrics; each metric is watched by 100 rules with a 5-sample window).
func BenchmarkRuleEvaluations(b *testing.B) {
	var src strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&src, "rule { name = \"r%d\", metric = \"m%d\", samples = 5, flap_detection = false, condition = function(w) return w:avg() > %d end }\n", i, i%10, 1000000+i)
	}
	p := filepath.Join(b.TempDir(), "rules.lua")
	os.WriteFile(p, []byte(src.String()), 0o644)
	L, rules, err := LoadRules([]string{p})
	if err != nil {
		b.Fatal(err)
	}
	defer L.Close()
	sil, _ := LoadSilences("")
	e := NewEngine(L, rules, nil, sil, nil)
	results := make([]model.Result, 1000)
	for c := range results {
		r := model.Result{CheckID: model.CheckID("a", fmt.Sprint("check", c)), Check: fmt.Sprint("check", c), Status: model.OK, StateType: model.Hard}
		for m := 0; m < 10; m++ {
			r.Metrics = append(r.Metrics, model.Metric{Name: fmt.Sprint("m", m), Value: model.Float(float64(m))})
		}
		results[c] = r
	}
	ctx := context.Background()
	start := e.evals
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &results[i%len(results)]
		r.Time = t0.Add(time.Duration(i) * time.Millisecond)
		e.Process(ctx, r)
		e.Drain()
	}
	b.ReportMetric(float64(e.evals-start)/b.Elapsed().Seconds(), "evals/s")
	b.ReportMetric(float64(len(e.instances)), "series×rules")
}
