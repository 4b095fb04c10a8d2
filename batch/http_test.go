package batch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/internal/testenv"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func TestHTTP(t *testing.T) {
	e := newEnv(t)
	e.add(e.evsOf(300))
	srv := httptest.NewServer(httpapi.Handler(httpapi.NewAuth(e.p), e.b.Routes()))
	defer srv.Close()
	do := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/v1/views/nope/recompute", 404, `{"error":"unknown view \"nope\" (views: cpu_by_region)"}`},
		{"/v1/views/cpu_by_regoin/recompute", 404, `{"error":"unknown view \"cpu_by_regoin\" (did you mean \"cpu_by_region\"?)"}`},
		{"/v1/views/cpu_by_region/recompute?from=yesterday", 400, `from: \"yesterday\" is not an RFC 3339 time`},
		{"/v1/views/cpu_by_region/recompute?to=1700000000", 400, `to: `},
		{"/v1/views/cpu_by_region/recompute?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, `from: must be before to`},
	} {
		code, body := do("POST", tc.path)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("POST %s: %d %s, want %d with %s", tc.path, code, body, tc.code, tc.body)
		}
	}
	code, body := do("POST", "/v1/views/cpu_by_region/recompute?from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z")
	var started struct{ Job string }
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &started) != nil || started.Job == "" {
		t.Fatalf("POST recompute: %d %s", code, body)
	}
	var st api.JobStatus
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		code, body := do("GET", "/v1/jobs/"+started.Job)
		if code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		st = api.JobStatus{}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			return err
		}
		if !st.Finished() {
			return fmt.Errorf("job %s", st.State)
		}
		if !strings.Contains(body, `"rows_per_second":`) || !strings.Contains(body, `"eta_seconds":`) || !strings.Contains(body, `"finished_at":`) {
			return fmt.Errorf("fields missing: %s", body)
		}
		return nil
	})
	if st.State != api.JobSucceeded || st.Rows != 300 || st.Done != st.Total || st.Total != 1 {
		t.Fatalf("job %+v", st)
	}
	if code, _ := do("GET", "/v1/jobs/nope"); code != 404 {
		t.Errorf("unknown job: %d", code)
	}
	code, body = do("GET", "/v1/jobs")
	if code != 200 || !strings.Contains(body, started.Job) {
		t.Errorf("GET /v1/jobs: %d %s", code, body)
	}
}

func (e *env) evsOf(n int) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = testEvent("e", i, t0, 3*time.Second)
	}
	return out
}

func TestRenderProgress(t *testing.T) {
	started := time.Now()
	s := api.JobStatus{ID: "v-1", View: "v", State: api.JobRunning, Done: 3, Total: 12, Rows: 4_500_000, RowsPerSecond: 6_100_000, ETASeconds: 42, StartedAt: &started}
	var term, plain bytes.Buffer
	RenderProgress(&term, true, s)
	RenderProgress(&plain, false, s)
	if got := term.String(); !strings.HasPrefix(got, "\rv ") || strings.Contains(got, "\n") ||
		!strings.Contains(got, "3/12 hours") || !strings.Contains(got, "6.10M rows/s") || !strings.Contains(got, "ETA 42s") ||
		!strings.Contains(got, "███████░") {
		t.Errorf("terminal: %q", got)
	}
	if got := plain.String(); got != "job v-1 view v: running  25%  3/12 hours  4.50M rows  6.10M rows/s  ETA 42s\n" {
		t.Errorf("plain: %q", got)
	}
	s.State, s.Error, s.Done = api.JobFailed, "lake: corrupt file x", 5
	plain.Reset()
	RenderProgress(&plain, false, s)
	if !strings.Contains(plain.String(), "failed: lake: corrupt file x") {
		t.Errorf("failed: %q", plain.String())
	}
}
