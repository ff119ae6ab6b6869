package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/sinks/sqlite"
)

// TestRulesBacktest: history in the SQLite store, replayed through the
// configuration's rules by `recon rules test`.
func TestRulesBacktest(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	st, err := sqlite.Open(context.Background(), filepath.Join(data, "recon.db"))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var rs []model.Result
	temps := []float64{20, 21, 80, 85, 90, 88, 30, 25, 22, 21}
	for i, v := range temps {
		rs = append(rs, model.Result{CheckID: model.CheckID("a", "sensor"), Check: "sensor", Agent: "a", Time: base.Add(time.Duration(i) * time.Minute),
			Status: model.OK, StateType: model.Hard, Metrics: []model.Metric{{Name: "temp", Value: model.Float(v)}}})
	}
	// A check that goes HARD CRITICAL and recovers (the built-in rule).
	for i, s := range []model.Status{model.OK, model.Critical, model.Critical, model.OK} {
		rs = append(rs, model.Result{CheckID: model.CheckID("a", "web"), Check: "web", Agent: "a", Time: base.Add(time.Duration(i)*time.Minute + 30*time.Second),
			Status: s, StateType: model.Hard, Output: "web " + s.String()})
	}
	if err := st.WriteBatch(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	st.Close()
	os.WriteFile(filepath.Join(dir, "rules.lua"), []byte(`
rule { name = "too_hot", metric = "temp", condition = function(w) return w:last() > 50 end, ["for"] = "90s", severity = "critical" }
`), 0o644)
	cfg := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
name = "a"
data_dir = %q
[[sink]]
type = "sqlite"
[[sink]]
type = "alerter"
rules = ["rules.lua"]
[[sink.notifier]]
name = "log"
type = "log"
`, data)), 0o644)
	out, errOut, code := runCLI(t, nil, "rules", "test", "-c", cfg, "--from", "2026-03-01T00:00:00Z", "--to", "2026-03-01T01:00:00Z")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"replayed 14 results",
		"2026-03-01T00:02:00Z  inactive -> pending  too_hot",
		"2026-03-01T00:03:30Z  pending  -> firing   too_hot", // 90s after it went pending

		"2026-03-01T00:06:00Z  firing   -> resolved too_hot",
		"NOTIFY PROBLEM       too_hot: sensor temp = 85",
		"NOTIFY RECOVERY      too_hot: sensor temp = 30",
		"2026-03-01T00:01:30Z  inactive -> firing   nagios-default",
		"NOTIFY PROBLEM       web is CRITICAL: web CRITICAL",
		"NOTIFY RECOVERY      web is OK: web OK",
		"5 transitions, 4 notifications",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("backtest output lacks %q:\n%s", want, out)
		}
	}
	_, errOut, code = runCLI(t, nil, "rules", "test", "-c", cfg, "--from", "yesterday")
	if code != exitUsage || !strings.Contains(errOut, "--from") {
		t.Errorf("bad --from: %d %s", code, errOut)
	}
}
