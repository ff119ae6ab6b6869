package nagios

// Tests against the real plugins of Debian's monitoring-plugins package
// (/usr/lib/nagios/plugins). With CI=true a missing plugin fails.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reconmon/recon/agent/model"
	"github.com/reconmon/recon/compat/nagios/threshold"
	"github.com/reconmon/recon/internal/testutil"
)

const pluginDir = "/usr/lib/nagios/plugins"

func plugin(t testing.TB, name string) string {
	t.Helper()
	return testutil.RequireBinary(t, filepath.Join(pluginDir, name))
}

func metric(t *testing.T, r model.Result, name string) model.Metric {
	t.Helper()
	for _, m := range r.Metrics {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no metric %q in %+v (output %q, long %q)", name, r.Metrics, r.Output, r.LongOutput)
	return model.Metric{}
}

func TestCheckDummy(t *testing.T) {
	p := plugin(t, "check_dummy")
	typ := newType(t, Options{})
	for code, st := range []model.Status{model.OK, model.Warning, model.Critical, model.Unknown} {
		r := run(t, typ, Settings{Command: fmt.Sprintf("%s %d 'text with spaces'", p, code)}, "", 5*time.Second)
		if r.Status != st || r.Output != st.String()+": text with spaces" || r.LongOutput != "" || len(r.Metrics) != 0 {
			t.Errorf("exit %d: %v %q %q", code, r.Status, r.Output, r.LongOutput)
		}
	}
	// check_dummy itself rejects a state outside 0-3 with UNKNOWN.
	r := run(t, typ, Settings{Command: p + " 7 x"}, "", 5*time.Second)
	if r.Status != model.Unknown || !strings.Contains(r.Output, "Status 7 is not a supported error state") {
		t.Errorf("check_dummy 7: %v %q", r.Status, r.Output)
	}
}

func TestCheckLoad(t *testing.T) {
	r := run(t, newType(t, Options{}), Settings{Command: plugin(t, "check_load") + " -w 5,4,3 -c 10,8,6"}, "", 5*time.Second)
	if !strings.HasPrefix(r.Output, "LOAD "+r.Status.String()+" - total load average: ") {
		t.Fatalf("%v %q", r.Status, r.Output)
	}
	// The status must agree with the thresholds the plugin reported.
	want := model.OK
	for name, th := range map[string][2]string{"load1": {"5.000", "10.000"}, "load5": {"4.000", "8.000"}, "load15": {"3.000", "6.000"}} {
		m := metric(t, r, name)
		if m.Value.Kind() != model.KindFloat || m.Warn != th[0] || m.Crit != th[1] || m.Min == nil || *m.Min != 0 || m.Max != nil {
			t.Errorf("%s: %+v", name, m)
		}
		v, _ := m.Value.Float()
		want = model.Worst(want, threshold.Evaluate(v, threshold.MustParse(m.Warn), threshold.MustParse(m.Crit)))
	}
	if r.Status != want {
		t.Errorf("status %v, but the metrics say %v", r.Status, want)
	}
}

func TestCheckDisk(t *testing.T) {
	typ := newType(t, Options{})
	r := run(t, typ, Settings{Command: plugin(t, "check_disk") + " -w 10% -c 5% -p /"}, "", 10*time.Second)
	if r.Status == model.Unknown || !strings.HasPrefix(r.Output, "DISK "+r.Status.String()+" - free space: / ") {
		t.Fatalf("%v %q", r.Status, r.Output)
	}
	m := metric(t, r, "/")
	used, _ := m.Value.Float()
	if m.Unit != "B" || m.Value.Kind() != model.KindInt || m.Min == nil || *m.Min != 0 || m.Max == nil || used > *m.Max {
		t.Errorf("/ metric: %+v", m)
	}
	// Warn and crit are used bytes at 90% and 95% of the size.
	w, _ := strconv.ParseFloat(m.Warn, 64)
	c, _ := strconv.ParseFloat(m.Crit, 64)
	if !(w > 0.89**m.Max && w < 0.91**m.Max && c > 0.94**m.Max && c < 0.96**m.Max) {
		t.Errorf("thresholds %q %q of %v", m.Warn, m.Crit, *m.Max)
	}
	// A threshold no disk can meet.
	r = run(t, typ, Settings{Command: plugin(t, "check_disk") + " -w 100% -c 100% -p /"}, "", 10*time.Second)
	if r.Status != model.Critical {
		t.Errorf("check_disk -c 100%%: %v %q", r.Status, r.Output)
	}
}

func TestCheckProcs(t *testing.T) {
	typ := newType(t, Options{})
	p := plugin(t, "check_procs")
	r := run(t, typ, Settings{Command: p + " -w 100000 -c 200000"}, "", 10*time.Second)
	if r.Status != model.OK || !strings.HasPrefix(r.Output, "PROCS OK: ") || metric(t, r, "procs").Value.Int() < 2 {
		t.Errorf("check_procs: %v %q %+v", r.Status, r.Output, r.Metrics)
	}
	// A process of ours, found by its command name (a copy of sleep
	// under a unique name, at most 15 characters as in /proc/PID/comm).
	name := fmt.Sprintf("rcn%d", os.Getpid())
	bin := filepath.Join(t.TempDir(), name)
	sleep, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, sleep, 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command(bin, "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	r = run(t, typ, Settings{Command: p + " -c 1:1 -C " + name}, "", 10*time.Second)
	if r.Status != model.OK || metric(t, r, "procs").Value.Int() != 1 {
		t.Errorf("check_procs -C %s: %v %q", name, r.Status, r.Output)
	}
	r = run(t, typ, Settings{Command: p + " -c 1:1 -C no-such-process-xyz"}, "", 10*time.Second)
	if r.Status != model.Critical || metric(t, r, "procs").Value.Int() != 0 || metric(t, r, "procs").Crit != "1:1" {
		t.Errorf("check_procs for a missing process: %v %q", r.Status, r.Output)
	}
}

func TestCheckUsersSwap(t *testing.T) {
	typ := newType(t, Options{})
	r := run(t, typ, Settings{Command: plugin(t, "check_users") + " -w 1000 -c 2000"}, "", 5*time.Second)
	if r.Status != model.OK || !strings.HasPrefix(r.Output, "USERS OK - ") {
		t.Errorf("check_users: %v %q", r.Status, r.Output)
	}
	if m := metric(t, r, "users"); m.Warn != "1000" || m.Crit != "2000" || m.Value.Kind() != model.KindInt {
		t.Errorf("users: %+v", m)
	}
	r = run(t, typ, Settings{Command: plugin(t, "check_swap") + " -w 20% -c 10%"}, "", 5*time.Second)
	if !strings.HasPrefix(r.Output, "SWAP "+r.Status.String()) {
		t.Errorf("check_swap: %v %q", r.Status, r.Output)
	}
	if m := metric(t, r, "swap"); m.Unit != "B" || m.Max == nil {
		t.Errorf("swap: %+v", m)
	}
}

func TestCheckTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-recon-test\r\n"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	typ := newType(t, Options{})
	s := Settings{Command: plugin(t, "check_tcp") + " -H $HOSTADDRESS$ -p $ARG1$ -e SSH", Args: []string{strconv.Itoa(port)}}
	r := run(t, typ, s, "127.0.0.1", 10*time.Second)
	if r.Status != model.OK || !strings.HasPrefix(r.Output, "TCP OK - ") || !strings.Contains(r.Output, fmt.Sprintf("port %d", port)) {
		t.Fatalf("open port: %v %q %q", r.Status, r.Output, r.LongOutput)
	}
	if m := metric(t, r, "time"); m.Unit != "s" || m.Value.Kind() != model.KindFloat || m.Max == nil || *m.Max != 10 {
		t.Errorf("time: %+v", m)
	}
	ln.Close()
	r = run(t, typ, s, "127.0.0.1", 10*time.Second)
	if r.Status != model.Critical || !strings.Contains(r.Output, "Connection refused") {
		t.Errorf("closed port: %v %q", r.Status, r.Output)
	}
}

func TestCheckHTTP(t *testing.T) {
	const body = "<html>recon is healthy</html>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			http.NotFound(w, r)
		case "/broken":
			http.Error(w, "broken", http.StatusInternalServerError)
		default:
			fmt.Fprint(w, body)
		}
	}))
	defer srv.Close()
	u := srv.Listener.Addr().(*net.TCPAddr)
	typ := newType(t, Options{})
	for _, name := range []string{"check_http", "check_curl"} {
		t.Run(name, func(t *testing.T) {
			cmd := fmt.Sprintf("%s -H $HOSTADDRESS$ -p %d", plugin(t, name), u.Port)
			r := run(t, typ, Settings{Command: cmd + " -u / -s healthy"}, u.IP.String(), 10*time.Second)
			if r.Status != model.OK || !strings.HasPrefix(r.Output, "HTTP OK: HTTP/1.1 200 OK - ") {
				t.Fatalf("%v %q %q", r.Status, r.Output, r.LongOutput)
			}
			if m := metric(t, r, "time"); m.Unit != "s" || m.Value.Kind() != model.KindFloat || m.Min == nil {
				t.Errorf("time %+v", m)
			}
			// size counts the headers too.
			if m := metric(t, r, "size"); m.Unit != "B" || m.Value.Int() <= int64(len(body)) || !strings.Contains(r.Output, fmt.Sprintf("%d bytes", m.Value.Int())) {
				t.Errorf("size %+v", m)
			}
			r = run(t, typ, Settings{Command: cmd + " -u / -s absent-string"}, u.IP.String(), 10*time.Second)
			if r.Status != model.Critical || !strings.Contains(r.Output, "string 'absent-string' not found") {
				t.Errorf("missing body string: %v %q", r.Status, r.Output)
			}
			r = run(t, typ, Settings{Command: cmd + " -u /missing"}, u.IP.String(), 10*time.Second)
			if r.Status != model.Warning || !strings.Contains(r.Output, "404 Not Found") {
				t.Errorf("404: %v %q", r.Status, r.Output)
			}
			r = run(t, typ, Settings{Command: cmd + " -u /broken"}, u.IP.String(), 10*time.Second)
			if r.Status != model.Critical || !strings.Contains(r.Output, "500 Internal Server Error") {
				t.Errorf("500: %v %q", r.Status, r.Output)
			}
		})
	}
}

