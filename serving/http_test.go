package serving

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

func testServer(t *testing.T) (*Store, http.Handler) {
	t.Helper()
	p := testPipeline(t)
	s := NewStore(p)
	routes := NewHandler(p, s, NewMetrics(prometheus.NewRegistry(), s)).Routes()
	return s, httpapi.Handler(httpapi.NewAuth(p), routes)
}

func get(t *testing.T, h http.Handler, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", target, ct)
	}
	return rec.Code, strings.TrimSpace(rec.Body.String())
}

// TestQueryJSONShape: the reply is exactly {"view","horizon","rows":[…]},
// each row window_start, window_end, the group-by fields, the aggregates,
// layer (and final).
func TestQueryJSONShape(t *testing.T) {
	s, h := testServer(t)
	s.PutSpeed("cpu", []viewrow.Row{
		row(0, "eu", 1, 2, 0.25, true),
		{Start: base + minute, End: base + 2*minute, Group: []event.Value{str("us"), null()}, Aggs: []event.Value{long(1), null()}},
	})
	code, body := get(t, h, "/v1/views/cpu")
	want := `{"view":"cpu","horizon":null,"rows":[` +
		`{"window_start":"2026-01-02T15:00:00Z","window_end":"2026-01-02T15:01:00Z","region":"eu","zone":1,"events":2,"avg_cpu":0.25,"layer":"speed","final":true},` +
		`{"window_start":"2026-01-02T15:01:00Z","window_end":"2026-01-02T15:02:00Z","region":"us","zone":null,"events":1,"avg_cpu":null,"layer":"speed","final":false}]}`
	if code != http.StatusOK || body != want {
		t.Fatalf("%d\n%s\nwant 200\n%s", code, body, want)
	}
	var parsed map[string]any
	if err := json.Unmarshal([]byte(body), &parsed); err != nil {
		t.Fatalf("not JSON: %v", err)
	}

	s.PutBatch("cpu", base, base+minute, base+minute, []viewrow.Row{row(0, "eu", 1, 3, 0.5, true)})
	code, body = get(t, h, "/v1/views/cpu?region=eu")
	want = `{"view":"cpu","horizon":"2026-01-02T15:01:00Z","rows":[` +
		`{"window_start":"2026-01-02T15:00:00Z","window_end":"2026-01-02T15:01:00Z","region":"eu","zone":1,"events":3,"avg_cpu":0.5,"layer":"batch","final":true}]}`
	if code != http.StatusOK || body != want {
		t.Fatalf("%d\n%s\nwant 200\n%s", code, body, want)
	}
}

func TestQueryFilters(t *testing.T) {
	s, h := testServer(t)
	s.PutSpeed("cpu", []viewrow.Row{
		row(0, "eu", 1, 1, 0, true), row(0, "eu", 2, 2, 0, true), row(1, "us", 1, 3, 0, false), row(2, "eu", 1, 4, 0, false),
	})
	events := func(body string) string {
		var out struct {
			Rows []struct {
				Events int `json:"events"`
			} `json:"rows"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		var b strings.Builder
		for _, r := range out.Rows {
			b.WriteString(string(rune('0' + r.Events)))
		}
		return b.String()
	}
	for _, c := range []struct{ query, want string }{
		{"", "1234"},
		{"region=eu", "124"},
		{"region=eu&zone=1", "14"},
		{"zone=2", "2"},
		{"from=2026-01-02T15:01:00Z", "34"},
		{"to=2026-01-02T15:01:00Z", "12"},
		{"from=2026-01-02T15:01:00Z&to=2026-01-02T15:02:00Z", "3"},
		{"region=eu&from=2026-01-02T15:00:30Z", "4"},
		{"region=ap", ""},
	} {
		code, body := get(t, h, "/v1/views/cpu?"+c.query)
		if code != http.StatusOK || events(body) != c.want {
			t.Errorf("?%s: %d, events %q, want 200, %q", c.query, code, events(body), c.want)
		}
	}
}

func TestQueryErrors(t *testing.T) {
	_, h := testServer(t)
	for _, c := range []struct {
		target string
		code   int
		want   string // in the error message
	}{
		{"/v1/views/nope", http.StatusNotFound, `{"error":"unknown view \"nope\" (views: cpu, total)"}`},
		{"/v1/views/cpx", http.StatusNotFound, `{"error":"unknown view \"cpx\" (did you mean \"cpu\"?)"}`},
		{"/v1/views/cpu?regoin=eu", http.StatusBadRequest, `parameter \"regoin\": not a group-by field of view \"cpu\" (group_by: region, zone)`},
		{"/v1/views/cpu?zone=one", http.StatusBadRequest, `parameter \"zone\": \"one\" is not an integer`},
		{"/v1/views/cpu?from=yesterday", http.StatusBadRequest, `parameter \"from\": \"yesterday\" is not an RFC 3339 time`},
		{"/v1/views/cpu?to=" + url.QueryEscape("2026-01-02 15:00"), http.StatusBadRequest, `parameter \"to\"`},
		{"/v1/views/cpu?from=2026-01-02T16:00:00Z&to=2026-01-02T15:00:00Z", http.StatusBadRequest, `parameter \"to\" must be after \"from\"`},
	} {
		code, body := get(t, h, c.target)
		if code != c.code || !strings.Contains(body, c.want) || !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("GET %s: %d %s\nwant %d and an error containing %s", c.target, code, body, c.code, c.want)
		}
	}
}

func TestListViews(t *testing.T) {
	s, h := testServer(t)
	s.PutBatch("total", 0, base, base, nil)
	code, body := get(t, h, "/v1/views")
	want := `{"views":[{"name":"cpu","from":"metrics","group_by":["region","zone"],"window":"tumbling","aggregates":["events","avg_cpu"],"horizon":null,"drift_windows":0},` +
		`{"name":"total","from":"metrics","group_by":[],"window":"tumbling","aggregates":["events"],"horizon":"2026-01-02T15:00:00Z","drift_windows":0}]}`
	if code != http.StatusOK || body != want {
		t.Fatalf("%d\n%s\nwant 200\n%s", code, body, want)
	}
}
