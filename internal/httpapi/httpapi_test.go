package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

func testAuth() *Auth {
	return NewAuth(&pipelines.Pipeline{
		Auth: pipelines.Auth{ReadTokens: []string{"r-secret"}, AdminTokens: []string{"a-secret"}, AllowedOrigins: []string{"https://dash.example.com"}},
		Topics: []pipelines.Topic{
			{Name: "guarded", WriteTokens: []string{"w-secret"}},
			{Name: "other", WriteTokens: []string{"o-secret"}},
			{Name: "open"},
		},
	})
}

// ok answers 200 "ok" so a test sees the request got through.
var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

func serve(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAccess(t *testing.T) {
	var denied []string
	h := Handler(testAuth(), []Route{
		{Pattern: "GET /healthz", Access: Public, Handler: ok},
		{Pattern: "GET /v1/topics", Access: Read, Handler: ok},
		{Pattern: "POST /v1/views/{view}/recompute", Access: Admin, Handler: ok},
		{Pattern: "POST /v1/topics/{topic}/events", Access: Write, Handler: ok,
			Denied: func(r *http.Request, d *Denial) { denied = append(denied, r.PathValue("topic")) }},
	})
	const (
		readDenied  = `{"error":"a valid bearer token is required (auth.read_tokens)"}` + "\n"
		badScheme   = `{"error":"the Authorization header must be \"Bearer \u003ctoken\u003e\" (auth.read_tokens)"}` + "\n"
		adminDenied = `{"error":"a valid bearer token is required (auth.admin_tokens)"}` + "\n"
		noWrite     = `{"error":"a valid bearer token is required (topics[].write_tokens)"}` + "\n"
		readOnly    = `{"error":"token may read but not write to topic \"guarded\" (topics[].write_tokens)"}` + "\n"
		otherTopic  = `{"error":"token may write to other topics but not write to topic \"guarded\" (topics[].write_tokens)"}` + "\n"
		writerReads = `{"error":"token may write to other topics but not read (auth.read_tokens)"}` + "\n"
		readAdmin   = `{"error":"token may read but not administer (recompute, replay) (auth.admin_tokens)"}` + "\n"
		tokenParam  = `{"error":"parameter \"token\": tokens are accepted only in the header \"Authorization: Bearer \u003ctoken\u003e\""}` + "\n"
		badQuery    = `{"error":"the query string does not parse: invalid semicolon separator in query"}` + "\n"
		crossSite   = `{"error":"cross-origin request from https://evil.example refused: only this server's own pages and auth.allowed_origins may change state"}` + "\n"
	)
	for _, c := range []struct {
		name, method, target string
		header               []string
		code                 int
		body                 string
	}{
		{"public", "GET", "/healthz", nil, 200, "ok"},
		{"read without token", "GET", "/v1/topics", nil, 401, readDenied},
		{"read wrong token", "GET", "/v1/topics", []string{"Authorization", "Bearer r-secreT"}, 401, readDenied},
		{"read token", "GET", "/v1/topics", []string{"Authorization", "Bearer r-secret"}, 200, "ok"},
		{"read scheme case", "GET", "/v1/topics", []string{"Authorization", "bearer r-secret"}, 200, "ok"},
		{"read scheme upper", "GET", "/v1/topics", []string{"Authorization", "BEARER r-secret"}, 200, "ok"},
		{"basic auth is no bearer", "GET", "/v1/topics", []string{"Authorization", "Basic ci1zZWNyZXQ="}, 401, badScheme},
		{"admin token reads", "GET", "/v1/topics", []string{"Authorization", "Bearer a-secret"}, 200, "ok"},
		{"token parameter refused", "GET", "/v1/topics?token=r-secret", nil, 400, tokenParam},
		{"token parameter refused on public routes", "GET", "/healthz?token=r-secret", nil, 400, tokenParam},
		{"query that does not parse", "GET", "/v1/topics?region=no;such", []string{"Authorization", "Bearer r-secret"}, 400, badQuery},
		{"write token is no read token", "GET", "/v1/topics", []string{"Authorization", "Bearer w-secret"}, 403, writerReads},
		{"admin token", "POST", "/v1/views/v/recompute", []string{"Authorization", "Bearer a-secret"}, 200, "ok"},
		{"read token may not administer", "POST", "/v1/views/v/recompute", []string{"Authorization", "Bearer r-secret"}, 403, readAdmin},
		{"admin without token", "POST", "/v1/views/v/recompute", nil, 401, adminDenied},
		{"write without token", "POST", "/v1/topics/guarded/events", nil, 401, noWrite},
		{"write with read token", "POST", "/v1/topics/guarded/events", []string{"Authorization", "Bearer r-secret"}, 403, readOnly},
		{"write with another topic's token", "POST", "/v1/topics/guarded/events", []string{"Authorization", "Bearer o-secret"}, 403, otherTopic},
		{"write token", "POST", "/v1/topics/guarded/events", []string{"Authorization", "Bearer w-secret"}, 200, "ok"},
		{"write scheme case", "POST", "/v1/topics/guarded/events", []string{"Authorization", "bEaReR w-secret"}, 200, "ok"},
		{"open topic", "POST", "/v1/topics/open/events", nil, 200, "ok"},
		{"unknown topic is the handler's", "POST", "/v1/topics/nope/events", nil, 200, "ok"},
		{"same origin", "POST", "/v1/topics/open/events", []string{"Origin", "http://example.com", "Sec-Fetch-Site", "same-origin"}, 200, "ok"},
		{"same host without Sec-Fetch-Site", "POST", "/v1/topics/open/events", []string{"Origin", "http://example.com"}, 200, "ok"},
		{"allowed origin", "POST", "/v1/topics/open/events", []string{"Origin", "https://dash.example.com", "Sec-Fetch-Site", "cross-site"}, 200, "ok"},
		{"foreign origin", "POST", "/v1/topics/open/events", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403, crossSite},
		{"foreign origin without Sec-Fetch-Site", "POST", "/v1/topics/open/events", []string{"Origin", "https://evil.example"}, 403, crossSite},
		{"foreign origin with a token", "POST", "/v1/views/v/recompute", []string{"Origin", "https://evil.example", "Authorization", "Bearer a-secret"}, 403, crossSite},
		{"foreign origin may read", "GET", "/v1/topics", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site", "Authorization", "Bearer r-secret"}, 200, "ok"},
	} {
		rec := serve(h, c.method, c.target, c.header...)
		if rec.Code != c.code || rec.Body.String() != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, rec.Code, rec.Body.String(), c.code, c.body)
		}
		if challenge := rec.Header().Get("WWW-Authenticate"); (c.code == 401) != (challenge == `Bearer realm="lambdaflow"`) {
			t.Errorf("%s: WWW-Authenticate %q", c.name, challenge)
		}
		if c.code >= 400 && rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", c.name, rec.Header().Get("Content-Type"))
		}
	}
	if got := strings.Join(denied, ","); got != "guarded,guarded,guarded,open,open" {
		t.Errorf("Denied told of %v, want the refused writes", got)
	}
}

