package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
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

// processed waits until the speed layer has processed n events of view and
// returns the view's stats then.
func processed(t *testing.T, s *server, view string, n uint64) api.ViewStats {
	t.Helper()
	var v api.ViewStats
	waitFor(t, "every event in the speed layer", func() error {
		var err error
		if v, err = statsOfView(context.Background(), s, view); err != nil {
			return err
		}
		if v.Events != n {
			return fmt.Errorf("%d events processed, want %d", v.Events, n)
		}
		return nil
	})
	return v
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
	if v := processed(t, s, "per_second", warm+n); v.LateEvents != 0 {
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

// TestIdlePartitionsAmongBusyNotLate: two partitions of eight keep
// receiving a steady in-order stream while the six others stay quiet past
// the idle time. The quiet ones do not hold the busy ones' windows open
// (the watermark follows them), yet when in-order events reach them again,
// spread over every partition in requests that each span ten windows, none
// of them is late, whichever partition's states reach a view partition
// first, and the view holds every event.
func TestIdlePartitionsAmongBusyNotLate(t *testing.T) {
	s := startServer(t, "testdata/idle.yaml", t.TempDir())
	ctx := context.Background()
	c := s.client()
	const topic, view, parts, nbusy = "flows", "flows_per_second", 8, 2
	// One host per partition (the topic is keyed by host).
	var hosts []string
	taken := map[int]bool{}
	for i := 0; len(hosts) < parts; i++ {
		h := fmt.Sprintf("host-%d", i)
		if p := event.PartitionOf(h, parts); !taken[p] {
			taken[p] = true
			hosts = append(hosts, h)
		}
	}
	busy := hosts[:nbusy]
	base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * 10 * time.Millisecond) }
	// Every event sent, by host and second; next is the next event's index:
	// the times only grow, whichever host an event is for.
	sent := map[string]map[int64]int64{}
	next := 0
	publish := func(hs []string, n int) {
		t.Helper()
		var b bytes.Buffer
		for range n {
			h := hs[next%len(hs)]
			fmt.Fprintf(&b, `{"ts":%q,"host":%q}`+"\n", at(next).Format(time.RFC3339Nano), h)
			if sent[h] == nil {
				sent[h] = map[int64]int64{}
			}
			sent[h][at(next).Unix()]++
			next++
		}
		if _, err := c.Publish(ctx, topic, b.Bytes(), "application/x-ndjson", ""); err != nil {
			t.Fatal(err)
		}
	}
	// Polled while the stream goes on: a failed read of /metrics is logged
	// and read again.
	idleParts := func() string {
		v, err := readMetric(s, `lambdaflow_speed_idle_partitions{component="speed",pipeline="idle",view="`+view+`"}`)
		if err != nil {
			t.Logf("reading the idle partitions: %v", err)
		}
		return v
	}
	quiet := strconv.Itoa(parts - nbusy)
	publish(hosts, 4*parts)
	// Twice: the busy hosts keep a steady stream (a request every 50 ms,
	// well within the idle time) until the quiet hosts' partitions are
	// found idle; then every host gets events again.
	for round := range 2 {
		deadline := time.Now().Add(time.Minute)
		for idleParts() != quiet {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %s idle partitions after a minute of a steady stream to %d of %d, want %s", round, idleParts(), nbusy, parts, quiet)
			}
			publish(busy, 6*nbusy)
			time.Sleep(50 * time.Millisecond)
		}
		// The quiet partitions, found idle with nothing unread, do not
		// stall the view: the watermark follows the busy ones (the older
		// of their newest events: the last request ends with one each).
		publish(busy, 6*nbusy)
		want := at(next - nbusy)
		waitFor(t, "the watermark at the busy partitions' "+want.Format(time.RFC3339Nano), func() error {
			v, err := statsOfView(ctx, s, view)
			if err != nil {
				return err
			}
			if v.Watermark == nil || !v.Watermark.Equal(want) {
				return fmt.Errorf("watermark %v", v.Watermark)
			}
			return nil
		})
		if v := idleParts(); v != quiet {
			t.Fatalf("round %d: %s idle partitions before the quiet hosts' events, want %s", round, v, quiet)
		}
		// In-order events for every host, in requests of 1,000 spanning
		// ten windows each.
		for range 3 {
			publish(hosts, 1000)
		}
	}
	total := uint64(next)
	if v := processed(t, s, view, total); v.LateEvents != 0 {
		t.Fatalf("%d of %d in-order events counted late, want 0", v.LateEvents, total)
	}
	var rows []struct {
		WindowStart time.Time `json:"window_start"`
		Host        string
		N           int64
	}
	waitFor(t, "the view's rows", func() error {
		if _, err := c.QueryInto(ctx, view, nil, time.Time{}, time.Time{}, &rows); err != nil {
			return err
		}
		n := uint64(0)
		for _, r := range rows {
			n += uint64(r.N)
		}
		if n != total {
			return fmt.Errorf("%d events in the view, want %d", n, total)
		}
		return nil
	})
	windows := 0
	for _, h := range hosts {
		windows += len(sent[h])
	}
	if len(rows) != windows {
		t.Errorf("%d rows, want %d (one per host and second with events)", len(rows), windows)
	}
	for _, r := range rows {
		if want := sent[r.Host][r.WindowStart.Unix()]; r.N != want {
			t.Errorf("host %s window %s: %d events, want %d", r.Host, r.WindowStart.Format(time.RFC3339), r.N, want)
		}
	}
}
