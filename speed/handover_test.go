package speed

import (
	"math"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// TestHandoverDeletesMergedSessions: a merger that takes over a partition
// in a process's store (a replica starting again from a newer checkpoint,
// the partition's run replacing its replica) deletes the open session rows
// its predecessor showed and it does not: a session that merged into
// another between what the predecessor applied and the checkpoint. It
// keeps those it shows open or final, and the final rows read back from
// the view's topic.
func TestHandoverDeletesMergedSessions(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "0s"})
	pl := compile(t, p, "sessions")
	// partialOf is the partial record of source partition src after the
	// given events (all of group h1), as its stage 1 sends it.
	partialOf := func(src int, events ...event.Event) partial {
		e := newPartialEngine(pl)
		e.Process(0, 0, events)
		var out output
		e.Flush(time.Time{}, &out)
		if len(out.Open) != 1 {
			t.Fatalf("stage 1 sent %d open sessions, want 1", len(out.Open))
		}
		r := out.Open[0]
		return partial{source: src, epoch: 1, asOf: int64(len(events)), kind: pipelines.PartialOpen,
			key: r.Key, start: r.Start, end: r.End, state: []byte(r.Aggs[0].S)}
	}
	mark := func(src int, newest int64) partial {
		return partial{source: src, epoch: 1, asOf: 1 << 20, kind: pipelines.PartialMark, newest: base + newest, seen: true}
	}
	late := partialOf(0, ev("a", 33*sec, "h1", "eu", 0.5, 1))     // [15:00:33, 15:02:33)
	early := partialOf(1, ev("b", 0, "h1", "eu", 0.5, 1))         // [15:00:00, 15:02:00): merges it into [15:00:00, 15:02:33)
	other := partialOf(0, ev("c", 40*minute, "h2", "eu", 0.5, 1)) // a session of another group

	newEm := func(store *memStore) *emitter {
		return &emitter{view: pl.View(), store: store, retention: math.MaxInt64 / 4, step: 1, evicted: plan.NoWatermark,
			parts: 1, ends: make([]int64, 1), ranges: make([][]finalRange, 1)}
	}
	// turn runs one merger's turn in the store: it applies recs, shows
	// its first Flush, takes over, and gives the turn back.
	turn := func(t *testing.T, hs *handovers, store *memStore, retained []viewrow.Row, recs ...partial) *merger {
		t.Helper()
		ho, err := hs.take(t.Context(), "sessions", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer ho.give()
		m := newMerger(pl, 2)
		for i := range recs {
			if err := m.Apply(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		if len(retained) > 0 { // as showRetained does
			store.PutSpeed(pl.View(), retained)
			for _, r := range retained {
				if ids := ho.retainedIDs(); ids != nil {
					ids[rowID(r)] = true
				}
			}
		}
		var out output
		m.Flush(time.Time{}, &out)
		newEm(store).emit(&out)
		ho.reconcile(m, &out, store, pl.View())
		return m
	}
	starts := func(store *memStore) map[int64]bool { // start (s after base) -> final
		got := map[int64]bool{}
		for _, r := range store.rows[pl.View()] {
			got[(r.Start-base)/sec] = r.Final
		}
		return got
	}
	check := func(t *testing.T, store *memStore, want map[int64]bool) {
		t.Helper()
		got := starts(store)
		if len(got) != len(want) {
			t.Fatalf("store holds sessions starting at %v (s: final), want %v", got, want)
		}
		for s, f := range want {
			if g, ok := got[s]; !ok || g != f {
				t.Fatalf("store holds sessions starting at %v (s: final), want %v", got, want)
			}
		}
	}

	t.Run("merged away", func(t *testing.T) {
		hs, store := newHandovers(), newMemStore()
		turn(t, hs, store, nil, late, other) // the replica, behind
		check(t, store, map[int64]bool{33: false, 40 * 60: false})
		// The next merger starts from a checkpoint past the merge.
		turn(t, hs, store, nil, late, early, other)
		check(t, store, map[int64]bool{0: false, 40 * 60: false})
	})
	t.Run("merged and final", func(t *testing.T) {
		hs, store := newHandovers(), newMemStore()
		turn(t, hs, store, nil, late, other)
		// The checkpoint's watermark passed the merged session, whose final
		// row comes back from the view's topic.
		final := viewrow.Row{Start: base, End: base + 153*sec, Group: []event.Value{{S: "h1", Valid: true}},
			Aggs: []event.Value{{I: 2, Valid: true}}, Final: true}
		m := turn(t, hs, store, []viewrow.Row{final}, other, mark(0, 10*minute), mark(1, 10*minute))
		if wm, _ := m.Watermark(); wm <= final.End {
			t.Fatalf("watermark %d, want past %d", wm, final.End)
		}
		check(t, store, map[int64]bool{0: true, 40 * 60: false})
	})
	t.Run("final with the same start", func(t *testing.T) {
		hs, store := newHandovers(), newMemStore()
		turn(t, hs, store, nil, late, other)
		final := viewrow.Row{Start: base + 33*sec, End: base + 153*sec, Group: []event.Value{{S: "h1", Valid: true}},
			Aggs: []event.Value{{I: 1, Valid: true}}, Final: true}
		turn(t, hs, store, []viewrow.Row{final}, other, mark(0, 10*minute), mark(1, 10*minute))
		check(t, store, map[int64]bool{33: true, 40 * 60: false})
		// And when the merger's first Flush finalises it.
		hs, store = newHandovers(), newMemStore()
		turn(t, hs, store, nil, late, other)
		turn(t, hs, store, nil, late, other, mark(0, 10*minute), mark(1, 10*minute))
		check(t, store, map[int64]bool{33: true, 40 * 60: false})
	})
	t.Run("predecessor stopped before its first flush", func(t *testing.T) {
		hs, store := newHandovers(), newMemStore()
		turn(t, hs, store, nil, late, other)
		ho, err := hs.take(t.Context(), "sessions", 0)
		if err != nil {
			t.Fatal(err)
		}
		ho.give() // a run that failed to restore: the rows stay handed over
		turn(t, hs, store, nil, late, early, other)
		check(t, store, map[int64]bool{0: false, 40 * 60: false})
	})
}
