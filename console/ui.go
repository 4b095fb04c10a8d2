package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// The web console: plain HTML, CSS and JavaScript with no build step, so
// what is in console/ui/ is exactly what the browser runs.
//
//go:embed ui
var uiFiles embed.FS

// assetVersionMark is replaced in index.html by each asset's content hash,
// so a new binary's assets never mix with a browser's cached old ones.
const assetVersionMark = "{{version}}"

// uiAsset is one file of the console, prepared once: its bytes, a gzipped
// copy when that is smaller, and a strong ETag.
type uiAsset struct {
	body, gz    []byte
	contentType string
	etag        string
	// immutable assets are requested by versioned URL and cached for a year;
	// index.html must be revalidated so it always names the current assets.
	immutable bool
}

// uiHandler serves the console's files.
type uiHandler struct {
	assets map[string]*uiAsset // by URL path
}

// UI returns the handler of the web console: the page at / and its static
// assets, with content types, ETags and caching headers. Any other path
// answers 404 (JSON under /v1/, so API clients get an error they can read),
// and a method other than GET or HEAD 405.
//
// UIRoutes mounts it as "/", public: a "GET /" pattern would conflict
// (ServeMux panics) with the method-less patterns that answer other methods
// of an API path 405; "/" does not, and then this handler answers the other
// methods of its own paths.
//
// The console's data comes from the read API with the bearer token the user
// enters when a read answers 401; the page itself holds no data and needs no
// token.
func UI() http.Handler {
	h, err := newUIHandler(uiFiles)
	if err != nil {
		// The files are embedded at build time, so this is a build bug; the
		// rest of the process (ingest, the API) goes on without a console.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "console unavailable: "+err.Error(), http.StatusInternalServerError)
		})
	}
	return h
}

// UIRoutes returns the console's page and assets: public, since the data
// comes from the read API, which asks for a token when reads need one.
func UIRoutes() []httpapi.Route {
	return []httpapi.Route{{Pattern: "/", Access: httpapi.Public, Handler: UI()}}
}

func newUIHandler(files fs.FS) (*uiHandler, error) {
	h := &uiHandler{assets: map[string]*uiAsset{}}
	sub, err := fs.Sub(files, "ui")
	if err != nil {
		return nil, err
	}
	var index []byte
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		if p == "index.html" {
			index = b
			return nil
		}
		h.assets["/"+p] = newUIAsset(p, b, true)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// index.html names its assets as "app.js?v={{version}}"; the version is
	// a hash of all assets, so any change gives every URL a new name.
	sum := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(h.assets)) {
		sum.Write([]byte(name))
		sum.Write(h.assets[name].body)
	}
	version := hex.EncodeToString(sum.Sum(nil))[:12]
	index = bytes.ReplaceAll(index, []byte(assetVersionMark), []byte(version))
	h.assets["/"] = newUIAsset("index.html", index, false)
	return h, nil
}

func newUIAsset(name string, body []byte, immutable bool) *uiAsset {
	sum := sha256.Sum256(body)
	a := &uiAsset{body: body, contentType: contentType(name), etag: `"` + hex.EncodeToString(sum[:8]) + `"`, immutable: immutable}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(body)
	zw.Close()
	if buf.Len() < len(body)*9/10 {
		a.gz = buf.Bytes()
	}
	return a
}

// contentType names the types the console uses; mime.TypeByExtension would
// depend on the host's mime tables.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json":
		return "application/json"
	case ".png":
		return "image/png"
	}
	return "application/octet-stream"
}

// csp allows only the console's own files: no inline script, nothing from
// elsewhere, no framing (the console can replay dead letters).
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

func (h *uiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/index.html" {
		p = "/"
	}
	a, ok := h.assets[p]
	if !ok {
		if strings.HasPrefix(p, "/v1/") || p == "/v1" {
			httpapi.WriteError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
			return
		}
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Vary", "Accept-Encoding")
	switch {
	case a.immutable && r.URL.Query().Get("v") != "":
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	default:
		hd.Set("Cache-Control", "no-cache")
	}
	if p == "/" {
		hd.Set("Content-Security-Policy", csp)
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
	}
	body, etag := a.body, a.etag
	if a.gz != nil && r.Header.Get("Range") == "" && acceptsGzip(r) {
		// A strong ETag names one representation, so the gzipped one has its own.
		body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
		hd.Set("Content-Encoding", "gzip")
	}
	hd.Set("ETag", etag)
	// ServeContent answers If-None-Match with 304 and HEAD without a body.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
