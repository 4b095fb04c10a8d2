package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// viewAnswer is a view's answer with its rows decoded.
type viewAnswer struct {
	api.ViewRows
	Rows []map[string]any
}

func queryView(t *testing.T, s *server, view string) viewAnswer {
	t.Helper()
	var a viewAnswer
	var err error
	if a.ViewRows, err = s.client().QueryInto(context.Background(), view, nil, time.Time{}, time.Time{}, &a.Rows); err != nil {
		t.Fatal(err)
	}
	return a
}

func post(t *testing.T, s *server, topic, ndjson string) {
	t.Helper()
	if _, err := s.client().Publish(context.Background(), topic, []byte(ndjson), "application/x-ndjson", ""); err != nil {
		t.Fatalf("post: %v", err)
	}
}

// rowsString renders rows compactly for exact comparison.
func rowsString(rows []map[string]any) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%v %v n=%v total=%v slowest=%v %v final=%v\n", r["window_start"], r["page"], r["n"], r["total"], r["slowest"], r["layer"], r["final"])
	}
	return b.String()
}

func metricValue(t *testing.T, s *server, series string) string {
	t.Helper()
	v, err := readMetric(s, series)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readMetric is metricValue returning the error of reading /metrics.
func readMetric(s *server, series string) (string, error) {
	body, err := s.client().Metrics(context.Background())
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return "", nil
	}
	return string(m[1]), nil
}

// waitFor waits for f to return nil, saying what it waited for if it
// does not within a minute.
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	testenv.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
		if err := f(); err != nil {
			return fmt.Errorf("%s: still %w", what, err)
		}
		return nil
	})
}

// TestLateEventsCorrectedByBatch is the point of the Lambda architecture:
// an event that arrives after the speed layer closed its window is counted
// late there, lands in the lake, and the next batch run puts it in the view.
func TestLateEventsCorrectedByBatch(t *testing.T) {
	s := startServer(t, "testdata/lambda.yaml", t.TempDir())
	post(t, s, "clicks", `{"id":"1","ts":"2026-03-01T10:00:05Z","page":"a","ms":10}
{"id":"2","ts":"2026-03-01T10:00:15Z","page":"a","ms":30}
{"id":"3","ts":"2026-03-01T10:00:25Z","page":"b","ms":5}
{"id":"4","ts":"2026-03-01T10:02:00Z","page":"a","ms":7}
`)
	// The event at 10:02 moves the watermark past 10:01: the 10:00 windows
	// are final in the speed layer.
	want := `2026-03-01T10:00:00Z a n=2 total=40 slowest=30 speed final=true
2026-03-01T10:00:00Z b n=1 total=5 slowest=5 speed final=true
2026-03-01T10:02:00Z a n=1 total=7 slowest=7 speed final=false
`
	waitFor(t, "speed rows", func() error {
		got := rowsString(queryView(t, s, "per_page").Rows)
		if got != want {
			return fmt.Errorf("rows:\n%s", got)
		}
		return nil
	})
	if a := queryView(t, s, "per_page"); a.Horizon != nil {
		t.Fatalf("horizon %v before any batch run, want null", *a.Horizon)
	}

	// Late: 10:00:40 for page a, after its window closed.
	post(t, s, "clicks", `{"id":"5","ts":"2026-03-01T10:00:40Z","page":"a","ms":100}`+"\n")
	waitFor(t, "late event counted", func() error {
		if v := metricValue(t, s, `lambdaflow_speed_late_events_total{component="speed",pipeline="lambda",view="per_page"}`); v != "1" {
			return fmt.Errorf("late events %q", v)
		}
		return nil
	})
	if got := rowsString(queryView(t, s, "per_page").Rows); got != want {
		t.Fatalf("the speed layer changed a final window for a late event:\n%s", got)
	}

	// Once the lake holds all five events, a batch run corrects the view.
	waitFor(t, "lake caught up", func() error {
		lag, err := s.client().Lag(context.Background())
		if err != nil {
			return err
		}
		for _, c := range lag {
			if c.Consumer == "lake" && c.Topic == "clicks" {
				if c.Offset == 5 && c.Lag == 0 {
					return nil
				}
				return fmt.Errorf("lake at offset %d, lag %d", c.Offset, c.Lag)
			}
		}
		return fmt.Errorf("no lake consumer in %+v", lag)
	})
	out, errOut, code := runCLI(t, "", "batch", "run", "per_page", "--addr", s.addr)
	if code != 0 || !strings.Contains(out, "succeeded") {
		t.Fatalf("batch run: exit %d\n%s%s", code, out, errOut)
	}
	a := queryView(t, s, "per_page")
	if a.Horizon == nil {
		t.Fatal("no horizon after the batch run")
	}
	// The horizon is the lake's event-time watermark (10:02, the newest
	// event; lateness 0): the 10:00 windows come from the batch layer, with
	// the late event, and the open 10:02 window still from the speed layer.
	if *a.Horizon != "2026-03-01T10:02:00Z" {
		t.Errorf("horizon %s, want 2026-03-01T10:02:00Z", *a.Horizon)
	}
	wantBatch := `2026-03-01T10:00:00Z a n=3 total=140 slowest=100 batch final=true
2026-03-01T10:00:00Z b n=1 total=5 slowest=5 batch final=true
2026-03-01T10:02:00Z a n=1 total=7 slowest=7 speed final=false
`
	if got := rowsString(a.Rows); got != wantBatch {
		t.Fatalf("after the batch run:\n%s\nwant:\n%s", got, wantBatch)
	}
	// The two layers differ on exactly one closed window: drift 1.
	if v := metricValue(t, s, `lambdaflow_view_drift_windows_total{component="serving",pipeline="lambda",view="per_page"}`); v != "1" {
		t.Errorf("drift %q, want 1", v)
	}
	s.stop()
}

