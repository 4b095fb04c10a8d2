package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

func testAuth() *Auth {
	return NewAuth(&pipelines.Pipeline{
		Auth: pipelines.Auth{ReadTokens: []string{"r-secret"}},
		Topics: []pipelines.Topic{
			{Name: "guarded", WriteTokens: []string{"w-secret"}},
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
		readDenied = `{"error":"a valid bearer token is required (auth.read_tokens)"}` + "\n"
		noWrite    = `{"error":"missing or invalid bearer token for writes to topic \"guarded\""}` + "\n"
		readOnly   = `{"error":"token may read but not write topic \"guarded\""}` + "\n"
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
		{"read token parameter", "GET", "/v1/topics?token=r-secret", nil, 200, "ok"},
		{"write token is no read token", "GET", "/v1/topics", []string{"Authorization", "Bearer w-secret"}, 401, readDenied},
		{"admin takes the read token", "POST", "/v1/views/v/recompute", []string{"Authorization", "Bearer r-secret"}, 200, "ok"},
		{"admin without token", "POST", "/v1/views/v/recompute", nil, 401, readDenied},
		{"write without token", "POST", "/v1/topics/guarded/events", nil, 401, noWrite},
		{"write with read token", "POST", "/v1/topics/guarded/events", []string{"Authorization", "Bearer r-secret"}, 403, readOnly},
		{"write token", "POST", "/v1/topics/guarded/events", []string{"Authorization", "Bearer w-secret"}, 200, "ok"},
		{"write token not as parameter", "POST", "/v1/topics/guarded/events?token=w-secret", nil, 401, noWrite},
		{"open topic", "POST", "/v1/topics/open/events", nil, 200, "ok"},
		{"unknown topic is the handler's", "POST", "/v1/topics/nope/events", nil, 200, "ok"},
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
	if strings.Join(denied, ",") != "guarded,guarded,guarded" {
		t.Errorf("Denied told of %v, want the three refused writes to guarded", denied)
	}
}

func TestOpenRoutesAreNotWrapped(t *testing.T) {
	a := NewAuth(&pipelines.Pipeline{Topics: []pipelines.Topic{{Name: "m"}}})
	for _, access := range []Access{Public, Read, Write, Admin} {
		if !a.open(access) {
			t.Errorf("access %d is guarded without any token", access)
		}
	}
	if testAuth().open(Read) || testAuth().open(Write) || testAuth().open(Admin) {
		t.Error("a guarded access counts as open")
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
