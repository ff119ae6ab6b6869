package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/reconmon/recon/agent/api"
)

// webDir is the UI sources, relative to this package.
const webDir = "../../../web"

// sourceHash mirrors sourceHash in web/build.mjs: sha256 over
// "path\0sha256(content)\n" for every file under web/ except node_modules,
// dot files and *.md, sorted by slash-separated path.
func sourceHash(t *testing.T, dir string) (string, []string) {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != dir && (strings.HasPrefix(name, ".") || name == "node_modules") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && !strings.HasSuffix(name, ".md") {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		c := sha256.Sum256(b)
		io.WriteString(h, f+"\x00"+hex.EncodeToString(c[:])+"\n")
	}
	return hex.EncodeToString(h.Sum(nil)), files
}

// TestBuildIsFresh fails when web/ changed after the committed build in
// dist/ was made: run `make ui` and commit dist/.
func TestBuildIsFresh(t *testing.T) {
	b, err := fs.ReadFile(dist, "dist/build-info.json")
	if err != nil {
		t.Fatalf("dist/build-info.json missing: run `make ui`: %v", err)
	}
	var info struct {
		SourceSHA256 string   `json:"source_sha256"`
		SourceFiles  []string `json:"source_files"`
		UPlot        string   `json:"uplot"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatalf("build-info.json: %v", err)
	}
	got, files := sourceHash(t, webDir)
	if got != info.SourceSHA256 {
		var added, removed []string
		for _, f := range files {
			if !slices.Contains(info.SourceFiles, f) {
				added = append(added, f)
			}
		}
		for _, f := range info.SourceFiles {
			if !slices.Contains(files, f) {
				removed = append(removed, f)
			}
		}
		t.Fatalf("the committed UI build in agent/api/ui/dist is stale: web/ sources hash %s, build made from %s "+
			"(files added since: %v, removed since: %v). Run `make ui` and commit agent/api/ui/dist.",
			got[:12], info.SourceSHA256[:12], added, removed)
	}
	if info.UPlot == "" {
		t.Error("build-info.json does not name the uPlot version")
	}
}

// TestIndexNamesItsAssets: the ?v= of each asset in index.html is the hash
// of the embedded file, so the immutable caching of versioned URLs is safe.
func TestIndexNamesItsAssets(t *testing.T) {
	idx, err := fs.ReadFile(dist, "dist/index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:src|href)="(assets/[^"?]+)\?v=([0-9a-f]+)"`).FindAllStringSubmatch(string(idx), -1)
	if len(refs) != 2 {
		t.Fatalf("index.html names %d versioned assets, want 2 (app.js, app.css): %s", len(refs), idx)
	}
	for _, r := range refs {
		b, err := fs.ReadFile(dist, "dist/"+r[1])
		if err != nil {
			t.Fatalf("index.html names %s: %v", r[1], err)
		}
		sum := sha256.Sum256(b)
		if want := hex.EncodeToString(sum[:6]); r[2] != want {
			t.Errorf("%s?v=%s, content hash %s", r[1], r[2], want)
		}
	}
	// Nothing is loaded from outside the agent.
	if m := regexp.MustCompile(`(?:src|href)="(?:https?:)?//`).FindString(string(idx)); m != "" {
		t.Errorf("index.html loads an external resource: %s", m)
	}
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandler(t *testing.T) {
	h := Handler()
	idx, _ := fs.ReadFile(dist, "dist/index.html")
	js, _ := fs.ReadFile(dist, "dist/assets/app.js")

	t.Run("index", func(t *testing.T) {
		for _, p := range []string{"/", "/index.html"} {
			w := get(t, h, "GET", p, nil)
			if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), idx) {
				t.Fatalf("GET %s: %d, %d bytes", p, w.Code, w.Body.Len())
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			csp := w.Header().Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Errorf("CSP %q", csp)
			}
			if w.Header().Get("Cache-Control") != "no-cache" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers %v", w.Header())
			}
		}
	})
	t.Run("gzip and etag", func(t *testing.T) {
		w := get(t, h, "GET", "/assets/app.js", map[string]string{"Accept-Encoding": "br, gzip"})
		if w.Code != 200 || w.Header().Get("Content-Encoding") != "gzip" || w.Header().Get("Vary") != "Accept-Encoding" {
			t.Fatalf("%d %v", w.Code, w.Header())
		}
		zr, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := io.ReadAll(zr)
		if !bytes.Equal(plain, js) {
			t.Fatal("gzip body does not decompress to app.js")
		}
		etag := w.Header().Get("ETag")
		w2 := get(t, h, "GET", "/assets/app.js", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": etag})
		if w2.Code != http.StatusNotModified || w2.Body.Len() != 0 {
			t.Fatalf("If-None-Match: %d, %d bytes", w2.Code, w2.Body.Len())
		}
		// The identity variant has another ETag: a gzip ETag must not
		// validate it.
		w3 := get(t, h, "GET", "/assets/app.js", map[string]string{"If-None-Match": etag})
		if w3.Code != 200 || !bytes.Equal(w3.Body.Bytes(), js) || w3.Header().Get("Content-Encoding") != "" {
			t.Fatalf("identity: %d %v", w3.Code, w3.Header())
		}
		w4 := get(t, h, "GET", "/assets/app.js", map[string]string{"Accept-Encoding": "gzip;q=0"})
		if w4.Header().Get("Content-Encoding") != "" {
			t.Fatal("gzip;q=0 got gzip")
		}
	})
	t.Run("versioned assets are immutable", func(t *testing.T) {
		sum := sha256.Sum256(js)
		w := get(t, h, "GET", "/assets/app.js?v="+hex.EncodeToString(sum[:6]), nil)
		if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("current version: Cache-Control %q", cc)
		}
		w = get(t, h, "GET", "/assets/app.js?v=000000000000", nil)
		if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("old version: Cache-Control %q", cc)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
	})
	t.Run("head", func(t *testing.T) {
		w := get(t, h, "HEAD", "/", nil)
		if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != strconv.Itoa(len(idx)) {
			t.Fatalf("%d %d %v", w.Code, w.Body.Len(), w.Header())
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			code         int
		}{
			{"GET", "/nope", 404},
			{"GET", "/assets/", 404},
			{"GET", "/build-info.json", 404},
			{"GET", "/assets/../index.html", 404},
			{"POST", "/", 405},
			{"DELETE", "/assets/app.js", 405},
		} {
			w := get(t, h, c.method, c.path, nil)
			if w.Code != c.code {
				t.Errorf("%s %s: %d, want %d", c.method, c.path, w.Code, c.code)
			}
		}
	})
}

