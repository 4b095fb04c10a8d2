package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAccessLog: with http.access_log every answered request is logged
// once, with what it was and what it got (a refused token included, never
// the token itself); the probes' and scrapers' successes are not.
func TestAccessLog(t *testing.T) {
	file := withLine(t, "testdata/auth.yaml", "http: { access_log: true }")
	s := startServer(t, file, t.TempDir())
	type entry struct {
		Method, Path string
		Status       int
		Bytes        int64
	}
	var want []entry
	do := func(method, path, token, body string, log bool) {
		t.Helper()
		req, err := http.NewRequest(method, s.url(path), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("User-Agent", "access-log-test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if log {
			want = append(want, entry{method, path, resp.StatusCode, n})
		}
	}
	do("POST", "/v1/topics/orders/events", "orders-writer", `{"ts":"2026-01-01T00:00:00Z","region":"eu","amount":1}`, true)
	do("GET", "/v1/topics?kind=events", "reader-secret", "", true)
	do("GET", "/v1/topics", "wrong-secret", "", true)
	do("GET", "/no/such/path", "", "", true)
	do("GET", "/healthz", "", "", false)
	do("GET", "/metrics", "reader-secret", "", false)
	do("GET", "/metrics", "", "", true) // refused: logged
	s.stop()

	var got []entry
	sc := bufio.NewScanner(bytes.NewReader(s.logs.Bytes()))
	for sc.Scan() {
		var l struct {
			Msg, Level, Component string
			Method, Path          string
			Status                int
			Bytes                 int64
			DurationMS            *float64 `json:"duration_ms"`
			Remote                string
			UserAgent             string `json:"user_agent"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "http request" {
			continue
		}
		if l.Level != "INFO" || l.Component != "http" || l.DurationMS == nil || *l.DurationMS < 0 || !strings.HasPrefix(l.Remote, "127.0.0.1:") {
			t.Errorf("access log line %s", sc.Bytes())
		}
		if l.UserAgent != "access-log-test" {
			// The start's wait for readiness: its refusals only.
			if l.Path != "/readyz" || l.Status != http.StatusServiceUnavailable {
				t.Errorf("access log line %s", sc.Bytes())
			}
			continue
		}
		got = append(got, entry{l.Method, l.Path, l.Status, l.Bytes})
	}
	if len(got) != len(want) {
		t.Fatalf("access log:\n%+v\nwant:\n%+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("access log entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if want[2].Status != http.StatusUnauthorized || want[3].Status != http.StatusNotFound {
		t.Errorf("statuses %d and %d, want 401 and 404", want[2].Status, want[3].Status)
	}
	if bytes.Contains(s.logs.Bytes(), []byte("wrong-secret")) || bytes.Contains(s.logs.Bytes(), []byte("orders-writer")) {
		t.Error("a token is in the log")
	}
}
