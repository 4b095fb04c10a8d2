package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/client"
)

// TestFarFutureEventNeverMovesTime: an event dated 9999-12-31 (valid under
// the schema) is refused with a 400 naming the field and the bound, the
// whole request with it; the watermark and the horizon stay where today's
// events put them, and later events are not late.
func TestFarFutureEventNeverMovesTime(t *testing.T) {
	s := startServer(t, "testdata/clocks.yaml", t.TempDir())
	c := s.client()
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Minute)
	click := func(at time.Time, page string) string {
		return fmt.Sprintf(`{"ts":%q,"page":%q}`, at.Format(time.RFC3339Nano), page)
	}
	if _, err := c.Publish(ctx, "clicks", []byte(click(base.Add(10*time.Second), "a")+"\n"+click(base.Add(70*time.Second), "a")), "", ""); err != nil {
		t.Fatal(err)
	}
	const refused = `{"error":"line 2: record 1: field \"ts\": 9999-12-31T23:59:59Z is more than 1h ahead of the ingest time (topics[].max_future of topic \"clicks\")","record":1,"line":2,"field":"ts"}` + "\n"
	_, err := c.Publish(ctx, "clicks", []byte(click(base.Add(80*time.Second), "b")+"\n"+`{"ts":"9999-12-31T23:59:59Z","page":"x"}`), "", "")
	if e, ok := err.(*client.Error); !ok || e.Status != 400 || string(e.Body) != refused {
		t.Fatalf("a 9999 event: %v, want 400 %s", err, refused)
	}
	// An hour and a minute ahead by the client's clock is past the bound
	// too; an epoch-millisecond number the same.
	future := time.Now().Add(61 * time.Minute).UnixMilli()
	if _, err := c.Publish(ctx, "clicks", []byte(fmt.Sprintf(`{"ts":%d,"page":"x"}`, future)), "", ""); client.StatusOf(err) != 400 {
		t.Fatalf("an event 61 minutes ahead: %v, want 400", err)
	}
	// Nothing of the refused requests is in the log.
	if got := readAll(t, s, "clicks"); len(got) != 2 {
		t.Fatalf("%d events in the log, want 2", len(got))
	}

	// The watermark is the newest accepted event time (lateness 0).
	wantWM := base.Add(70 * time.Second)
	waitFor(t, "the watermark", func() error {
		st, err := c.Stats(ctx)
		if err != nil {
			return err
		}
		for _, v := range st.Views {
			if v.View == "per_page" && v.Watermark != nil && v.Watermark.Equal(wantWM) {
				return nil
			}
			if v.View == "per_page" && v.Watermark != nil {
				return fmt.Errorf("watermark %s, want %s", v.Watermark, wantWM)
			}
		}
		return fmt.Errorf("no watermark yet")
	})
	// The batch horizon, from the lake, is the same time.
	waitFor(t, "the lake", func() error {
		st, err := c.Stats(ctx)
		if err != nil {
			return err
		}
		if st.Batch == nil || len(st.Batch.Lake) == 0 || st.Batch.Lake[0].Rows != 2 {
			return fmt.Errorf("lake %+v", st.Batch)
		}
		return nil
	})
	id, err := c.Recompute(ctx, "per_page", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the batch run", func() error {
		j, err := c.Job(ctx, id)
		if err != nil {
			return err
		}
		if j.State != "succeeded" {
			return fmt.Errorf("job %s: %s %s", id, j.State, j.Error)
		}
		if j.Horizon == nil || !j.Horizon.Equal(wantWM) {
			t.Fatalf("horizon %v, want %s", j.Horizon, wantWM)
		}
		return nil
	})
	// A later in-order event counts, not late.
	if _, err := c.Publish(ctx, "clicks", []byte(click(base.Add(130*time.Second), "a")), "", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the third event in the view", func() error {
		var rows []struct{ N int64 }
		if _, err := c.QueryInto(ctx, "per_page", nil, time.Time{}, time.Time{}, &rows); err != nil {
			return err
		}
		n := int64(0)
		for _, r := range rows {
			n += r.N
		}
		if n != 3 {
			return fmt.Errorf("%v events in the view, want 3", n)
		}
		return nil
	})
	if v := metricValue(t, s, `lambdaflow_speed_late_events_total{component="speed",pipeline="clocks",view="per_page"}`); v != "0" {
		t.Errorf("%s late events, want 0", v)
	}
}

// TestEpochSecondsDeclaredOrRefused: epoch seconds sent to a topic without
// time_unit are refused, never read as milliseconds; a topic that declares
// time_unit: s reads them as seconds.
func TestEpochSecondsDeclaredOrRefused(t *testing.T) {
	s := startServer(t, "testdata/clocks.yaml", t.TempDir())
	c := s.client()
	ctx := context.Background()
	_, err := c.Publish(ctx, "clicks", []byte(`{"ts":1764950000,"page":"a"}`), "", "")
	const refused = `{"error":"line 1: record 0: field \"ts\": \"1764950000\" read as epoch milliseconds is 1970-01-21T10:15:50Z, before 1973-03-03: if it is in seconds, declare topics[].time_unit: s (or ms to accept times this early)","record":0,"line":1,"field":"ts"}` + "\n"
	if e, ok := err.(*client.Error); !ok || e.Status != 400 || string(e.Body) != refused {
		t.Fatalf("epoch seconds to a millisecond topic: %v, want 400 %s", err, refused)
	}
	if _, err := c.Publish(ctx, "beats", []byte(`{"at":1764950000,"host":"h"}`), "", ""); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s, "beats")
	if len(got) != 1 || got[0].Time != "2025-12-05T15:53:20Z" || string(got[0].Event) != `{"at":"2025-12-05T15:53:20Z","host":"h"}` {
		t.Fatalf("beats: %+v, want one event at 2025-12-05T15:53:20Z", got)
	}
}