// TestBatchRunMakesLakeDurable: a batch run right after publishing sees the
// events (the lake writer flushes up to the log's end first, without
// waiting for its roll), and a run with nothing to do says so.
func TestBatchRunMakesLakeDurable(t *testing.T) {
	s := startServer(t, "testdata/durable.yaml", t.TempDir())
	run := func() string {
		t.Helper()
		out, errOut, code := runCLI(t, "", "batch", "run", "per_page", "--addr", s.addr)
		if code != 0 {
			t.Fatalf("batch run: exit %d\n%s%s", code, out, errOut)
		}
		return out
	}
	out := run()
	for _, want := range []string{
		"lake: the lake already held topic clicks up to the log's end (0 events)\n",
		"succeeded with nothing to do: the lake holds no event of topic clicks yet\n",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("batch run on an empty log:\n%s\nwant a line %q", out, want)
		}
	}
	post(t, s, "clicks", `{"id":"1","ts":"2026-03-01T10:00:05Z","page":"a","ms":10}
{"id":"2","ts":"2026-03-01T10:00:15Z","page":"a","ms":30}
{"id":"3","ts":"2026-03-01T10:00:25Z","page":"b","ms":5}
{"id":"4","ts":"2026-03-01T10:02:00Z","page":"a","ms":7}
`)
	// lake.max_age is 1h: without the flush the lake would hold nothing.
	out = run()
	for _, want := range []string{
		"lake: made 4 events of topic clicks durable in the lake, up to the log's end (4 events)\n",
		"succeeded: 4 rows read, 2 windows written\n",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("batch run after publishing:\n%s\nwant a line %q", out, want)
		}
	}
	out = run()
	for _, want := range []string{
		"lake: the lake already held topic clicks up to the log's end (4 events)\n",
		"succeeded with nothing to do: no window closed and no late event reached the lake since the last run; the horizon stays at 2026-03-01T10:02:00Z\n",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("batch run again:\n%s\nwant a line %q", out, want)
		}
	}
	jobs, err := s.client().Jobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var nothing []bool
	for _, j := range jobs {
		nothing = append(nothing, j.NothingToDo)
	}
	if fmt.Sprint(nothing) != "[true false true]" {
		t.Fatalf("jobs' nothing_to_do, newest first: %v", nothing)
	}
	s.stop()
}
