package speed

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// feed processes entries in a view run as its loop would, flushing after
// each; offsets holds each partition's next offset and is advanced.
func feed(t *testing.T, r *viewRun, entries []testEntry, offsets []int64) {
	t.Helper()
	for _, en := range entries {
		r.e.Process(en.part, offsets[en.part], en.events)
		offsets[en.part] += int64(len(en.events))
		if err := r.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckpointRestoreEqualsUninterrupted: a view that checkpoints, goes
// on, dies, and restarts from the checkpoint with an empty store ends with
// exactly the rows of a view that never stopped, final rows past the
// checkpoint appended twice to the view's topic notwithstanding.
func TestCheckpointRestoreEqualsUninterrupted(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 4, lateness: "40s"})
	rng := rand.New(rand.NewPCG(3, 3))
	events := genEvents(rng, 6000, 30, 3*60*minute)
	slices.SortFunc(events, func(a, b event.Event) int {
		return int((a.Time + rng.Int64N(60*sec)) - (b.Time + rng.Int64N(60*sec)))
	})
	entries := split(rng, events, 4, 40, true)

	for _, view := range []string{"all", "hop", "sessions"} {
		t.Run(view, func(t *testing.T) {
			// The uninterrupted run.
			refStore := newMemStore()
			ref := newTestSpeed(t, p, newMemLog(p), refStore)
			rr := ref.restoreView(t, view)
			feed(t, rr, entries, make([]int64, 4))

			for _, cut := range [][2]int{{0, 10}, {len(entries) / 3, len(entries) / 2}, {len(entries) / 2, len(entries) - 1}, {len(entries), len(entries)}} {
				log := newMemLog(p)
				first := newTestSpeed(t, p, log, newMemStore())
				r1 := first.restoreView(t, view)
				offsets := make([]int64, 4)
				feed(t, r1, entries[:cut[0]], offsets)
				data, _, err := r1.encode(timeAt(0))
				if err != nil {
					t.Fatal(err)
				}
				if err := log.SaveCheckpoint(t.Context(), first.bucket, view, data); err != nil {
					t.Fatal(err)
				}
				// Goes on past the checkpoint, appending final rows, then dies.
				feed(t, r1, entries[cut[0]:cut[1]], offsets)

				store := newMemStore()
				second := newTestSpeed(t, p, log, store)
				r2 := second.restoreView(t, view)
				if err := r2.flush(t.Context()); err != nil {
					t.Fatal(err)
				}
				// The log holds every entry; the restarted view reads
				// from its checkpointed offsets (earlier events are
				// skipped by offset).
				feed(t, r2, entries, make([]int64, 4))
				if got, want := store.dump(view), refStore.dump(view); got != want {
					t.Fatalf("checkpoint after %d entries, crash after %d: rows differ from the uninterrupted run:\n%s", cut[0], cut[1], diffLines(want, got))
				}
				if got, want := r2.e.Stats().Late+r1.e.Stats().Late, rr.e.Stats().Late; cut[0] == cut[1] && got != want {
					t.Fatalf("late events %d, uninterrupted %d", got, want)
				}
			}
			if view == "all" && len(refStore.evicted) == 0 {
				t.Fatal("no final row passed retention: the test does not cover eviction")
			}
		})
	}
}

func newTestSpeed(t *testing.T, p *pipelines.Pipeline, log Log, store Store) *Speed {
	t.Helper()
	s, err := New(p, log, store, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *Speed) restoreView(t *testing.T, view string) *viewRun {
	t.Helper()
	for _, vs := range s.views {
		if vs.view.Name == view {
			r, err := s.restore(t.Context(), vs)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatalf("no view %q", view)
	return nil
}

func testCheckpoint(t *testing.T) (*Speed, []byte) {
	t.Helper()
	p := testPipeline(t, pipelineOpts{partitions: 2})
	s := newTestSpeed(t, p, newMemLog(p), newMemStore())
	r := s.restoreView(t, "all")
	rng := rand.New(rand.NewPCG(4, 4))
	feed(t, r, split(rng, genEvents(rng, 500, 10, 10*minute), 2, 20, true), make([]int64, 2))
	data, _, err := r.encode(timeAt(0))
	if err != nil {
		t.Fatal(err)
	}
	return s, data
}

func TestCheckpointRoundTrip(t *testing.T) {
	s, data := testCheckpoint(t)
	h, cr, err := decodeCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	r := &viewRun{s: s, vs: s.views[0], e: newEngine(s.views[0].plan, 2), em: newEmitter(s.p, s.views[0].view, s.store)}
	if err := r.restoreFrom(h, cr); err != nil {
		t.Fatal(err)
	}
	again, _, err := r.encode(timeAt(0))
	if err != nil {
		t.Fatal(err)
	}
	// Map order differs between encodings; the same windows must come back.
	if len(again) != len(data) || r.e.OpenWindows() == 0 {
		t.Fatalf("re-encoded %d bytes, %d windows; the original has %d bytes", len(again), r.e.OpenWindows(), len(data))
	}
	if h.view != "all" || h.def != s.views[0].def || len(h.parts) != 2 {
		t.Fatalf("header %+v", h)
	}
}

func TestCheckpointCorruption(t *testing.T) {
	s, data := testCheckpoint(t)
	restore := func(d []byte) error {
		h, cr, err := decodeCheckpoint(d)
		if err != nil {
			return err
		}
		r := &viewRun{s: s, vs: s.views[0], e: newEngine(s.views[0].plan, 2), em: newEmitter(s.p, s.views[0].view, s.store)}
		return r.restoreFrom(h, cr)
	}
	for i := range data {
		d := bytes.Clone(data)
		d[i] ^= 0x10
		err := restore(d)
		if !errors.Is(err, ErrCorruptCheckpoint) && !errors.Is(err, ErrCheckpointVersion) {
			t.Fatalf("byte %d flipped: err %v, want ErrCorruptCheckpoint", i, err)
		}
	}
	for _, n := range []int{0, 3, 10, len(data) / 2, len(data) - 1} {
		if err := restore(data[:n]); !errors.Is(err, ErrCorruptCheckpoint) {
			t.Fatalf("truncated to %d bytes: err %v, want ErrCorruptCheckpoint", n, err)
		}
	}
	d := bytes.Clone(data)
	d[4] = 99
	if err := restore(d); !errors.Is(err, ErrCheckpointVersion) {
		t.Fatalf("version 99: err %v, want ErrCheckpointVersion", err)
	}
}
