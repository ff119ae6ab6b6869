package ui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/reconmon/recon/internal/testutil"
)

// -update-screenshots rewrites the golden screenshots in testdata/ui.
var updateScreenshots = flag.Bool("update-screenshots", false, "rewrite the golden screenshots in testdata/ui")

const (
	moduleRoot = "../../.."
	shotsDir   = moduleRoot + "/testdata/ui"
	plugins    = "/usr/lib/nagios/plugins"
)

// agent is a running `recon agent` built from ./cmd/recon.
type agent struct {
	base string // http://127.0.0.1:port
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// reconBinary builds the real agent once per test run. RECON_BINARY, when
// set, names a binary to test instead.
func reconBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RECON_BINARY"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "recon-uitest")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "recon")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/recon")
		cmd.Dir = moduleRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/recon: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// startAgent runs the agent on cfg (which must listen on 127.0.0.1:0) and
// returns once its API answers.
func startAgent(t *testing.T, cfg string) *agent {
	t.Helper()
	cmd := exec.Command(reconBinary(t), "agent", "-c", cfg, "--log-format", "json")
	cmd.Dir = filepath.Dir(cfg)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			a.mu.Lock()
			a.log.Write(line)
			a.log.WriteByte('\n')
			a.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "API listening" {
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
		cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-a.done
		if t.Failed() {
			a.mu.Lock()
			t.Logf("agent log:\n%s", a.log.String())
			a.mu.Unlock()
		}
	})
	select {
	case ad := <-addr:
		a.base = "http://" + ad
	case <-a.done:
		t.Fatal("the agent exited before listening")
	case <-time.After(60 * time.Second):
		t.Fatal("the agent did not listen within 60s")
	}
	// The binary must embed the UI (cmd/recon/wire.go: w.ui = ui.Handler()).
	res, err := http.Get(a.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Contains(page, []byte(`content="recon-ui"`)) {
		t.Fatalf("the agent does not serve the embedded UI at / (cmd/recon/wire.go must set w.ui = ui.Handler()); it answered %d: %.200s", res.StatusCode, page)
	}
	return a
}

// getJSON calls the agent's API.
func (a *agent) getJSON(t *testing.T, path, token string, v any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", a.base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if v != nil && res.StatusCode == 200 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v: %.300s", path, err, b)
		}
	}
	return res.StatusCode
}

// metric reads one unlabelled sample of the agent's /metrics.
func (a *agent) metric(t *testing.T, name string) float64 {
	t.Helper()
	res, err := http.Get(a.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

func waitFor(t *testing.T, what string, within time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// browser is one headless Chromium tab on the UI of an agent.
type browser struct {
	t        *testing.T // the running (sub)test
	root     *testing.T // the test that owns the browser
	ctx      context.Context
	base     string
	mu       sync.Mutex
	requests []string
	errors   []string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	exe := testutil.RequireBinary(t, "chromium")
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() {
		cancelT()
		cancelC()
		cancelA()
	})
	b := &browser{t: t, root: t, ctx: ctx, base: base}
	if err := chromedp.Do(ctx); err != nil { // start the browser and the tab
		t.Fatalf("start chromium: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.mu.Lock()
			b.requests = append(b.requests, e.Request.URL)
			b.mu.Unlock()
		case *cdplog.EventEntryAdded:
			// CSP violations and script errors; failed requests (a 401
			// or 503 the UI handles) are source "network" and expected.
			if e.Entry.Source == cdplog.EntrySourceSecurity || (e.Entry.Source == cdplog.EntrySourceJavascript && e.Entry.Level == cdplog.EntryLevelError) {
				b.mu.Lock()
				b.errors = append(b.errors, string(e.Entry.Source)+": "+e.Entry.Text)
				b.mu.Unlock()
			}
		case *runtime.EventExceptionThrown:
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.mu.Lock()
			b.errors = append(b.errors, msg)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.EmulateViewport(1280, 800))
	t.Cleanup(b.checkClean)
	return b
}

// checkClean: no uncaught exception, no CSP violation, no request
// outside the agent.
func (b *browser) checkClean() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		b.root.Errorf("error in the page: %s", e)
	}
	for _, u := range b.requests {
		if !strings.HasPrefix(u, b.base+"/") && !strings.HasPrefix(u, "data:") {
			b.root.Errorf("the page requested %s: everything must come from the agent", u)
		}
	}
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.fail("%v", err)
	}
}

func (b *browser) open(fragment string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base + "/" + fragment))
}

