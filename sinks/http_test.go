package sinks_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

func TestHTTPDeadLettersAndReplay(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{MaxRows: 100, MaxWait: pipelines.Duration(time.Millisecond), MaxRetries: 3})
	fake := newFake()
	reject := func(rows []sinks.Row) error {
		var re sinks.RowErrors
		for i, r := range rows {
			if r.Values[1].S == "bad" {
				re = append(re, sinks.RowError{Index: i, Err: errors.New("refused")})
			}
		}
		if re == nil {
			return nil
		}
		return re
	}
	fake.fail = reject
	r, b := newRunner(t, p, fake, nil, sinks.Options{})
	stop := run(t, r)
	appendEvents(t, b, "t", 0, events(0, 10, 2, 7))
	waitCommitted(t, b, "t", 0, 10)
	stop()

	srv := httptest.NewServer(httpapi.Handler(httpapi.NewAuth(p), sinks.Routes([]*sinks.Runner{r})))
	defer srv.Close()
	call := func(method, path string, wantStatus int, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: status %d, want %d", method, path, resp.StatusCode, wantStatus)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
		}
	}

	var list struct{ Sinks []api.SinkStatus }
	call("GET", "/v1/sinks", 200, &list)
	if len(list.Sinks) != 1 || list.Sinks[0].Name != "s" || !list.Sinks[0].Healthy || list.Sinks[0].Sources[0] != "t" {
		t.Errorf("GET /v1/sinks = %+v", list)
	}

	var dlq struct {
		Sink        string
		DeadLetters []api.DeadLetter `json:"dead_letters"`
	}
	call("GET", "/v1/sinks/s/dlq?limit=1", 200, &dlq)
	if len(dlq.DeadLetters) != 1 || dlq.DeadLetters[0].Offset != 2 || dlq.DeadLetters[0].DLQOffset != 0 {
		t.Errorf("GET dlq?limit=1 = %+v", dlq)
	}
	call("GET", "/v1/sinks/s/dlq", 200, &dlq)
	if len(dlq.DeadLetters) != 2 || dlq.DeadLetters[1].Offset != 7 || dlq.DeadLetters[1].Error != "refused" {
		t.Errorf("GET dlq = %+v", dlq)
	}
	call("GET", "/v1/sinks/s/dlq?limit=x", 400, nil)
	var e api.Error
	call("GET", "/v1/sinks/nope/dlq", 404, &e)
	if e.Error != `unknown sink "nope" (sinks: s)` {
		t.Errorf("GET dlq of an unknown sink: %q", e.Error)
	}
	call("POST", "/v1/sinks/nope/dlq/replay", 404, &e)
	call("GET", "/v1/sinks/S/dlq", 404, &e)
	if e.Error != `unknown sink "S" (did you mean "s"?)` {
		t.Errorf("GET dlq of a mistyped sink: %q", e.Error)
	}

	var rep struct{ Replayed, Failed int }
	call("POST", "/v1/sinks/s/dlq/replay", 200, &rep)
	if rep.Replayed != 0 || rep.Failed != 2 {
		t.Errorf("replay while still refused = %+v, want 0 replayed, 2 failed", rep)
	}
	call("GET", "/v1/sinks/s/dlq", 200, &dlq)
	if len(dlq.DeadLetters) != 2 || dlq.DeadLetters[0].DLQOffset != 2 {
		t.Errorf("after a failed replay: %+v, want the 2 dead letters again, at offsets 2 and 3", dlq)
	}

	fake.mu.Lock()
	fake.fail = nil
	fake.mu.Unlock()
	call("POST", "/v1/sinks/s/dlq/replay", 200, &rep)
	if rep.Replayed != 2 || rep.Failed != 0 {
		t.Errorf("replay after the fix = %+v, want 2 replayed", rep)
	}
	call("GET", "/v1/sinks/s/dlq", 200, &dlq)
	if len(dlq.DeadLetters) != 0 {
		t.Errorf("after replay: %+v, want none", dlq)
	}
	if _, rows, _ := fake.snapshot(); rows != 10 {
		t.Errorf("%d rows after replay, want 10", rows)
	}
	// A replayed row is the row that was dead-lettered.
	fake.mu.Lock()
	got := fake.rows["e7"]
	fake.mu.Unlock()
	if len(got) != 3 || got[0].I != 7 || got[1].S != "bad" || got[2].S != "e7" {
		t.Errorf("replayed row e7 = %+v", got)
	}

	fake.mu.Lock()
	fake.pingErr = errors.New("down")
	fake.mu.Unlock()
	call("GET", "/v1/sinks", 200, &list)
	if list.Sinks[0].Healthy || !strings.Contains(list.Sinks[0].Error, "down") {
		t.Errorf("GET /v1/sinks with the target down = %+v", list)
	}
}

func TestReplayUndecodableRecord(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{})
	fake := newFake()
	r, b := newRunner(t, p, fake, nil, sinks.Options{})
	dlq := p.DeadLetterTopic(&p.Sinks[0]).Name
	ev := func(source, rec string) event.Event {
		return event.Event{ID: "x", Time: 1, Values: []event.Value{
			{S: source, Valid: true}, {I: 0, Valid: true}, {I: 0, Valid: true},
			{S: rec, Valid: true}, {S: "old", Valid: true}, {I: 1, Valid: true},
		}}
	}
	appendEvents(t, b, dlq, 0, []event.Event{
		ev("t", `{"n":1,"s":"ok","_id":"a"}`),
		ev("t", `null`),
		ev("gone", `{"n":2}`),
		ev("t", `{"n":"x"}`),
	})
	replayed, failed, err := r.Replay(t.Context())
	if err != nil || replayed != 1 || failed != 3 {
		t.Fatalf("Replay = %d, %d, %v; want 1 replayed, 3 failed", replayed, failed, err)
	}
	dls, err := r.DeadLetters(t.Context(), 10)
	if err != nil || len(dls) != 3 {
		t.Fatalf("DeadLetters = %v, %v", dls, err)
	}
	for _, d := range dls {
		if !strings.HasPrefix(d.Error, "replay: ") {
			t.Errorf("dead letter %+v: want the replay's error", d)
		}
	}
	if !strings.Contains(dls[1].Error, `no longer delivers "gone"`) {
		t.Errorf("unknown source error %q", dls[1].Error)
	}
	// Nothing left to replay until new dead letters arrive.
	if replayed, failed, err := r.Replay(t.Context()); replayed != 0 || failed != 3 || err != nil {
		t.Errorf("second Replay = %d, %d, %v; want the 3 failing again", replayed, failed, err)
	}
}
