package speed

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// flushedAt flushes e at clock offset at (from timeAt(0)) and returns the
// output's rows as text: open, final and gone.
func flushedAt(e *engine, at time.Duration) (open, final, gone []string) {
	var out output
	e.Flush(timeAt(0).Add(at), &out)
	for _, r := range out.Open {
		open = append(open, shortRow(r))
	}
	for _, r := range out.Final {
		final = append(final, shortRow(r))
	}
	for _, r := range out.Gone {
		if !r.Deleted || len(r.Aggs) != len(e.plan.Columns()) {
			panic(fmt.Sprintf("a gone row that is no tombstone: %+v", r))
		}
		gone = append(gone, fmt.Sprintf("%s@%s", r.Group[0].S, offsetText(r.Start)))
	}
	return open, final, gone
}

// TestEnginePace: a changed open window shows at once when it has not shown
// within the interval, else once the interval has passed (found by a sweep
// at most every quarter interval); never more than once per interval; final
// rows and a soft stop's showWaiting are not held back.
func TestEnginePace(t *testing.T) {
	e, add := pacedEngine(t, "all", "0s")
	ms := time.Millisecond
	for i, step := range []struct {
		events           []event.Event
		at               time.Duration
		showWaiting      bool
		open, final      []string
		waiting, waitKey int
	}{
		// eu's first change shows at once.
		{events: []event.Event{ev("a", 1*sec, "h1", "eu", 0.5, 1)}, at: 0, open: []string{"eu@0s-1m0s=1"}},
		// Within its interval, its changes wait; a new row does not.
		{events: []event.Event{ev("b", 2*sec, "h1", "eu", 0.5, 1)}, at: 200 * ms, waiting: 1},
		{events: []event.Event{ev("c", 3*sec, "h2", "us", 0.5, 1), ev("d", 4*sec, "h1", "eu", 0.5, 1)}, at: 500 * ms, open: []string{"us@0s-1m0s=1"}, waiting: 1},
		{at: 990 * ms, waiting: 1},
		// The sweep at 990ms found it not due; the next is a quarter
		// interval later.
		{at: 1100 * ms, waiting: 1},
		{at: 1240 * ms, open: []string{"eu@0s-1m0s=3"}},
		// Nothing changed: nothing shows.
		{at: 3000 * ms},
		// Quiet for longer than the interval: shows at once.
		{events: []event.Event{ev("e", 5*sec, "h1", "eu", 0.5, 1)}, at: 3001 * ms, open: []string{"eu@0s-1m0s=4"}},
		{events: []event.Event{ev("f", 6*sec, "h1", "eu", 0.5, 1), ev("g", 7*sec, "h2", "us", 0.5, 1)}, at: 3100 * ms, open: []string{"us@0s-1m0s=2"}, waiting: 1},
		// A soft stop shows every waiting row.
		{at: 3200 * ms, showWaiting: true, open: []string{"eu@0s-1m0s=5"}},
		// A waiting row whose window closes shows as final, not open.
		{events: []event.Event{ev("h", 8*sec, "h1", "eu", 0.5, 1)}, at: 3300 * ms, waiting: 1},
		{events: []event.Event{ev("i", 61*sec, "h1", "eu", 0.5, 1)}, at: 3400 * ms, open: []string{"eu@1m0s-2m0s=1"}, final: []string{"eu@0s-1m0s=6", "us@0s-1m0s=2"}},
	} {
		add(step.events...)
		if step.showWaiting {
			e.showWaiting()
		}
		open, final, _ := flushedAt(e, step.at)
		sortStrings(open, final)
		if !reflect.DeepEqual(open, step.open) || !reflect.DeepEqual(final, step.final) {
			t.Fatalf("step %d at %v: open %q final %q, want %q and %q", i, step.at, open, final, step.open, step.final)
		}
		if e.pace.waiting != step.waiting || e.pace.waitingKeys != step.waitKey {
			t.Fatalf("step %d: %d rows and %d keys wait, want %d and %d", i, e.pace.waiting, e.pace.waitingKeys, step.waiting, step.waitKey)
		}
	}
}

// TestEnginePaceSessions: a session view is paced per group; a merge's
// tombstone waits with the group and shows with the merged session, or
// when showMerged hurries it for a checkpoint.
func TestEnginePaceSessions(t *testing.T) {
	e, add := pacedEngine(t, "sessions", "10m")
	ms := time.Millisecond
	check := func(at time.Duration, wantOpen, wantGone []string) {
		t.Helper()
		open, _, gone := flushedAt(e, at)
		sortStrings(open, gone)
		if !reflect.DeepEqual(open, wantOpen) || !reflect.DeepEqual(gone, wantGone) {
			t.Fatalf("at %v: open %q gone %q, want %q and %q", at, open, gone, wantOpen, wantGone)
		}
	}
	// Gap 2m: h1 has sessions at 0s and 5m, shown at once.
	add(ev("a", 0, "h1", "eu", 0.5, 1), ev("b", 5*minute, "h1", "eu", 0.5, 1))
	check(0, []string{"h1@0s-2m0s=1", "h1@5m0s-7m0s=1"}, nil)
	// A bridging event merges them: both wait for h1's interval.
	add(ev("c", 3*minute+30*sec, "h1", "eu", 0.5, 1))
	check(100*ms, nil, nil)
	if e.pace.waitingKeys != 1 {
		t.Fatalf("%d keys wait, want 1", e.pace.waitingKeys)
	}
	check(1000*ms, []string{"h1@0s-2m0s=1", "h1@3m30s-7m0s=2"}, []string{"h1@5m0s"})

	// Another merge, hurried by showMerged as before a checkpoint.
	add(ev("d", minute+45*sec, "h1", "eu", 0.5, 1))
	check(1100*ms, nil, nil)
	e.showMerged()
	check(1100*ms, []string{"h1@0s-7m0s=4"}, []string{"h1@3m30s"})
	if e.pace.waitingKeys != 0 {
		t.Fatalf("%d keys wait, want 0", e.pace.waitingKeys)
	}
}

// pacedEngine is an engine for a view of the test pipeline (one partition)
// with an emit interval of 1s, and a function that processes events as
// the partition's next entry.
func pacedEngine(t *testing.T, view, lateness string) (*engine, func(...event.Event)) {
	p := testPipeline(t, pipelineOpts{partitions: 1, lateness: lateness})
	e := newEngine(compile(t, p, view), 1)
	e.SetEmitInterval(time.Second)
	off := int64(0)
	return e, func(evs ...event.Event) {
		e.Process(0, off, evs)
		off += int64(len(evs))
	}
}

func sortStrings(lists ...[]string) {
	for _, l := range lists {
		for i := 1; i < len(l); i++ {
			for j := i; j > 0 && l[j] < l[j-1]; j-- {
				l[j], l[j-1] = l[j-1], l[j]
			}
		}
	}
}