// js evaluates an expression and decodes its value into T.
func js[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript condition.
func (b *browser) wait(what, cond string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.fail("timed out after %v waiting for %s (%s); last error: %v", within, what, cond, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fail reports the page state with the failure: what the charts hold and
// the text on screen, and saves a screenshot to look at.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	state, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.hash + "\ncharts: " + JSON.stringify(window.recon ? window.recon.charts() : null) + "\n" + document.body.innerText.slice(0, 3000)`))
	if png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot()); err == nil {
		p := filepath.Join(os.TempDir(), "recon-uitest-failure.png")
		os.WriteFile(p, png, 0o644)
		b.t.Logf("screenshot of the failure: %s", p)
	}
	b.mu.Lock()
	reqs := b.requests[max(0, len(b.requests)-12):]
	b.mu.Unlock()
	b.t.Fatalf(format+"\npage state: %s\nlast requests:\n%s", append(args, state, strings.Join(reqs, "\n"))...)
}

// shot takes a 1280×800 screenshot. With -update-screenshots it becomes
// the golden file in testdata/ui; otherwise it is compared loosely with
// the golden one (same size, similar layout), never pixel by pixel: the
// data and the clock differ from run to run.
func (b *browser) shot(name string) {
	b.t.Helper()
	// Let the charts finish drawing.
	time.Sleep(300 * time.Millisecond)
	buf, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.fail("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if sz := img.Bounds().Size(); sz.X != 1280 || sz.Y != 800 {
		b.t.Fatalf("screenshot %s is %v, want 1280x800", name, sz)
	}
	if blank(img) {
		b.fail("screenshot %s is blank", name)
	}
	golden := filepath.Join(shotsDir, name+".png")
	if *updateScreenshots {
		if err := os.MkdirAll(shotsDir, 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(golden, buf, 0o644); err != nil {
			b.t.Fatal(err)
		}
		return
	}
	f, err := os.Open(golden)
	if err != nil {
		b.t.Errorf("no golden screenshot %s: run the test with -update-screenshots and look at it", golden)
		return
	}
	defer f.Close()
	want, err := png.Decode(f)
	if err != nil {
		b.t.Fatalf("golden %s: %v", golden, err)
	}
	if d := layoutDistance(img, want); d > maxLayoutDistance {
		p := filepath.Join(os.TempDir(), "recon-uitest-"+name+".png")
		os.WriteFile(p, buf, 0o644)
		b.t.Errorf("screenshot %s differs from the golden one in layout (distance %.3f > %.2f); saved as %s: look at both and update with -update-screenshots if the change is intended", name, d, maxLayoutDistance, p)
	} else {
		b.t.Logf("screenshot %s: layout distance %.3f from the golden one", name, d)
	}
}

// blank reports whether an image is a single colour.
func blank(img image.Image) bool {
	r := img.Bounds()
	first := img.At(r.Min.X, r.Min.Y)
	for y := r.Min.Y; y < r.Max.Y; y += 7 {
		for x := r.Min.X; x < r.Max.X; x += 7 {
			if img.At(x, y) != first {
				return false
			}
		}
	}
	return true
}

// maxLayoutDistance: runs of the same page measure below 0.005 apart (the
// data and the clock move), distinct pages 0.013 and more (a check page
// without its charts: 0.014; the overview under the token dialog: 0.34).
// 0.02 tolerates other fonts and catches a page that lost its layout; the
// charts' contents are asserted through window.recon.charts().
const maxLayoutDistance = 0.02

// layoutDistance compares two screenshots coarsely: the mean absolute
// difference of their luminance averaged over 40×25 cells, in [0, 1].
// Text and curves that move change it little; a page that lost its
// header, its table or its charts changes it a lot.
func layoutDistance(a, b image.Image) float64 {
	const cw, ch = 40, 25
	cells := func(img image.Image) []float64 {
		out := make([]float64, cw*ch)
		n := make([]int, cw*ch)
		r := img.Bounds()
		for y := r.Min.Y; y < r.Max.Y; y += 2 {
			for x := r.Min.X; x < r.Max.X; x += 2 {
				cr, cg, cb, _ := img.At(x, y).RGBA()
				l := (0.299*float64(cr) + 0.587*float64(cg) + 0.114*float64(cb)) / 65535
				i := (y-r.Min.Y)*ch/r.Dy()*cw + (x-r.Min.X)*cw/r.Dx()
				out[i] += l
				n[i]++
			}
		}
		for i := range out {
			if n[i] > 0 {
				out[i] /= float64(n[i])
			}
		}
		return out
	}
	ca, cb := cells(a), cells(b)
	var d float64
	for i := range ca {
		d += math.Abs(ca[i] - cb[i])
	}
	return d / float64(len(ca))
}

// dragLast drag-selects the last `seconds` of a chart's time axis (its
// data sits at the right edge: the agent started moments ago).
func dragLast(b *browser, chart string, c chartInfo, seconds float64) {
	b.t.Helper()
	if c.From == nil || c.To == nil {
		b.fail("chart %s has no x range", c.ID)
	}
	box := js[struct{ X, Y, W, H float64 }](b, `(() => { const r = document.querySelector(`+jsString(chart+" .u-over")+`).getBoundingClientRect(); return {X: r.x, Y: r.y, W: r.width, H: r.height}; })()`)
	x0 := box.X + box.W*((float64(time.Now().Unix())-seconds-*c.From)/(*c.To-*c.From))
	x1 := box.X + box.W + 30 // past the edge: uPlot clamps the selection to it
	b.do(chromedp.DragAndDropXY(x0, box.Y+box.H/2, x1, box.Y+box.H/2, 12))
}

// patience bounds each wait in the browser: generous, since CI runs other
// test packages on the same two cores.
const patience = 20 * time.Second

// chartInfo is what window.recon.charts() reports for a chart.
type chartInfo struct {
	ID         string   `json:"id"`
	Kind       string   `json:"kind"`
	Mode       string   `json:"mode"`
	Resolution string   `json:"resolution"`
	Series     []string `json:"series"`
	Points     int      `json:"points"`
	From       *float64 `json:"from"`
	To         *float64 `json:"to"`
}

func charts(b *browser) []chartInfo {
	b.t.Helper()
	return js[[]chartInfo](b, `window.recon.charts()`)
}

func chartOf(b *browser, id string) chartInfo {
	b.t.Helper()
	for _, c := range charts(b) {
		if c.ID == id {
			return c
		}
	}
	b.fail("no chart %s", id)
	return chartInfo{}
}

type checkView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Last *struct {
		Status string `json:"status"`
	} `json:"last"`
}

type seriesView struct {
	Resolution string            `json:"resolution"`
	Points     []json.RawMessage `json:"points"`
}

const wavePlugin = `#!/bin/sh
# A plugin whose values move: a 60 s sawtooth and a 120 s triangle.
s=$(date +%s)
saw=$((s % 60))
tri=$(( (s % 120) < 60 ? (s % 120) : 120 - (s % 120) ))
echo "OK - wave saw=$saw tri=$tri|saw=$saw;50;55;0;60 tri=${tri}ms;;;0;60"
`

// TestBrowser drives the UI of the real agent (with the real sqlite trend
// store and alerter) in headless Chromium: overview, check page with
// graphs of stored data, zoom, rollups, Live, overlay, alerts, silences.
func TestBrowser(t *testing.T) {
	testutil.RequireBinary(t, "chromium")
	testutil.RequireBinary(t, plugins+"/check_load")
	testutil.RequireBinary(t, plugins+"/check_dummy")
	dir := t.TempDir()
	wave := filepath.Join(dir, "wave.sh")
	if err := os.WriteFile(wave, []byte(wavePlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
name = "uitest"
listen = "127.0.0.1:0"
data_dir = %[1]q
[[check]]
name = "load"
type = "nagios"
command = "%[2]s/check_load -w 500,400,300 -c 1000,800,600" # always OK: the test must not depend on this machine's load
period = "1s"
[[check]]
name = "wave"
type = "nagios"
command = %[3]q
period = "1s"
[[check]]
name = "web-frontend"
type = "nagios"
command = "%[2]s/check_dummy 0 'HTTP OK: 200 in 0.012 s'"
period = "1s"
[[check]]
name = "disk-warning"
type = "nagios"
command = "%[2]s/check_dummy 1 'DISK WARNING: /var 91%% used'"
period = "1s"
[[check]]
name = "db-critical"
type = "nagios"
command = "%[2]s/check_dummy 2 'PGSQL CRITICAL: connection refused'"
period = "1s"
max_attempts = 1
[[sink]]
type = "sqlite"
[[sink]]
type = "alerter"
`, filepath.Join(dir, "data"), plugins, wave)), 0o644)
	a := startAgent(t, cfg)

	var list struct {
		Checks []checkView `json:"checks"`
	}
	ids := map[string]string{}
	waitFor(t, "every check to have a result", 20*time.Second, func() bool {
		a.getJSON(t, "/api/v1/checks", "", &list)
		n := 0
		for _, c := range list.Checks {
			ids[c.Name] = c.ID
			if c.Last != nil {
				n++
			}
		}
		return n == 5
	})
	// Some stored history to draw.
	waitFor(t, "8 stored points of wave/saw", 30*time.Second, func() bool {
		var s seriesView
		a.getJSON(t, "/api/v1/series?check=wave&metric=saw&from=-5m", "", &s)
		return len(s.Points) >= 8
	})

	b := newBrowser(t, a.base)

	t.Run("overview", func(t *testing.T) {
		b.t = t
		b.open("")
		b.wait("5 check rows", `document.querySelectorAll("#checks .row").length === 5`, patience)
		got := js[map[string]string](b, `Object.fromEntries([...document.querySelectorAll("#checks .row")].map(r => [r.dataset.name, r.querySelector(".badge").textContent]))`)
		want := map[string]string{"db-critical": "CRITICAL", "disk-warning": "WARNING", "load": "OK", "wave": "OK", "web-frontend": "OK"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("overview: %s shows %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
		order := js[[]string](b, `[...document.querySelectorAll("#checks .row")].sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top)).map(r => r.dataset.name)`)
		if len(order) != 5 || order[0] != "db-critical" || order[1] != "disk-warning" {
			t.Errorf("worst status first: %v", order)
		}
		out := js[string](b, `document.querySelector('#checks .row[data-name="db-critical"]').innerText`)
		if !strings.Contains(out, "PGSQL CRITICAL: connection refused") {
			t.Errorf("db-critical row does not show its last output: %q", out)
		}
		b.shot("overview")
		// The filter works on the list in the browser.
		b.do(chromedp.SendKeys(chromedp.ID("filter"), "wav"))
		b.wait("filter to 1 row", `document.querySelectorAll("#checks .row").length === 1 && document.querySelector("#checks .row").dataset.name === "wave"`, patience)
		if h := js[string](b, `location.hash`); !strings.Contains(h, "q=wav") {
			t.Errorf("the filter is not kept in the address: %s", h)
		}
	})

	waveSaw := ids["wave"] + "|saw"
	t.Run("check page graphs stored data", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click(chromedp.CSS(`#checks .row[data-name="wave"] a`)))
		b.wait("the wave page with two charts drawn", `window.recon.charts().filter(c => c.kind === "history" && c.points > 0).length === 2`, patience)
		// What is drawn is what the store holds for the same range.
		c := chartOf(b, waveSaw)
		if c.Mode != "history" || c.Resolution != "raw" {
			t.Errorf("1h range: mode %s resolution %s, want history/raw", c.Mode, c.Resolution)
		}
		from, to := int64(*c.From), int64(*c.To)
		var s seriesView
		a.getJSON(t, fmt.Sprintf("/api/v1/series?check=%s&metric=saw&from=%d&to=%d", ids["wave"], from, to+2), "", &s)
		if c.Points < 8 || c.Points > len(s.Points) || len(s.Points)-c.Points > 3 {
			t.Errorf("the chart draws %d points; the store has %d for its range", c.Points, len(s.Points))
		}
		if to-from < 3590 || to-from > 3610 {
			t.Errorf("1h range spans %ds", to-from)
		}
		meta := js[string](b, `document.querySelector('.chart[data-metric="saw"] .chart-meta').textContent`)
		if !strings.Contains(meta, "raw") || !strings.Contains(meta, "points") {
			t.Errorf("chart header does not show the resolution: %q", meta)
		}
		b.wait("status history", `document.querySelectorAll(".strip .seg.st-OK").length >= 1`, patience)
		b.shot("check")
		// Run now shows the result of the run it asked for.
		b.do(chromedp.Click(chromedp.ID("run-now")))
		b.wait("the run-now result", `document.querySelector(".last") && document.querySelector(".last").innerText.startsWith("Run now:") && document.querySelector(".last").innerText.includes("OK - wave")`, patience)
	})

	t.Run("zoom re-queries a finer range", func(t *testing.T) {
		b.t = t
		dragLast(b, `.chart[data-metric="saw"]`, chartOf(b, waveSaw), 120)
		b.wait("a zoomed range", `(() => { const c = window.recon.charts().find(c => c.id === `+jsString(waveSaw)+`); return c && c.to - c.from < 600 && c.points > 0; })()`, patience)
		after := chartOf(b, waveSaw)
		if after.Resolution != "raw" || after.Points < 5 {
			t.Errorf("zoomed: %+v", after)
		}
		h := js[string](b, `location.hash`)
		if !strings.Contains(h, "from=") || !strings.Contains(h, "to=") {
			t.Errorf("zoom not kept in the address: %s", h)
		}
		b.shot("check-zoomed")
		// Back returns to the previous range.
		b.do(chromedp.NavigateBack())
		b.wait("the 1h range again", `(() => { const c = window.recon.charts().find(c => c.id === `+jsString(waveSaw)+`); return c && c.to - c.from > 3500 && c.points > 0; })()`, patience)
	})

	t.Run("long and custom ranges", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click(chromedp.CSS(`.rangebar button[data-range="7d"]`)))
		b.wait("7d from the 5m rollup", `(() => { const c = window.recon.charts().find(c => c.id === `+jsString(waveSaw)+`); return c && c.resolution === "5m" && c.points >= 1; })()`, patience)
		meta := js[string](b, `document.querySelector('.chart[data-metric="saw"] .chart-meta').textContent`)
		if !strings.Contains(meta, "5m rollup") {
			t.Errorf("7d chart header: %q", meta)
		}
		// A custom range from the form (minute precision, local time).
		from := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
		to := from.Add(12 * time.Minute)
		b.do(
			chromedp.Click(chromedp.CSS(`.rangebar button[data-range="custom"]`)),
			chromedp.SetValue(chromedp.CSS(`.custom-range input[aria-label="from"]`), from.Local().Format("2006-01-02T15:04")),
			chromedp.SetValue(chromedp.CSS(`.custom-range input[aria-label="to"]`), to.Local().Format("2006-01-02T15:04")),
			chromedp.Click(chromedp.CSS(`.custom-range button[type=submit]`)),
		)
		b.wait("the custom range", fmt.Sprintf(`(() => { const c = window.recon.charts().find(c => c.id === %s); return c && c.from === %d && c.to === %d && c.resolution === "raw" && c.points > 0; })()`, jsString(waveSaw), from.Unix(), to.Unix()), patience)
		b.do(chromedp.Click(chromedp.CSS(`.rangebar button[data-range="1h"]`)))
		b.wait("1h raw again", `(() => { const c = window.recon.charts().find(c => c.id === `+jsString(waveSaw)+`); return c && c.resolution === "raw" && c.points > 0; })()`, patience)
	})

	t.Run("live", func(t *testing.T) {
		b.t = t
		if n := a.metric(t, "recon_stream_watchers"); n != 0 {
			t.Fatalf("%v stream watchers before Live", n)
		}
		b.do(chromedp.Click(chromedp.ID("live")))
		b.wait("first live points", `window.recon.charts().filter(c => c.mode === "live" && c.points >= 1).length === 2`, patience)
		first := chartOf(b, waveSaw).Points
		if w := a.metric(t, "recon_stream_watchers"); w != 1 {
			t.Errorf("%v stream watchers while Live, want 1", w)
		}
		// A clone runs every second: new points keep arriving.
		b.wait("3 more live points", fmt.Sprintf(`window.recon.charts().find(c => c.id === %s).points >= %d`, jsString(waveSaw), first+3), patience)
		if txt := js[string](b, `document.querySelector(".live-last").textContent`); !strings.Contains(txt, "OK") || !strings.Contains(txt, "saw=") {
			t.Errorf("live result line: %q", txt)
		}
		b.shot("live")
		// Off closes the EventSource; the agent then drops the watcher.
		b.do(chromedp.Click(chromedp.ID("live")))
		b.wait("history again", `window.recon.charts().every(c => c.mode === "history")`, patience)
		waitFor(t, "the stream watcher to go", 5*time.Second, func() bool { return a.metric(t, "recon_stream_watchers") == 0 })
	})

	t.Run("overlay of two checks", func(t *testing.T) {
		b.t = t
		b.open("#/overlay")
		pick := func(check, metric string) {
			b.wait("the checks list", `document.querySelectorAll("#overlay-checks option").length === 5`, patience)
			js[bool](b, fmt.Sprintf(`(() => { const i = document.getElementById("overlay-check"); i.value = %s; i.dispatchEvent(new Event("change")); return true; })()`, jsString(check)))
			b.wait("metrics of "+check, fmt.Sprintf(`!document.getElementById("overlay-metric").disabled && [...document.getElementById("overlay-metric").options].some(o => o.value === %s)`, jsString(metric)), patience)
			b.do(chromedp.SetValue(chromedp.ID("overlay-metric"), metric), chromedp.Click(chromedp.ID("overlay-add")))
		}
		pick("wave", "saw")
		pick("load", "load1")
		b.wait("two series drawn", `(() => { const c = window.recon.charts().find(c => c.kind === "overlay"); return c && c.series.length === 2 && c.points > 0; })()`, patience)
		ov := js[[]chartInfo](b, `window.recon.charts().filter(c => c.kind === "overlay")`)[0]
		if ov.Series[0] != "wave / saw" || ov.Series[1] != "load / load1" {
			t.Errorf("overlay series: %v", ov.Series)
		}
		// Two y axes: the metrics differ.
		if n := js[int](b, `document.querySelectorAll(".overlay-chart .u-axis").length`); n != 3 {
			t.Errorf("overlay has %d axes, want 3 (time + one per metric)", n)
		}
		h := js[string](b, `decodeURIComponent(location.hash)`)
		if !strings.Contains(h, ids["wave"]+"|saw") || !strings.Contains(h, ids["load"]+"|load1") {
			t.Errorf("overlay picks not kept in the address: %s", h)
		}
		if txt := js[string](b, `document.getElementById("overlay-error").textContent`); txt != "" {
			t.Errorf("picker says %q after adding two series", txt)
		}
		// Zoom in on both series at once.
		dragLast(b, ".overlay-chart", ov, 90)
		b.wait("the zoomed overlay", `(() => { const c = window.recon.charts().find(c => c.kind === "overlay"); return c && c.to - c.from < 300 && c.points > 4 && c.series.length === 2; })()`, patience)
		b.shot("overlay")
		// Live overlay: one stream per check.
		b.do(chromedp.Click(chromedp.ID("live")))
		b.wait("live overlay points", `(() => { const c = window.recon.charts().find(c => c.kind === "overlay"); return c && c.mode === "live" && c.points >= 4; })()`, patience)
		if w := a.metric(t, "recon_stream_watchers"); w != 2 {
			t.Errorf("%v stream watchers for a live overlay of two checks, want 2", w)
		}
		b.do(chromedp.Click(chromedp.ID("live")))
		waitFor(t, "the overlay's watchers to go", 5*time.Second, func() bool { return a.metric(t, "recon_stream_watchers") == 0 })
	})

	t.Run("alerts", func(t *testing.T) {
		b.t = t
		b.open("#/alerts")
		b.wait("the db-critical alert", `[...document.querySelectorAll("#alerts tbody tr")].some(r => r.innerText.includes("db-critical") && r.innerText.includes("firing"))`, patience)
		b.shot("alerts")
	})

	t.Run("silence create and expire", func(t *testing.T) {
		b.t = t
		// "Silence…" on the alert fills the matchers in.
		b.do(chromedp.Click(chromedp.JSPath(`[...document.querySelectorAll("#alerts tbody tr")].find(r => r.innerText.includes("db-critical")).querySelector("a.button")`)))
		b.wait("the silence form", `document.getElementById("silence-form") && !document.getElementById("silence-form").hidden`, patience)
		m := js[[][2]string](b, `[...document.querySelectorAll(".matcher")].map(r => [r.querySelector(".m-name").value, r.querySelector(".m-value").value])`)
		if len(m) != 2 || m[0] != [2]string{"check", "db-critical"} || m[1] != [2]string{"rule", "nagios-default"} {
			t.Errorf("prefilled matchers: %v", m)
		}
		b.do(
			chromedp.SendKeys(chromedp.ID("silence-by"), "uitest"),
			chromedp.SendKeys(chromedp.ID("silence-comment"), "database maintenance"),
			chromedp.Click(chromedp.ID("silence-create")),
		)
		b.wait("the created silence", `document.getElementById("silence-created") && document.querySelectorAll("#silences tbody tr.sil-active").length === 1`, patience)
		var sil struct {
			Silences []struct {
				ID        string `json:"id"`
				Matchers  []struct{ Name, Value string }
				EndsAt    time.Time `json:"ends_at"`
				CreatedBy string    `json:"created_by"`
				Comment   string    `json:"comment"`
			} `json:"silences"`
		}
		a.getJSON(t, "/api/v1/silences", "", &sil)
		if len(sil.Silences) != 1 {
			t.Fatalf("the agent has %d silences, want 1", len(sil.Silences))
		}
		s := sil.Silences[0]
		if s.CreatedBy != "uitest" || s.Comment != "database maintenance" || len(s.Matchers) != 2 || s.Matchers[0].Value != "db-critical" {
			t.Errorf("stored silence: %+v", s)
		}
		if d := time.Until(s.EndsAt); d < 55*time.Minute || d > 61*time.Minute {
			t.Errorf("silence ends in %v, want the default 1h", d)
		}
		// The alert now shows as silenced.
		b.open("#/alerts")
		b.wait("the alert marked silenced", `[...document.querySelectorAll("#alerts tbody tr")].some(r => r.innerText.includes("db-critical") && r.innerText.includes("silenced"))`, patience)
		b.open("#/silences")
		b.wait("the silences list", `document.querySelectorAll("#silences tbody tr.sil-active").length === 1`, patience)
		b.shot("silences")
		// Expire takes a confirming second click.
		b.do(chromedp.Click(chromedp.CSS(`#silences tbody tr.sil-active button`)))
		if txt := js[string](b, `document.querySelector("#silences tbody tr.sil-active button").textContent`); txt != "Confirm expire" {
			t.Errorf("first click: button says %q", txt)
		}
		b.do(chromedp.Click(chromedp.CSS(`#silences tbody tr.sil-active button`)))
		b.wait("the silence expired", `document.querySelectorAll("#silences tbody tr.sil-expired").length === 1`, patience)
		a.getJSON(t, "/api/v1/silences", "", &sil)
		if len(sil.Silences) != 1 || time.Until(sil.Silences[0].EndsAt) > 0 {
			t.Errorf("after expire: %+v", sil.Silences)
		}
	})

	t.Run("api errors are shown", func(t *testing.T) {
		b.t = t
		b.open("#/check/no-such-check")
		b.wait("the API's error text", `document.querySelector(".error") && document.querySelector(".error").textContent.includes('no check "no-such-check"')`, patience)
	})
}

