package speed

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// flushed flushes e and returns the output's rows as text, finals first.
func flushed(e *engine) (open, final []string, gone []string) {
	var out output
	e.Flush(time.Time{}, &out)
	for _, r := range out.Open {
		open = append(open, shortRow(r))
	}
	for _, r := range out.Final {
		final = append(final, shortRow(r))
	}
	for _, r := range out.Gone {
		gone = append(gone, fmt.Sprintf("%s@%s", r.Group[0].S, offsetText(r.Start)))
	}
	return open, final, gone
}

// shortRow is "group@start-end=count" with times as offsets from base.
func shortRow(r viewrow.Row) string {
	return fmt.Sprintf("%s@%s-%s=%d", r.Group[0].S, offsetText(r.Start), offsetText(r.End), r.Aggs[0].I)
}

func offsetText(t int64) string { return time.Duration((t - base) * 1000).String() }

func TestEngineLateness(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 1, lateness: "30s"})
	e := newEngine(compile(t, p, "all"), 1)
	e.Process(0, 0, []event.Event{
		ev("a", 10*sec, "h1", "eu", 0.1, 1),
		ev("b", 70*sec, "h1", "eu", 0.2, 1), // watermark 40s
		ev("c", 50*sec, "h1", "eu", 0.3, 1), // behind the newest, within lateness: counted
	})
	if _, final, _ := flushed(e); len(final) != 0 {
		t.Fatalf("final rows %v before the watermark passed 1m", final)
	}
	if wm, _ := e.Watermark(); wm != base+40*sec {
		t.Fatalf("watermark %s, want 40s", offsetText(wm))
	}
	e.Process(0, 3, []event.Event{
		ev("d", 95*sec, "h1", "eu", 0.4, 1), // watermark 65s: [0,1m) is final
		ev("e", 55*sec, "h1", "eu", 0.5, 1), // for a final window: late
		ev("f", 61*sec, "h1", "eu", 0.6, 1), // [1m,2m) is open: counted
	})
	open, final, _ := flushed(e)
	if want := "eu@0s-1m0s=2"; len(final) != 1 || final[0] != want {
		t.Fatalf("final rows %v, want [%s]", final, want)
	}
	if want := "eu@1m0s-2m0s=3"; len(open) != 1 || open[0] != want {
		t.Fatalf("open rows %v, want [%s]", open, want)
	}
	if s := e.Stats(); s.Late != 1 || s.Events != 6 || s.Matched != 6 {
		t.Fatalf("stats %+v, want 6 events, 1 late", s)
	}
}

func TestEngineWatermarkIsMinOverPartitions(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "0s"})
	e := newEngine(compile(t, p, "all"), 2)
	e.Process(0, 0, []event.Event{ev("a", 10*sec, "h1", "eu", 0.1, 1), ev("b", 5*minute, "h1", "eu", 0.1, 1)})
	if _, final, _ := flushed(e); len(final) != 0 {
		t.Fatalf("final rows %v while partition 1 has no event", final)
	}
	if _, ok := e.Watermark(); ok {
		t.Fatal("a watermark while partition 1 has no event")
	}
	// Partition 1 is behind: its events still count in [0,1m) even
	// though partition 0 is minutes ahead.
	e.Process(1, 0, []event.Event{ev("c", 20*sec, "h2", "eu", 0.1, 1), ev("d", 90*sec, "h2", "eu", 0.1, 1)})
	_, final, _ := flushed(e)
	if want := "eu@0s-1m0s=2"; len(final) != 1 || final[0] != want {
		t.Fatalf("final rows %v, want [%s]", final, want)
	}
	if wm, _ := e.Watermark(); wm != base+90*sec {
		t.Fatalf("watermark %s, want 1m30s (partition 1's)", offsetText(wm))
	}
}

func TestEngineIdlePartition(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "0s"})
	e := newEngine(compile(t, p, "all"), 2)
	e.Process(0, 0, []event.Event{ev("a", 10*sec, "h1", "eu", 0.1, 1), ev("b", 2*minute, "h1", "eu", 0.1, 1)})
	flushed(e)
	e.SetIdle(1, true)
	_, final, _ := flushed(e)
	if want := "eu@0s-1m0s=1"; len(final) != 1 || final[0] != want {
		t.Fatalf("with partition 1 idle: final rows %v, want [%s]", final, want)
	}
	// The idle partition comes back with an event for the final window:
	// late, and the watermark does not move back.
	e.Process(1, 0, []event.Event{ev("c", 30*sec, "h2", "eu", 0.1, 1)})
	if e.Idle(1) {
		t.Fatal("partition 1 still idle after an entry")
	}
	if _, final, _ := flushed(e); len(final) != 0 {
		t.Fatalf("final rows %v after the late event", final)
	}
	if s := e.Stats(); s.Late != 1 {
		t.Fatalf("%d late events, want 1", s.Late)
	}
	if wm, _ := e.Watermark(); wm != base+2*minute {
		t.Fatalf("watermark %s, want 2m (it never moves back)", offsetText(wm))
	}
	// Every partition idle: the watermark is the newest of them.
	e.Process(0, 2, []event.Event{ev("d", 7*minute, "h1", "eu", 0.1, 1)})
	e.SetIdle(0, true)
	e.SetIdle(1, true)
	flushed(e)
	if wm, _ := e.Watermark(); wm != base+7*minute {
		t.Fatalf("all idle: watermark %s, want 7m", offsetText(wm))
	}
}

