package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
)

// statsOfView returns the stats of one view of s.
func statsOfView(ctx context.Context, s *server, view string) (api.ViewStats, error) {
	st, err := s.client().Stats(ctx)
	if err != nil {
		return api.ViewStats{}, err
	}
	for _, v := range st.Views {
		if v.View == view {
			return v, nil
		}
	}
	return api.ViewStats{}, fmt.Errorf("no stats of view %q", view)
}

// TestInOrderEventsAfterPauseNotLate: after every partition has gone idle,
// 5,000 events with strictly increasing times, spread over four
// partitions, are none of them late, whichever partition the speed layer
// happens to read first.
func TestInOrderEventsAfterPauseNotLate(t *testing.T) {
	s := startServer(t, "testdata/idle.yaml", t.TempDir())
	ctx := context.Background()
	c := s.client()
	base := time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * 10 * time.Millisecond) }
	body := func(from, to int) []byte {
		var b bytes.Buffer
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, `{"ts":%q,"n":%d}`+"\n", at(i).Format(time.RFC3339Nano), i)
		}
		return b.Bytes()
	}
	const warm = 40
	if _, err := c.Publish(ctx, "ticks", body(0, warm), "application/x-ndjson", ""); err != nil {
		t.Fatal(err)
	}
	// The pause: every partition idle (the watermark is then the newest
	// event time of all).
	waitFor(t, "every partition idle", func() error {
		if v := metricValue(t, s, `lambdaflow_speed_idle_partitions{component="speed",pipeline="idle",view="per_second"}`); v != "4" {
			return fmt.Errorf("%s idle partitions, want 4", v)
		}
		return nil
	})
	if v, err := statsOfView(ctx, s, "per_second"); err != nil || v.Watermark == nil || !v.Watermark.Equal(at(warm-1)) {
		t.Fatalf("paused: stats %+v %v, want the watermark at %s", v, err, at(warm-1))
	}
	// 5,000 in-order events 10 ms apart, as `lambdaflow produce` sends
	// them: requests of 1,000, each spanning ten windows.
	const n = 5000
	for from := warm; from < warm+n; from += 1000 {
		if _, err := c.Publish(ctx, "ticks", body(from, from+1000), "application/x-ndjson", ""); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every event in the speed layer", func() error {
		v, err := statsOfView(ctx, s, "per_second")
		if err != nil {
			return err
		}
		if v.Events != warm+n {
			return fmt.Errorf("%d events processed, want %d", v.Events, warm+n)
		}
		return nil
	})
	v, err := statsOfView(ctx, s, "per_second")
	if err != nil {
		t.Fatal(err)
	}
	if v.LateEvents != 0 {
		t.Fatalf("%d of %d in-order events counted late after a pause, want 0", v.LateEvents, n)
	}
	// Every event is in the view: each second's window holds its 100 (the
	// last one the remaining 40).
	var rows []struct {
		WindowStart time.Time `json:"window_start"`
		N           int64
	}
	waitFor(t, "the view's rows", func() error {
		if _, err := c.QueryInto(ctx, "per_second", nil, time.Time{}, time.Time{}, &rows); err != nil {
			return err
		}
		total := int64(0)
		for _, r := range rows {
			total += r.N
		}
		if total != warm+n {
			return fmt.Errorf("%d events in the view, want %d", total, warm+n)
		}
		return nil
	})
	if len(rows) != 51 {
		t.Fatalf("%d rows, want 51 (one a second)", len(rows))
	}
	for _, r := range rows {
		k := int(r.WindowStart.Sub(base) / time.Second)
		if want := int64(min(100, warm+n-100*k)); r.N != want {
			t.Errorf("window %s: %d events, want %d", r.WindowStart.Format(time.RFC3339), r.N, want)
		}
	}
}

// TestQuietPartitionsNeverStallAView: events of one host land in one
// partition of four; the three quiet ones are found idle, so the watermark
// follows the busy one and its windows become final, before and after a
// pause.
func TestQuietPartitionsNeverStallAView(t *testing.T) {
	s := startServer(t, "testdata/idle.yaml", t.TempDir())
	ctx := context.Background()
	c := s.client()
	base := time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute)
	publish := func(secs ...int) {
		t.Helper()
		var b bytes.Buffer
		for _, sec := range secs {
			fmt.Fprintf(&b, `{"ts":%q,"host":"a"}`+"\n", base.Add(time.Duration(sec)*time.Second).Format(time.RFC3339Nano))
		}
		if _, err := c.Publish(ctx, "beats", b.Bytes(), "application/x-ndjson", ""); err != nil {
			t.Fatal(err)
		}
	}
	watermarkAt := func(sec int) {
		t.Helper()
		want := base.Add(time.Duration(sec) * time.Second)
		waitFor(t, "the watermark at "+want.Format(time.RFC3339), func() error {
			v, err := statsOfView(ctx, s, "beats_per_second")
			if err != nil {
				return err
			}
			if v.Watermark == nil || !v.Watermark.Equal(want) {
				return fmt.Errorf("watermark %v, want %s", v.Watermark, want)
			}
			return nil
		})
	}
	publish(0, 1, 2)
	watermarkAt(2)
	// After the pause (every partition idle), the same partition again:
	// the quiet ones hold the watermark for the idle time, then not.
	waitFor(t, "every partition idle", func() error {
		if v := metricValue(t, s, `lambdaflow_speed_idle_partitions{component="speed",pipeline="idle",view="beats_per_second"}`); v != "4" {
			return fmt.Errorf("%s idle partitions, want 4", v)
		}
		return nil
	})
	publish(3, 4, 5)
	watermarkAt(5)
	v, err := statsOfView(ctx, s, "beats_per_second")
	if err != nil {
		t.Fatal(err)
	}
	if v.Events != 6 || v.LateEvents != 0 {
		t.Fatalf("%d events, %d late; want 6, 0", v.Events, v.LateEvents)
	}
}
