package console

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var assetRef = regexp.MustCompile(`<(?:link|script)\s[^>]*(?:href|src)="([^"]+)"`)

func TestUIIndex(t *testing.T) {
	h := UI()
	rec := get(t, h, http.MethodGet, "/", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /: %d", rec.Code)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-cache",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("GET / %s = %q, want %q", k, got, want)
		}
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q: want only the console's own scripts", csp)
	}
	body := rec.Body.String()
	if strings.Contains(body, assetVersionMark) {
		t.Error("index.html still holds the version mark")
	}
	// Every asset the page names is served, by a versioned URL, for a year.
	refs := assetRef.FindAllStringSubmatch(body, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html names %d assets, want the script, the style sheet and the icon", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		if !strings.Contains(ref, "?v=") || strings.HasPrefix(ref, "http") {
			t.Errorf("asset %q: want a local versioned URL", ref)
			continue
		}
		r := get(t, h, http.MethodGet, "/"+ref, nil)
		if r.Code != http.StatusOK || r.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("GET /%s: %d, Cache-Control %q", ref, r.Code, r.Header().Get("Cache-Control"))
		}
	}
}

func TestUIContentTypesAndCaching(t *testing.T) {
	h := UI()
	for p, ct := range map[string]string{
		"/app.js":            "text/javascript; charset=utf-8",
		"/pages/overview.js": "text/javascript; charset=utf-8",
		"/app.css":           "text/css; charset=utf-8",
		"/favicon.svg":       "image/svg+xml",
		"/index.html":        "text/html; charset=utf-8",
	} {
		rec := get(t, h, http.MethodGet, p, nil)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != ct {
			t.Errorf("GET %s: %d %q, want 200 %q", p, rec.Code, rec.Header().Get("Content-Type"), ct)
		}
		// Without a version (a module import) the browser revalidates.
		if rec.Header().Get("Cache-Control") != "no-cache" || rec.Header().Get("ETag") == "" {
			t.Errorf("GET %s: Cache-Control %q, ETag %q", p, rec.Header().Get("Cache-Control"), rec.Header().Get("ETag"))
		}
		again := get(t, h, http.MethodGet, p, http.Header{"If-None-Match": {rec.Header().Get("ETag")}})
		if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("GET %s with its ETag: %d with %d bytes, want 304 and no body", p, again.Code, again.Body.Len())
		}
	}
}

func TestUIGzip(t *testing.T) {
	h := UI()
	plain := get(t, h, http.MethodGet, "/app.js", nil)
	zipped := get(t, h, http.MethodGet, "/app.js", http.Header{"Accept-Encoding": {"br, gzip"}})
	if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("Content-Encoding %q, Vary %q", zipped.Header().Get("Content-Encoding"), zipped.Header().Get("Vary"))
	}
	if zipped.Header().Get("ETag") == plain.Header().Get("ETag") {
		t.Error("the gzipped representation has the plain one's ETag")
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, plain.Body.Bytes()) {
		t.Errorf("gunzipped body differs (%v)", err)
	}
	if r := get(t, h, http.MethodGet, "/app.js", http.Header{"Accept-Encoding": {"gzip;q=0"}}); r.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 still got gzip")
	}
}

func TestUIErrors(t *testing.T) {
	h := UI()
	if r := get(t, h, http.MethodGet, "/nope.js", nil); r.Code != http.StatusNotFound {
		t.Errorf("GET /nope.js: %d", r.Code)
	}
	r := get(t, h, http.MethodGet, "/v1/nope", nil)
	var e struct {
		Error string `json:"error"`
	}
	if r.Code != http.StatusNotFound || json.Unmarshal(r.Body.Bytes(), &e) != nil || e.Error == "" {
		t.Errorf("GET /v1/nope: %d %s, want 404 with a JSON error", r.Code, r.Body)
	}
	r = get(t, h, http.MethodPost, "/", nil)
	if r.Code != http.StatusMethodNotAllowed || r.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q", r.Code, r.Header().Get("Allow"))
	}
	r = get(t, h, http.MethodHead, "/", nil)
	if r.Code != http.StatusOK || r.Body.Len() != 0 {
		t.Errorf("HEAD /: %d with %d bytes", r.Code, r.Body.Len())
	}
}

// TestUIMountsBesideMethodlessRoutes is the regression test for mounting
// the console as "GET /", which ServeMux refuses (it panics) beside ingest's
// method-less "/v1/topics/{topic}/events".
func TestUIMountsBesideMethodlessRoutes(t *testing.T) {
	mux := http.NewServeMux()
	ingest := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.Handle("/v1/topics/{topic}/events", ingest)
	mux.Handle("GET /v1/topics", ingest)
	mux.Handle("/", UI())
	for target, code := range map[string]int{"/": 200, "/v1/topics": 418, "/v1/topics/m/events": 418, "/app.css": 200} {
		if r := get(t, mux, http.MethodGet, target, nil); r.Code != code {
			t.Errorf("GET %s: %d, want %d", target, r.Code, code)
		}
	}
}

// importRef finds the modules a script imports.
var importRef = regexp.MustCompile(`(?m)^\s*import\s[^"]*"([^"]+)"`)

// TestUIModulesResolve checks every import of every script names an
// embedded file: a typo would only show as a blank page in a browser.
func TestUIModulesResolve(t *testing.T) {
	h := UI()
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".js" {
			return err
		}
		src, err := fs.ReadFile(uiFiles, p)
		if err != nil {
			return err
		}
		for _, m := range importRef.FindAllStringSubmatch(string(src), -1) {
			target := path.Join(path.Dir(strings.TrimPrefix(p, "ui")), m[1])
			if r := get(t, h, http.MethodGet, target, nil); r.Code != http.StatusOK {
				t.Errorf("%s imports %q: GET %s answers %d", p, m[1], target, r.Code)
			}
		}
		if bytes.Contains(src, []byte(".innerHTML =")) {
			t.Errorf("%s sets innerHTML: build nodes (event payloads are user data)", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