// TestMountedInAPI: behind the API with a token, the UI shell needs none
// (it asks the user) while the API still does.
func TestMountedInAPI(t *testing.T) {
	srv, err := api.New(api.Options{Listen: "127.0.0.1:0", Token: "s3cret", Agent: "test", UI: Handler()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	res, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Contains(body, []byte(`<meta name="generator" content="recon-ui">`)) {
		t.Fatalf("GET /: %d %.200s", res.StatusCode, body)
	}
	res, err = http.Get(ts.URL + "/api/v1/checks")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("GET /api/v1/checks without token: %d", res.StatusCode)
	}
}

// TestBrokenEmbed: assets without index.html answer 500, never panic.
func TestBrokenEmbed(t *testing.T) {
	h := &lazy{fsys: fstest.MapFS{"dist/assets/app.js": {Data: []byte("x")}}}
	w := get(t, h, "GET", "/", nil)
	if w.Code != 500 || !strings.Contains(w.Body.String(), "embedded assets") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"br, gzip, deflate", true},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"gzip;q=0.5", true},
		{"gzip;q=1", true},
		{"gzip;q=2", false},
		{"gzip;q=abc", false},
		{"gzip;q=", false},
		{"gzip;q=NaN", false},
		{"gzip;level=9", true},
		{"*", true},
		{"*;q=0", false},
		{"*, gzip;q=0", false},
		{"gzip;q=0, *", false},
		{"x-gzip", false},
		{"gzipx", false},
		{"identity", false},
		{",,,;;;", false},
		{"deflate;q=1, br", false},
	} {
		if got := acceptsGzip(c.in); got != c.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestETagMatch(t *testing.T) {
	const etag = `"abc"`
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{`"abc"`, true},
		{`W/"abc"`, true},
		{`"x", "abc"`, true},
		{`*`, true},
		{`abc`, false},
		{`"abcd"`, false},
		{`"ab"`, false},
		{`,,`, false},
		{`W/`, false},
		{`"abc`, false},
	} {
		if got := etagMatch(c.in, etag); got != c.want {
			t.Errorf("etagMatch(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// FuzzServe: any path and conditional/encoding headers give a sane
// answer and never a panic; a 200 carries the asset (gzipped or not).
func FuzzServe(f *testing.F) {
	f.Add("GET", "/", "gzip", "")
	f.Add("GET", "/assets/app.js?v=1", "gzip;q=0, *", `W/"x", *`)
	f.Add("HEAD", "/assets/app.css", "", `"zz"`)
	f.Add("POST", "/index.html", "br", "")
	f.Add("GET", "/../../etc/passwd", "gzip;q=NaN", ",,")
	h := Handler()
	f.Fuzz(func(t *testing.T, method, target, ae, inm string) {
		r, err := http.NewRequest(method, "http://agent"+target, nil)
		if err != nil || r.URL.Path == "" {
			return
		}
		r.Header.Set("Accept-Encoding", ae)
		r.Header.Set("If-None-Match", inm)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200:
			if method != "HEAD" && w.Body.Len() == 0 {
				t.Fatalf("%s %s: 200 with an empty body", method, target)
			}
			if w.Header().Get("ETag") == "" {
				t.Fatalf("%s %s: 200 without ETag", method, target)
			}
		case 304, 404, 405:
		default:
			t.Fatalf("%s %s (ae %q, inm %q): %d", method, target, ae, inm, w.Code)
		}
	})
}
