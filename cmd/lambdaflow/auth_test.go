package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAuthScopes runs the real binary with read, admin and per-topic write
// tokens and checks who may do what, how tokens must arrive, and that
// browsers on foreign pages may not change state.
func TestAuthScopes(t *testing.T) {
	s := startServer(t, "testdata/auth.yaml", t.TempDir())
	order := `{"ts":"2026-03-01T10:00:00Z","region":"eu","amount":1}`
	for _, c := range []struct {
		name, method, path, body string
		header                   []string
		code                     int
		answer                   string // exact, or a prefix ending in "…"
	}{
		{"probe without token", "GET", "/healthz", "", nil, 200, `{"status":"ok"}`},
		{"read without token", "GET", "/v1/topics", "", nil, 401, `{"error":"a valid bearer token is required (auth.read_tokens)"}`},
		{"read token", "GET", "/v1/views/by_region", "", []string{"Authorization", "Bearer reader-secret"}, 200, `{"view":"by_region","horizon":null,"rows":[]}`},
		{"scheme in any case", "GET", "/v1/views/by_region", "", []string{"Authorization", "bEARER reader-secret"}, 200, `{"view":"by_region","horizon":null,"rows":[]}`},
		{"admin token reads", "GET", "/v1/views/by_region", "", []string{"Authorization", "Bearer admin-secret"}, 200, `{"view":"by_region","horizon":null,"rows":[]}`},
		{"token in the URL", "GET", "/metrics?token=reader-secret", "", nil, 400, `{"error":"parameter \"token\": tokens are accepted only in the header \"Authorization: Bearer \u003ctoken\u003e\""}`},
		{"token in the URL with a header too", "GET", "/v1/topics?token=x", "", []string{"Authorization", "Bearer reader-secret"}, 400, `{"error":"parameter \"token\": tokens are accepted only in the header \"Authorization: Bearer \u003ctoken\u003e\""}`},
		{"a query that does not parse", "GET", "/v1/views/by_region?region=no;such", "", []string{"Authorization", "Bearer reader-secret"}, 400, `{"error":"the query string does not parse: invalid semicolon separator in query"}`},
		{"write token of the topic", "POST", "/v1/topics/orders/events", order, []string{"Authorization", "bearer orders-writer"}, 200, `{"accepted":1,"results":[{"partition":0,"offset":0,"duplicate":false}]}`},
		{"write token of another topic", "POST", "/v1/topics/audit/events", `{"text":"x"}`, []string{"Authorization", "Bearer orders-writer"}, 403, `{"error":"token may write to other topics but not write to topic \"audit\" (topics[].write_tokens)"}`},
		{"read token may not write", "POST", "/v1/topics/orders/events", order, []string{"Authorization", "Bearer reader-secret"}, 403, `{"error":"token may read but not write to topic \"orders\" (topics[].write_tokens)"}`},
		{"write token may not read", "GET", "/v1/lag", "", []string{"Authorization", "Bearer orders-writer"}, 403, `{"error":"token may write to other topics but not read (auth.read_tokens)"}`},
		{"read token may not recompute", "POST", "/v1/views/by_region/recompute", "", []string{"Authorization", "Bearer reader-secret"}, 403, `{"error":"token may read but not administer (recompute, replay) (auth.admin_tokens)"}`},
		{"write token may not recompute", "POST", "/v1/views/by_region/recompute", "", []string{"Authorization", "Bearer orders-writer"}, 403, `{"error":"token may write to other topics but not administer (recompute, replay) (auth.admin_tokens)"}`},
		{"admin token recomputes", "POST", "/v1/views/by_region/recompute", "", []string{"Authorization", "Bearer admin-secret"}, 202, `{"job":"…`},
		{"foreign page publishing", "POST", "/v1/topics/orders/events", order, []string{"Authorization", "Bearer orders-writer", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403,
			`{"error":"cross-origin request from https://evil.example refused: only this server's own pages and auth.allowed_origins may change state"}`},
		{"foreign page recomputing", "POST", "/v1/views/by_region/recompute", "", []string{"Authorization", "Bearer admin-secret", "Origin", "http://evil.example"}, 403,
			`{"error":"cross-origin request from http://evil.example refused: only this server's own pages and auth.allowed_origins may change state"}`},
		{"allowed page publishing", "POST", "/v1/topics/orders/events", order, []string{"Authorization", "Bearer orders-writer", "Origin", "https://dashboards.example.com", "Sec-Fetch-Site", "cross-site"}, 200,
			`{"accepted":1,"results":[{"partition":0,"offset":1,"duplicate":false}]}`},
		{"the server's own page", "POST", "/v1/topics/orders/events", order, []string{"Authorization", "Bearer orders-writer", "Origin", "http://" + s.addr, "Sec-Fetch-Site", "same-origin"}, 200,
			`{"accepted":1,"results":[{"partition":0,"offset":2,"duplicate":false}]}`},
	} {
		req, err := http.NewRequest(c.method, s.url(c.path), strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(c.header); i += 2 {
			req.Header.Set(c.header[i], c.header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := strings.TrimSuffix(string(body), "\n")
		match := got == c.answer
		if prefix, ok := strings.CutSuffix(c.answer, "…"); ok {
			match = strings.HasPrefix(got, prefix)
		}
		if resp.StatusCode != c.code || !match {
			t.Errorf("%s: %d %s, want %d %s", c.name, resp.StatusCode, got, c.code, c.answer)
		}
	}
}
