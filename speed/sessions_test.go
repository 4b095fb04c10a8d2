package speed

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
)

// TestEngineSessionBridging: two sessions of a key merge when an event
// bridges them; the row of the absorbed one is retracted from the store.
func TestEngineSessionBridging(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 1, lateness: "4m"}) // gap 2m
	e := newEngine(compile(t, p, "sessions"), 1)
	e.Process(0, 0, []event.Event{ev("a", 0, "h1", "eu", 0.1, 1), ev("b", 3*minute, "h1", "eu", 0.1, 1)})
	open, final, gone := flushed(e)
	slices.Sort(open)
	if want := []string{"h1@0s-2m0s=1", "h1@3m0s-5m0s=1"}; !slices.Equal(open, want) || len(final)+len(gone) != 0 {
		t.Fatalf("open %v final %v gone %v; want open %v", open, final, gone, want)
	}
	// 1m30s is within 2m of both: one session [0, 5m) of three events.
	e.Process(0, 2, []event.Event{ev("c", 90*sec, "h1", "us", 0.1, 1)})
	open, final, gone = flushed(e)
	if want := []string{"h1@0s-5m0s=3"}; !slices.Equal(open, want) || len(final) != 0 {
		t.Fatalf("open %v final %v; want open %v", open, final, want)
	}
	if want := []string{"h1@3m0s"}; !slices.Equal(gone, want) {
		t.Fatalf("gone %v, want %v", gone, want)
	}
	// An event before the session moves its start: the old row goes.
	e.Process(0, 3, []event.Event{ev("d", -30*sec, "h1", "eu", 0.1, 1)})
	open, _, gone = flushed(e)
	if want := []string{"h1@-30s-5m0s=4"}; !slices.Equal(open, want) || !slices.Equal(gone, []string{"h1@0s"}) {
		t.Fatalf("open %v gone %v; want open %v gone [h1@0s]", open, gone, want)
	}
	// The session is final once the watermark reaches its end (5m): an
	// event at 9m gives watermark 5m.
	e.Process(0, 4, []event.Event{ev("e", 9*minute, "h1", "eu", 0.1, 1)})
	_, final, _ = flushed(e)
	if want := []string{"h1@-30s-5m0s=4"}; !slices.Equal(final, want) {
		t.Fatalf("final %v, want %v", final, want)
	}
	// 4m59s is before the watermark: late, even though it is within the
	// gap of the closed session's last event.
	e.Process(0, 5, []event.Event{ev("f", 4*minute+59*sec, "h1", "eu", 0.1, 1)})
	if s := e.Stats(); s.Late != 1 {
		t.Fatalf("%d late, want 1", s.Late)
	}
}

// TestEngineSessionsEndToEndInStore: through the emitter, the store ends
// with exactly the surviving sessions.
func TestEngineSessionsEndToEndInStore(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 1, lateness: "1h"})
	store := newMemStore()
	l, err := NewLocal(p, store, timeAt(0), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, at := range []int64{0, 3 * minute, 90 * sec, 10 * minute} {
		if err := l.Append("metrics", 0, []event.Event{ev(fmt.Sprint(i), at, "h1", "eu", 0.1, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	got := store.dump("sessions")
	want := "[2026-01-02T15:00:00Z 2026-01-02T15:05:00Z) h1|0|0; final=false => |3|0 eu|0|0 eu|0|0\n" +
		"[2026-01-02T15:10:00Z 2026-01-02T15:12:00Z) h1|0|0; final=false => |1|0 eu|0|0 eu|0|0"
	if got != want {
		t.Fatalf("store:\n%s\nwant:\n%s", got, want)
	}
}

// TestSessionListMatchesPlan: the engine's session list gives the same
// sessions and states as plan.Sessions for the same events.
func TestSessionListMatchesPlan(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 1})
	pl := compile(t, p, "sessions")
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 50 {
		var ref plan.Sessions
		var mine sessionList
		var goneRef, goneMine []plan.TimeWindow
		for i := range 40 {
			e := ev(fmt.Sprint(i), rng.Int64N(40)*30*sec, "h", fmt.Sprintf("r%d", rng.IntN(3)), 0, 0)
			_, goneRef = pl.AddSession(&ref, &e, goneRef)
			_, goneMine = mine.addEvent(pl, 2*minute, &e, goneMine)
		}
		if !slices.Equal(goneRef, goneMine) {
			t.Fatalf("round %d: gone %v, plan.Sessions %v", round, goneMine, goneRef)
		}
		if len(ref.List()) != len(mine) {
			t.Fatalf("round %d: %d sessions, plan.Sessions %d", round, len(mine), len(ref.List()))
		}
		for i, s := range ref.List() {
			m := mine[i]
			if s.TimeWindow != m.TimeWindow || fmt.Sprint(pl.Finalize(s.State)) != fmt.Sprint(pl.Finalize(m.State)) {
				t.Fatalf("round %d session %d: %v %v, plan.Sessions %v %v", round, i,
					m.TimeWindow, pl.Finalize(m.State), s.TimeWindow, pl.Finalize(s.State))
			}
		}
	}
}
