package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
)

// topServer answers the endpoints top reads with stats made by statsAt
// for poll i (from 0); a nil answer is a 500. No batch layer, no sinks.
func topServer(t *testing.T, statsAt func(i int) *api.Stats) *httptest.Server {
	var mu sync.Mutex
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/stats":
			mu.Lock()
			st := statsAt(polls)
			polls++
			mu.Unlock()
			if st == nil {
				w.WriteHeader(http.StatusInternalServerError)
				w.Write([]byte(`{"error":"the log is unavailable"}`))
				return
			}
			json.NewEncoder(w).Encode(st)
		case "/readyz":
			w.Write([]byte(`{"status":"ready"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"not here"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// topStats is a process 30 s after its start at t0: one topic of 2
// partitions whose ends grow by 10 events a second each, three consumers.
func topStats(t0 time.Time, at time.Duration) *api.Stats {
	grown := int64(at/time.Second) * 10
	wm := t0.Add(at - 5*time.Second)
	return &api.Stats{
		Pipeline: "p", Time: t0.Add(at), Started: t0.Add(-30 * time.Second),
		Topics: []api.TopicStats{{Name: "metrics", Events: 20000 + 2*grown, Bytes: 3 << 20, EndOffsets: []int64{10000 + grown, 10000 + grown}}},
		Consumers: []api.Lag{
			{Consumer: "lake", Topic: "metrics", Partition: 0, Offset: 9000, EndOffset: 10000 + grown, Lag: 1000 + grown, LagSeconds: 100,
				ReadOffset: 10000 + grown, EventTimeLagSeconds: 3600},
			{Consumer: "sink.pg", Topic: "metrics", Partition: 1, Offset: 9990 + grown, EndOffset: 10000 + grown, Lag: 10, LagSeconds: 0.5,
				ReadOffset: 9990 + grown, ReadLag: 10, ReadLagSeconds: 0.5, EventTimeLagSeconds: 2},
			{Consumer: "speed.v", Topic: "metrics", Partition: 0, Offset: 5000, EndOffset: 10000 + grown, Lag: 5000 + grown, LagSeconds: 612,
				ReadOffset: 5000 + grown/2, ReadLag: 5000 + grown/2, ReadLagSeconds: 75, EventTimeLagSeconds: 9000},
		},
		Views: []api.ViewStats{{View: "v", Events: 15000 + uint64(grown), LateEvents: 12, OpenWindows: 3, Watermark: &wm,
			CheckpointAgeSeconds: 4.2, CheckpointBytes: 2048}},
	}
}

func TestTopFrames(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	fail := map[int]bool{2: true}
	srv := topServer(t, func(i int) *api.Stats {
		if fail[i] {
			return nil
		}
		return topStats(t0, now.Sub(t0))
	})
	tp := &top{c: client.New(srv.URL, "", nil), now: func() time.Time { return now }}
	poll := func(at time.Duration) error {
		t.Helper()
		now = t0.Add(at)
		return tp.poll(context.Background())
	}
	frame := func(width, height int, interactive bool) string {
		return strings.Join(tp.frame(width, height, interactive), "\n") + "\n"
	}
	head := func(at string) string {
		return "lambdaflow top  " + srv.URL + "  2026-03-01 " + at + "Z  ready  up "
	}

	if err := poll(0); err != nil {
		t.Fatal(err)
	}
	want := head("12:00:00") + "30s (counters since 2026-03-01 11:59Z)\n" +
		"\n" +
		"TOPIC    PARTITIONS  EVENTS  BYTES   IN/S  END-OFFSETS\n" +
		"metrics  2           20.0k   3.0MiB  –     10000 10000\n" +
		"\n" +
		"CONSUMER  TOPIC    PARTITION  OFFSET  END-OFFSET  LAG   LAG-TIME  READ-OFFSET  READ-LAG  READ-LAG-TIME  READ/S  EVENT-TIME-LAG\n" +
		"speed.v   metrics  0          5000    10000       5000  10m12s    5000         5000      1m15s          –       2h30m\n" +
		"sink.pg   metrics  1          9990    10000       10    500ms     9990         10        500ms          –       2.0s\n" +
		"lake      metrics  0          9000    10000       1000  1m40s     10000        0         0s             –       1h00m\n" +
		"\n" +
		"VIEW  EVENTS  EVENTS/S  LATE  LATE/S  OPEN-WINDOWS  WATERMARK  CHECKPOINT-AGE  CHECKPOINT-SIZE\n" +
		"v     15.0k   –         12    –       3             11:59:55Z  4.2s            2.0KiB\n"
	if got := frame(0, 0, false); got != want {
		t.Fatalf("first frame:\n%s\nwant:\n%s", got, want)
	}

	// Rates from the second poll on, averaged over the polls of the last
	// 10 s: 10 events/s per partition in, the lake reads 10/s, speed 5/s.
	if err := poll(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	got := frame(0, 0, false)
	for _, line := range []string{
		"metrics  2           20.0k   3.0MiB  20/s  10020 10020",
		"speed.v   metrics  0          5000    10020       5020  10m12s    5010         5010      1m15s          5/s     2h30m",
		"lake      metrics  0          9000    10020       1020  1m40s     10020        0         0s             10/s    1h00m",
		"v     15.0k   10/s      12    0/s     3             11:59:57Z  4.2s            2.0KiB",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("second frame lacks %q:\n%s", line, got)
		}
	}

	// A failed poll keeps the last numbers and says so; the next one
	// clears it.
	if err := poll(3 * time.Second); err == nil {
		t.Fatal("poll 3 did not fail")
	}
	got = frame(0, 0, false)
	wantHead := head("12:00:02") + "32s (counters since 2026-03-01 11:59Z)\n" +
		"POLL FAILED at 12:00:03Z (1 in a row, showing 12:00:02Z; retrying): 500 Internal Server Error: the log is unavailable\n\n"
	if !strings.HasPrefix(got, wantHead) || !strings.Contains(got, "lake      metrics  0          9000    10020") {
		t.Errorf("frame after a failed poll:\n%s\nwant it to start:\n%s", got, wantHead)
	}
	if err := poll(4 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := frame(0, 0, false); strings.Contains(got, "POLL FAILED") || !strings.Contains(got, "10040 10040") {
		t.Errorf("frame after recovering:\n%s", got)
	}
	// Smoothing: 20 events/s in over 0–4 s whatever the single steps.
	if !strings.Contains(got, "metrics  2           20.0k   3.0MiB  20/s") {
		t.Errorf("smoothed rate:\n%s", got)
	}

	// Sorted by committed lag, then by name.
	rows := func(f string) string {
		var out []string
		for _, l := range strings.Split(f, "\n") {
			if strings.HasPrefix(l, "speed.v ") || strings.HasPrefix(l, "sink.pg ") || strings.HasPrefix(l, "lake ") {
				out = append(out, strings.Fields(l)[0])
			}
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		order lagOrder
		want  string
	}{{byReadLag, "speed.v sink.pg lake"}, {byCommittedLag, "speed.v lake sink.pg"}, {byName, "lake sink.pg speed.v"}} {
		tp.order = c.order
		if got := rows(frame(0, 0, false)); got != c.want {
			t.Errorf("order %v: %s, want %s", c.order, got, c.want)
		}
	}
	if byName.next() != byReadLag || byReadLag.next() != byCommittedLag {
		t.Error("s does not cycle read → committed → name → read")
	}

	// Cut to a 60×12 terminal: the consumers give up rows first, every
	// line fits.
	tp.order = byReadLag
	small := tp.frame(60, 12, true)
	if len(small) > 12 {
		t.Errorf("%d lines in a 12-line terminal", len(small))
	}
	for _, l := range small {
		if n := len([]rune(l)); n > 60 {
			t.Errorf("line of %d columns in a 60-column terminal: %q", n, l)
		}
	}
	full := []rune(head("12:00:04"))
	want = string(full[:59]) + "…\n" +
		"consumers worst read lag first  ·  s: sort  q: quit\n" +
		"\n" +
		"TOPIC    PARTITIONS  EVENTS  BYTES   IN/S  END-OFFSETS\n" +
		"metrics  2           20.1k   3.0MiB  20/s  10040 10040\n" +
		"\n" +
		"CONSUMER  TOPIC    PARTITION  OFFSET  END-OFFSET  LAG   LAG…\n" +
		"speed.v   metrics  0          5000    10040       5040  10m…\n" +
		"(2 more consumers; a taller terminal shows them)\n" +
		"\n" +
		"VIEW  EVENTS  EVENTS/S  LATE  LATE/S  OPEN-WINDOWS  WATERMA…\n" +
		"v     15.0k   10/s      12    0/s     3             11:59:5…\n"
	if got := strings.Join(small, "\n") + "\n"; got != want {
		t.Errorf("frame cut to 60×12:\n%s\nwant:\n%s", got, want)
	}
}

// TestTopSurvivesFailedPolls runs `lambdaflow top` against a process whose
// first poll fails: it shows the failure, goes on, and shows the numbers
// once they come. Against nothing at all it says so and exits non-zero.
func TestTopSurvivesFailedPolls(t *testing.T) {
	t0 := time.Now().UTC()
	srv := topServer(t, func(i int) *api.Stats {
		if i == 0 {
			return nil
		}
		return topStats(t0, time.Duration(i)*time.Second)
	})
	out, errOut, code := runCLI(t, "", "top", "--addr", srv.URL, "-n", "3", "--interval", "50ms")
	if code != 0 || errOut != "" {
		t.Fatalf("top: exit %d, stderr %q", code, errOut)
	}
	frames := strings.Split(out, "\nlambdaflow top ")
	if len(frames) != 3 {
		t.Fatalf("%d frames, want 3:\n%s", len(frames), out)
	}
	if !strings.Contains(frames[0], "\nPOLL FAILED at ") || !strings.Contains(frames[0], "(1 in a row, no numbers yet; retrying): 500 Internal Server Error: the log is unavailable") ||
		strings.Contains(frames[0], "TOPIC") {
		t.Errorf("first frame:\n%s", frames[0])
	}
	for _, f := range frames[1:] {
		if strings.Contains(f, "POLL FAILED") || !strings.Contains(f, "\nmetrics  2 ") || !strings.Contains(f, "\nlake      metrics  0 ") {
			t.Errorf("frame after the failure:\n%s", f)
		}
	}

	_, errOut, code = runCLI(t, "", "top", "--addr", "127.0.0.1:1", "-n", "2", "--interval", "10ms")
	if code != 1 || !strings.HasPrefix(errOut, "lambdaflow top: no poll succeeded: ") || !strings.Contains(errOut, "connection refused") {
		t.Errorf("top against nothing: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "", "top", "--addr", "127.0.0.1:1", "--once")
	if code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Errorf("top --once against nothing: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "", "top", "--addr", srv.URL, "--sort", "size")
	if code != 2 || !strings.Contains(errOut, `--sort "size": want read, committed or name`) {
		t.Errorf("top --sort size: exit %d, stderr %q", code, errOut)
	}
}
