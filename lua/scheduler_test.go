package lua

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/agent/scheduler"
)

// Through the real scheduler: a Lua check spinning in `while true do end`
// is stopped at its 1s timeout while 20 other Lua checks keep running on
// their 100ms period; a reload (Prepare again, Update) picks up a changed
// script.
func TestSchedulerKeepsRunningAndReloads(t *testing.T) {
	typ, _ := newTestType(t, Options{})
	loopPath := writeScript(t, "loop.lua", `while true do end`)
	quickPath := writeScript(t, "quick.lua", `return {status = "OK", output = "v1"}`)

	var mu sync.Mutex
	results := map[string][]model.Result{}
	s := scheduler.New(scheduler.Options{Emit: func(_ context.Context, r model.Result) error {
		mu.Lock()
		results[r.Check] = append(results[r.Check], r)
		mu.Unlock()
		return nil
	}})
	jobs := func() []scheduler.Job {
		var js []scheduler.Job
		add := func(name, path string, period, timeout time.Duration) {
			c := &model.Check{ID: model.CheckID("", name), Name: name, Type: "lua", Period: period, Timeout: timeout,
				MaxAttempts: 1, RetryPeriod: period, Settings: &Settings{Script: path}}
			r, err := typ.Prepare(c)
			if err != nil {
				t.Fatal(err)
			}
			js = append(js, scheduler.Job{Check: c, Runner: r})
		}
		add("loop", loopPath, 5*time.Second, time.Second)
		for i := 0; i < 20; i++ {
			add(fmt.Sprintf("quick-%d", i), quickPath, 100*time.Millisecond, 100*time.Millisecond)
		}
		return js
	}
	s.Update(jobs())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx, 5*time.Second) }()

	// Wait until the loop has been stopped by its timeout.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(results["loop"])
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	if len(results["loop"]) != 1 {
		mu.Unlock()
		t.Fatalf("loop results: %d", len(results["loop"]))
	}
	loop := results["loop"][0]
	during := 0
	for i := 0; i < 20; i++ {
		for _, r := range results[fmt.Sprintf("quick-%d", i)] {
			if !r.Time.Before(loop.Time) && r.Time.Before(loop.Time.Add(loop.Duration)) && r.Status == model.OK {
				during++
			}
		}
	}
	mu.Unlock()
	wantStatus(t, loop, model.Unknown, "timed out after 1s")
	if loop.Duration > 1500*time.Millisecond {
		t.Errorf("loop ran %v", loop.Duration)
	}
	// 20 checks every 100ms for ~1s: about 200 runs; require a good share.
	if during < 100 {
		t.Errorf("only %d other Lua results while the loop ran", during)
	}

	// Reload with a changed script.
	if err := os.WriteFile(quickPath, []byte(`return {status = "WARNING", output = "v2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Update(jobs())
	reloaded := time.Now()
	time.Sleep(500 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < 20; i++ {
		rs := results[fmt.Sprintf("quick-%d", i)]
		last := rs[len(rs)-1]
		if last.Output != "v2" || last.Status != model.Warning || last.Time.Before(reloaded) {
			t.Fatalf("quick-%d after reload: %+v", i, last)
		}
		for _, r := range rs {
			if r.Status == model.Unknown && !strings.Contains(r.Output, "timed out") {
				t.Fatalf("quick-%d: %+v", i, r)
			}
		}
	}
	t.Logf("%d other results while the loop ran for %v", during, loop.Duration)
}
