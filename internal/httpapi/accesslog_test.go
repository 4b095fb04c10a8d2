package httpapi_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// TestAccessLogStreams: a handler that streams (server-sent events) flushes
// through the access log, directly and through http.ResponseController,
// and its line has the status and every byte; the time is the injected
// clock's.
func TestAccessLogStreams(t *testing.T) {
	var out bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&out, nil))
	clock := time.Unix(1000, 0)
	now := func() time.Time {
		clock = clock.Add(1500 * time.Microsecond)
		return clock
	}
	h := httpapi.AccessLog(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("data: 1\n\n"))
		w.(http.Flusher).Flush()
		w.Write([]byte("data: 2\n\n"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController.Flush: %v", err)
		}
	}), logger, now)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/groups/g/members/m/events?limit=2", nil))
	if !rec.Flushed || rec.Body.String() != "data: 1\n\ndata: 2\n\n" {
		t.Fatalf("flushed %v, body %q", rec.Flushed, rec.Body.String())
	}
	var l struct {
		Level, Msg, Path string
		Status           int
		Bytes            int64
		DurationMS       float64 `json:"duration_ms"`
	}
	if err := json.Unmarshal(out.Bytes(), &l); err != nil {
		t.Fatalf("%v: %s", err, out.Bytes())
	}
	if l.Level != "INFO" || l.Msg != "http request" || l.Path != "/v1/groups/g/members/m/events?limit=2" || l.Status != 200 || l.Bytes != 18 || l.DurationMS != 1.5 {
		t.Fatalf("access log line %s", out.Bytes())
	}

	// A server error is a warning; a probe's refusal is not.
	for _, c := range []struct {
		path, level string
	}{{"/v1/sql", "WARN"}, {"/readyz", "INFO"}} {
		out.Reset()
		h := httpapi.AccessLog(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}), logger, now)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", c.path, nil))
		if err := json.Unmarshal(out.Bytes(), &l); err != nil || l.Level != c.level || l.Status != 503 {
			t.Errorf("%s: %s (%v), want %s", c.path, out.Bytes(), err, c.level)
		}
	}
}