// TestBrowserAuthAndNoAlerter: an agent with a token and no alerter. The UI
// asks for the token, says when it is wrong, keeps it, and says plainly
// that there is no alerter.
func TestBrowserAuthAndNoAlerter(t *testing.T) {
	testutil.RequireBinary(t, "chromium")
	testutil.RequireBinary(t, plugins+"/check_dummy")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
name = "locked"
listen = "127.0.0.1:0"
token = "s3cret-token"
data_dir = %q
[[check]]
name = "only"
type = "nagios"
command = "%s/check_dummy 0 fine"
period = "1s"
[[sink]]
type = "sqlite"
`, filepath.Join(dir, "data"), plugins)), 0o644)
	a := startAgent(t, cfg)
	if code := a.getJSON(t, "/api/v1/checks", "", nil); code != 401 {
		t.Fatalf("GET /api/v1/checks without token: %d", code)
	}
	b := newBrowser(t, a.base)
	b.open("")
	b.wait("the token dialog", `document.getElementById("token-dialog")`, patience)
	b.shot("token")
	b.do(chromedp.SendKeys(chromedp.CSS(`#token-dialog input`), "wrong"), chromedp.Click(chromedp.CSS(`#token-dialog button[type=submit]`)))
	b.wait("the dialog again, saying the token was rejected", `document.getElementById("token-dialog") && document.getElementById("token-dialog").innerText.includes("rejected")`, patience)
	b.do(chromedp.SendKeys(chromedp.CSS(`#token-dialog input`), "s3cret-token\r")) // Enter submits
	b.wait("the checks", `document.querySelectorAll("#checks .row").length === 1 && !document.getElementById("token-dialog")`, patience)
	if tok := js[string](b, `localStorage.getItem("recon.token")`); tok != "s3cret-token" {
		t.Errorf("kept token %q", tok)
	}
	// The token is kept: a reload asks nothing; Live passes it as access_token.
	b.open("#/check/only")
	b.wait("the check page", `document.querySelector(".title-row h2") && document.querySelector(".title-row h2").textContent === "only"`, patience)
	b.do(chromedp.Click(chromedp.ID("live")))
	b.wait("the live stream open", `document.querySelector(".live-last") && document.querySelector(".live-last").textContent.includes("fine")`, patience)
	b.do(chromedp.Click(chromedp.ID("live")))

	b.open("#/silences")
	b.wait("no alerter", `document.getElementById("no-alerter")`, patience)
	if txt := js[string](b, `document.getElementById("no-alerter").innerText`); !strings.Contains(txt, "No alerter configured") || !strings.Contains(txt, "no alerter is configured") {
		t.Errorf("no-alerter notice: %q", txt)
	}
	if hidden := js[bool](b, `document.getElementById("silence-form").hidden`); !hidden {
		t.Error("the silence form is offered without an alerter")
	}
	b.shot("no-alerter")
	b.open("#/alerts")
	b.wait("no alerter on the alerts page", `document.getElementById("no-alerter")`, patience)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowserManyChecks: 5,000 passive checks (1,000 with -short) of the real agent, fed by
// one POST of results. The overview makes one request for the list, keeps
// a few dozen rows in the DOM whatever the scroll, and filters in the
// browser.
func TestBrowserManyChecks(t *testing.T) {
	testutil.RequireBinary(t, "chromium")
	n := 5000
	if testing.Short() {
		n = 1000
	}
	dir := t.TempDir()
	// 500 checks a file in conf.d, as a large deployment would have them.
	confd := filepath.Join(dir, "conf.d")
	os.Mkdir(confd, 0o755)
	for f := 0; f < n/500; f++ {
		var b strings.Builder
		for i := f * 500; i < (f+1)*500; i++ {
			fmt.Fprintf(&b, "[[check]]\nname = \"svc-%04d\"\ntype = \"passive\"\ntarget = \"host-%02d\"\n", i, i%50)
		}
		os.WriteFile(filepath.Join(confd, fmt.Sprintf("svc-%02d.toml", f)), []byte(b.String()), 0o644)
	}
	cfgPath := filepath.Join(dir, "recon.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("include = [\"conf.d\"]\n[agent]\nname = \"many\"\nlisten = \"127.0.0.1:0\"\ndata_dir = %q\n", filepath.Join(dir, "data"))), 0o644)
	a := startAgent(t, cfgPath)

	var body bytes.Buffer
	want := map[string]int{}
	for i := range n {
		st := "OK"
		switch {
		case i%97 == 0:
			st = "CRITICAL"
		case i%13 == 0:
			st = "WARNING"
		}
		want[st]++
		fmt.Fprintf(&body, `{"check":"svc-%04d","status":%q,"output":"%s: service %d answered"}`+"\n", i, st, st, i)
	}
	res, err := http.Post(a.base+"/api/v1/results", "application/x-ndjson", &body)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST results: %d %s", res.StatusCode, msg)
	}

	b := newBrowser(t, a.base)
	b.open("#/?sort=name")
	b.wait("every check listed", fmt.Sprintf(`document.querySelector(".count") && document.querySelector(".count").textContent === "%d checks"`, n), 30*time.Second)
	chips := js[map[string]string](b, `Object.fromEntries([...document.querySelectorAll(".chips .chip")].map(c => c.textContent.split(" ")))`)
	for st, k := range want {
		if chips[st] != fmt.Sprint(k) {
			t.Errorf("chip %s says %s, want %d (%v)", st, chips[st], k, chips)
		}
	}
	rows := func() int { return js[int](b, `document.querySelectorAll("#checks .row").length`) }
	if r := rows(); r == 0 || r > 80 {
		t.Errorf("%d rows in the DOM for %d checks: the list must be virtual", r, n)
	}
	if n == 5000 {
		b.shot("overview-5000")
	}
	// Scroll to the end: the last check is drawn, still with few rows.
	js[bool](b, `(window.scrollTo(0, document.body.scrollHeight), true)`)
	b.wait("the last check drawn at the end", fmt.Sprintf(`document.querySelector('#checks .row[data-name="svc-%04d"]')`, n-1), patience)
	if r := rows(); r > 80 {
		t.Errorf("%d rows in the DOM after scrolling", r)
	}
	// The filter runs in the browser over the whole list.
	js[bool](b, `(window.scrollTo(0, 0), true)`)
	b.do(chromedp.SendKeys(chromedp.ID("filter"), "svc-04"))
	b.wait("100 matches", fmt.Sprintf(`document.querySelector(".count").textContent === "100 of %d checks"`, n), patience)
	b.do(chromedp.Click(chromedp.CSS(`.chips .chip.st-CRITICAL`)))
	// svc-0400..0499 with i%97 == 0: svc-0485.
	b.wait("the one critical match", fmt.Sprintf(`document.querySelector(".count").textContent === "1 of %d checks" && document.querySelector("#checks .row").dataset.name === "svc-0485"`, n), patience)

	b.mu.Lock()
	defer b.mu.Unlock()
	lists := 0
	for _, u := range b.requests {
		if strings.Contains(u, "/api/v1/checks/") {
			t.Errorf("per-check request from the overview: %s", u)
		}
		if strings.HasSuffix(u, "/api/v1/checks") {
			lists++
		}
	}
	if lists != 1 {
		t.Errorf("%d requests for the checks list, want 1", lists)
	}
}