func TestIdleRule(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		caughtUp bool
		since    time.Time
		now      time.Time
		want     bool
	}{
		{true, t0, t0.Add(5 * time.Second), true},
		{true, t0, t0.Add(4999 * time.Millisecond), false},
		{false, t0, t0.Add(time.Hour), false}, // behind the log end: never idle
		{true, time.Time{}, t0.Add(time.Hour), false},
	} {
		if got := isIdle(c.caughtUp, c.since, c.now, 5*time.Second); got != c.want {
			t.Errorf("isIdle(%v, %v, %v) = %v, want %v", c.caughtUp, c.since, c.now, got, c.want)
		}
	}
}

// TestLocalIdleByClock: Local applies the idle rule on its own clock; the
// test moves the clock, nothing sleeps.
func TestLocalIdleByClock(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "0s"})
	store := newMemStore()
	start := time.UnixMicro(base)
	l, err := NewLocal(p, store, start, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append("metrics", 0, []event.Event{ev("a", 10*sec, "h1", "eu", 0.1, 1), ev("b", 2*minute, "h1", "eu", 0.1, 1)}); err != nil {
		t.Fatal(err)
	}
	l.Advance(4 * time.Second)
	if _, ok := l.engineOf("all").Watermark(); ok {
		t.Fatal("watermark after 4 s: partition 1 is not idle yet")
	}
	l.Advance(time.Second)
	if wm, ok := l.engineOf("all").Watermark(); !ok || wm != base+2*minute {
		t.Fatalf("watermark after 5 s = %s, %v; want 2m", offsetText(wm), ok)
	}
	if got := store.dump("all"); !strings.Contains(got, "final=true") {
		t.Fatalf("no final row in the store:\n%s", got)
	}
}

// TestMergerLeavesOutIdleOnlyWhenCaughtUp: a source partition that reported
// being idle is left out of the view's watermark only while the log holds
// nothing of it past the position it reported at: not when its events
// arrived in the log before or after its report but have not reached the
// merger yet. The log is asked only when leaving it out moves the
// watermark, and a partition found behind is not asked about again until
// it reports anew.
func TestMergerLeavesOutIdleOnlyWhenCaughtUp(t *testing.T) {
	p := testPipeline(t, pipelineOpts{lateness: "0s", partitions: 2})
	pl := compile(t, p, "all")
	m := newMerger(pl, 2)
	ends := []int64{0, 0}
	asked := 0
	m.logEnd = func(i int) (int64, bool) {
		asked++
		return ends[i], true
	}
	mark := func(src int, asOf, newest int64, idle bool) {
		t.Helper()
		pr := partial{source: src, epoch: 1, asOf: asOf, kind: pipelines.PartialMark, newest: newest, seen: true, idle: idle}
		if err := m.Apply(&pr); err != nil {
			t.Fatal(err)
		}
	}
	watermark := func() int64 {
		var out output
		m.Flush(time.Time{}, &out)
		wm, _ := m.Watermark()
		return wm
	}
	// Partition 1 read its 5 events, the newest at 10 s, and is idle;
	// partition 0 is busy at 20 s.
	mark(1, 5, base+10*sec, true)
	ends[1] = 5
	mark(0, 100, base+20*sec, false)
	ends[0] = 100
	if wm := watermark(); wm != base+20*sec || asked != 1 {
		t.Fatalf("caught up: watermark %s after %d questions, want 20s after 1", offsetText(wm), asked)
	}
	// Events reach partition 1's log (after its report) while partition 0
	// goes on: partition 1 holds the watermark at its own.
	ends[1] = 8
	mark(0, 120, base+30*sec, false)
	if wm := watermark(); wm != base+20*sec || asked != 2 {
		t.Fatalf("unread events: watermark %s after %d questions, want 20s after 2", offsetText(wm), asked)
	}
	mark(0, 140, base+40*sec, false)
	if wm := watermark(); wm != base+20*sec || asked != 2 {
		t.Fatalf("still unread: watermark %s after %d questions, want 20s after 2 (not asked again)", offsetText(wm), asked)
	}
	// Its stage 1 reads them (newest 35 s) and is found idle again at 8.
	mark(1, 8, base+35*sec, false)
	if wm := watermark(); wm != base+35*sec || asked != 2 {
		t.Fatalf("active: watermark %s after %d questions, want 35s after 2", offsetText(wm), asked)
	}
	mark(1, 8, base+35*sec, true)
	if wm := watermark(); wm != base+40*sec || asked != 3 {
		t.Fatalf("idle again: watermark %s after %d questions, want 40s after 3", offsetText(wm), asked)
	}
	// Leaving it out changes nothing: the log is not asked.
	mark(1, 8, base+35*sec, true)
	if wm := watermark(); wm != base+40*sec || asked != 3 {
		t.Fatalf("nothing to move: watermark %s after %d questions, want 40s after 3", offsetText(wm), asked)
	}
	// The log cannot tell: the partition holds the watermark back.
	m.logEnd = func(int) (int64, bool) { asked++; return 0, false }
	mark(0, 160, base+50*sec, false)
	if wm := watermark(); wm != base+40*sec || asked != 4 {
		t.Fatalf("log unavailable: watermark %s after %d questions, want 40s after 4", offsetText(wm), asked)
	}
}