// Every plugin of the package runs unchanged through the runner: -V and
// --help give the status their exit code means (compared with a bare
// os/exec run) and the text they print.
func TestEveryPluginRuns(t *testing.T) {
	all, _ := filepath.Glob(filepath.Join(pluginDir, "check_*"))
	if len(all) < 50 {
		testutil.MissingPeer(t, "monitoring-plugins in %s (found %d plugins)", pluginDir, len(all))
	}
	all = append(all, filepath.Join(pluginDir, "negate"), filepath.Join(pluginDir, "urlize"))
	typ := newType(t, Options{MaxConcurrent: 4})
	for _, p := range all {
		for _, arg := range []string{"-V", "--help"} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			raw := exec.CommandContext(ctx, p, arg)
			raw.Env = MinimalEnv()
			stdout, err := raw.Output()
			code := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Errorf("%s %s: %v", p, arg, err)
			}
			x, res := typ.Exec(ctx, []string{p, arg}, ExecOptions{})
			cancel()
			switch {
			case x.ExitCode != code:
				t.Errorf("%s %s: exit %d, bare exec %d", filepath.Base(p), arg, x.ExitCode, code)
			case code > 3:
				if res.Status != model.Unknown || !strings.Contains(res.Output, "out of bounds") {
					t.Errorf("%s %s: exit %d gave %v %q", filepath.Base(p), arg, code, res.Status, res.Output)
				}
			default:
				first, _, _ := strings.Cut(string(stdout), "\n")
				first, _, _ = strings.Cut(first, "|")
				want := strings.TrimSpace(first)
				if want == "" {
					want = "(No output on stdout)"
				}
				if res.Status != model.Status(code) || res.Output != want {
					t.Errorf("%s %s: %v %q; bare exec: exit %d, %q", filepath.Base(p), arg, res.Status, res.Output, code, want)
				}
			}
			if arg == "-V" && filepath.Base(p) != "check_nrpe" && !strings.Contains(res.Output, "(monitoring-plugins ") {
				t.Errorf("%s -V: %q", filepath.Base(p), res.Output)
			}
		}
	}
}