// TestOpenPipeline: without any token every route is open, admin
// included; one token anywhere closes administration.
func TestOpenPipeline(t *testing.T) {
	routes := []Route{
		{Pattern: "GET /v1/topics", Access: Read, Handler: ok},
		{Pattern: "POST /v1/views/{view}/recompute", Access: Admin, Handler: ok},
		{Pattern: "POST /v1/topics/{topic}/events", Access: Write, Handler: ok},
	}
	open := Handler(NewAuth(&pipelines.Pipeline{Topics: []pipelines.Topic{{Name: "m"}}}), routes)
	for _, target := range []string{"/v1/views/v/recompute", "/v1/topics/m/events"} {
		if rec := serve(open, "POST", target); rec.Code != 200 {
			t.Errorf("open pipeline, POST %s: %d %s", target, rec.Code, rec.Body)
		}
	}
	writesGuarded := Handler(NewAuth(&pipelines.Pipeline{Topics: []pipelines.Topic{{Name: "m", WriteTokens: []string{"w"}}}}), routes)
	if rec := serve(writesGuarded, "GET", "/v1/topics"); rec.Code != 200 {
		t.Errorf("reads stay open: %d", rec.Code)
	}
	if rec := serve(writesGuarded, "POST", "/v1/views/v/recompute"); rec.Code != 401 {
		t.Errorf("with write tokens, recompute without an admin token: %d, want 401", rec.Code)
	}
	if rec := serve(writesGuarded, "POST", "/v1/views/v/recompute", "Authorization", "Bearer w"); rec.Code != 403 {
		t.Errorf("with write tokens, recompute with a write token: %d, want 403", rec.Code)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := Handler(testAuth(), []Route{
		{Pattern: "POST /v1/topics/{topic}/events", Access: Write, Handler: ok},
		{Pattern: "GET /v1/topics/{topic}/events", Access: Read, Handler: ok},
		{Pattern: "GET /v1/lag", Access: Read, Handler: ok},
		{Pattern: "/", Access: Public, Handler: ok},
	})
	for _, c := range []struct{ method, target, allow, body string }{
		{"PUT", "/v1/topics/m/events", "GET, HEAD, POST", `{"error":"method PUT not allowed; use GET, HEAD, POST"}` + "\n"},
		{"DELETE", "/v1/lag", "GET, HEAD", `{"error":"method DELETE not allowed; use GET, HEAD"}` + "\n"},
	} {
		rec := serve(h, c.method, c.target)
		if rec.Code != 405 || rec.Header().Get("Allow") != c.allow || rec.Body.String() != c.body {
			t.Errorf("%s %s: %d Allow %q %q", c.method, c.target, rec.Code, rec.Header().Get("Allow"), rec.Body.String())
		}
	}
	// The catch-all keeps every other path and method.
	if rec := serve(h, "POST", "/elsewhere"); rec.Code != 200 {
		t.Errorf("POST /elsewhere: %d, want the catch-all", rec.Code)
	}
}

func TestWriteJSONAndParams(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteJSON(rec, 418, map[string]any{"a": "<b>", "n": 1})
	if rec.Code != 418 || rec.Body.String() != `{"a":"\u003cb\u003e","n":1}`+"\n" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("WriteJSON: %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	rec = httptest.NewRecorder()
	WriteJSON(rec, 200, make(chan int))
	if rec.Code != 500 || !strings.HasPrefix(rec.Body.String(), `{"error":"encoding the answer: `) {
		t.Errorf("unencodable: %d %q", rec.Code, rec.Body.String())
	}
	if _, err := ParseTime("2026-01-02T15:04:05.5+01:00"); err != nil {
		t.Error(err)
	}
	if _, err := ParseTime("yesterday"); err == nil || err.Error() != `"yesterday" is not an RFC 3339 time` {
		t.Errorf("ParseTime(yesterday): %v", err)
	}
	if v := Last(map[string][]string{"a": {"1", "2"}}, "a"); v != "2" {
		t.Errorf("Last = %q", v)
	}
}

// FuzzRequest sends arbitrary query strings, headers and methods through
// the routes' checks: no panic, and a request passes only when its query
// string parses without a token parameter and its token grants the route.
func FuzzRequest(f *testing.F) {
	f.Add("GET", "/v1/topics", "region=eu", "Bearer r-secret", "")
	f.Add("POST", "/v1/topics/guarded/events", "a=%zz", "bearer w-secret", "https://evil.example")
	f.Add("POST", "/v1/views/v/recompute", "token=a-secret", "BEARER a-secret", "http://example.com")
	h := Handler(testAuth(), []Route{
		{Pattern: "GET /v1/topics", Access: Read, Handler: ok},
		{Pattern: "POST /v1/views/{view}/recompute", Access: Admin, Handler: ok},
		{Pattern: "POST /v1/topics/{topic}/events", Access: Write, Handler: ok},
		{Pattern: "/", Access: Public, Handler: ok},
	})
	f.Fuzz(func(t *testing.T, method, path, query, authz, origin string) {
		u := &url.URL{Path: path, RawQuery: query}
		req, err := http.NewRequest(method, "http://example.com/", nil)
		if err != nil {
			return
		}
		req.URL, req.RequestURI, req.Host = u, u.RequestURI(), "example.com"
		req.Header.Set("Authorization", authz)
		req.Header.Set("Origin", origin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			return
		}
		if q, err := url.ParseQuery(query); err != nil || q.Has("token") {
			t.Fatalf("%s %s?%s passed with a query that does not parse or holds a token", method, path, query)
		}
	})
}
