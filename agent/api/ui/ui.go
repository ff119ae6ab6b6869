// Package ui serves the agent's web UI: the assets built from web/ by
// `make ui` (npm + esbuild) and committed under dist/, embedded so that
// `go build` needs no npm. The UI is a static single page that talks to
// /api/v1 with the user's bearer token; the shell itself holds no data,
// so it is served without auth.
package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed dist
var dist embed.FS

// contentSecurityPolicy allows nothing but the agent itself: the UI loads
// no external asset and talks only to its own API.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type asset struct {
	body        []byte
	gz          []byte // nil when compression does not pay
	contentType string
	etag        string // quoted
	version     string // sha256 prefix the build puts in ?v=
}

type handler struct {
	files map[string]*asset // by URL path
}

// Handler serves the embedded UI: "/" is the page, "/assets/…" its
// scripts and styles. Other paths answer 404. It is cheap to call: the
// assets are indexed and compressed on the first request, once.
func Handler() http.Handler {
	return &lazy{fsys: dist}
}

type lazy struct {
	fsys fs.FS
	once sync.Once
	h    *handler
	err  error
}

func (l *lazy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.once.Do(func() { l.h, l.err = newHandler(l.fsys) })
	if l.err != nil {
		// dist is embedded at build time: this is a broken build.
		http.Error(w, "web UI: embedded assets: "+l.err.Error(), http.StatusInternalServerError)
		return
	}
	l.h.ServeHTTP(w, r)
}

func newHandler(fsys fs.FS) (*handler, error) {
	sub, err := fs.Sub(fsys, "dist")
	if err != nil {
		return nil, err
	}
	h := &handler{files: map[string]*asset{}}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if p == "build-info.json" {
			return nil // for the staleness test, not for browsers
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		a := &asset{body: b, version: hex.EncodeToString(sum[:6]), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		a.contentType = mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			a.contentType = "text/javascript; charset=utf-8"
		case ".css":
			a.contentType = "text/css; charset=utf-8"
		case ".html":
			a.contentType = "text/html; charset=utf-8"
		case ".txt":
			a.contentType = "text/plain; charset=utf-8"
		}
		if a.contentType == "" {
			a.contentType = "application/octet-stream"
		}
		if strings.HasPrefix(a.contentType, "text/") && len(b) > 1024 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			zw.Write(b)
			zw.Close()
			if buf.Len() < len(b)*9/10 {
				a.gz = buf.Bytes()
			}
		}
		h.files["/"+p] = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	if h.files["/index.html"] == nil {
		return nil, fs.ErrNotExist
	}
	h.files["/"] = h.files["/index.html"]
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	a := h.files[r.URL.Path]
	if a == nil {
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		hdr.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("404 not found: the web UI is at /\n"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		w.Write([]byte("405 method not allowed\n"))
		return
	}
	hdr.Set("Content-Type", a.contentType)
	if strings.HasPrefix(a.contentType, "text/html") {
		hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	}
	// index.html names assets with ?v=<content hash>: such a URL never
	// changes content and may be cached for good; anything else is
	// revalidated by ETag.
	if v := r.URL.Query().Get("v"); v != "" && v == a.version {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	body, etag := a.body, a.etag
	if a.gz != nil {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			body, etag = a.gz, a.etag[:len(a.etag)-1]+`-gz"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("ETag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		hdr.Del("Content-Type")
		hdr.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

// acceptsGzip reads Accept-Encoding: gzip (or *) with a q-value above 0.
// An explicit gzip entry wins over *.
func acceptsGzip(ae string) bool {
	star := false
	for _, part := range strings.Split(ae, ",") {
		fields := strings.Split(part, ";")
		name := strings.ToLower(strings.TrimSpace(fields[0]))
		if name != "gzip" && name != "*" {
			continue
		}
		ok := true
		for _, p := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				ok = err == nil && q > 0 && q <= 1
			}
		}
		if name == "gzip" {
			return ok
		}
		star = ok
	}
	return star
}

// etagMatch implements If-None-Match's weak comparison over a list.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
