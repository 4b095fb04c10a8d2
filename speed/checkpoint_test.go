package speed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
	"github.com/lambdaflow/lambdaflow/internal/fakeclock"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
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
			ref, refClock := newTestSpeed(t, p, newMemLog(p), refStore)
			rr := ref.restoreView(t, view)
			feed(t, rr, entries, make([]int64, 4))
			settle(t, rr, refClock)

			for _, cut := range [][2]int{{0, 10}, {len(entries) / 3, len(entries) / 2}, {len(entries) / 2, len(entries) - 1}, {len(entries), len(entries)}} {
				log := newMemLog(p)
				first, _ := newTestSpeed(t, p, log, newMemStore())
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
				second, clock := newTestSpeed(t, p, log, store)
				r2 := second.restoreView(t, view)
				if err := r2.flush(t.Context()); err != nil {
					t.Fatal(err)
				}
				// The log holds every entry; the restarted view reads
				// from its checkpointed offsets (earlier events are
				// skipped by offset).
				feed(t, r2, entries, make([]int64, 4))
				settle(t, r2, clock)
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

// newTestSpeed returns a Speed on a clock that moves only when told to.
func newTestSpeed(t *testing.T, p *pipelines.Pipeline, log Log, store Store) (*Speed, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New(timeAt(0))
	s, err := New(p, log, store, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

// settle moves the clock past the emit interval and flushes, so that every
// open window shows its current value, however the changes were paced.
func settle(t *testing.T, r *viewRun, clock *fakeclock.Clock) {
	t.Helper()
	every, _ := r.vs.view.Emit.Open()
	clock.Add(2 * every)
	if err := r.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
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
	s, _ := newTestSpeed(t, p, newMemLog(p), newMemStore())
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

// TestRestartRemovesOrphanedOpenRows: a session view grouped by a field
// other than the partition key forms its sessions in the order partitions
// are read. A run killed before its checkpoint showed a session the replay
// never forms (it merges the events into an earlier one): the restarted
// view removes that row from the view's topic with a tombstone, so that
// the topic, upserted by group and window as a sink does, ends equal to
// the store.
func TestRestartRemovesOrphanedOpenRows(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "10m"})
	p.ViewByName("sessions").GroupBy = []string{"region"}
	log := newMemLog(p)
	entries := []testEntry{
		{part: 0, events: []event.Event{ev("a", 0, "h1", "eu", 0.5, 1)}},
		{part: 0, events: []event.Event{ev("b", 3*minute+30*sec, "h1", "eu", 0.5, 1)}},
		{part: 1, events: []event.Event{ev("c", 5*minute, "h2", "eu", 0.5, 1)}},
	}

	// The first run reads partition 1 first, shows eu's session at 5m and
	// dies before any checkpoint.
	first, _ := newTestSpeed(t, p, log, newMemStore())
	feed(t, first.restoreView(t, "sessions"), entries[2:], make([]int64, 2))
	if rows := log.viewRows(p, "sessions")["eu|0|0;"]; len(rows) != 1 || rows[0].Start != base+5*minute || rows[0].Final {
		t.Fatalf("the first run appended %+v, want eu's open session at 5m", rows)
	}

	store := newMemStore()
	second, clock := newTestSpeed(t, p, log, store)
	r := second.restoreView(t, "sessions")
	feed(t, r, entries, make([]int64, 2))
	settle(t, r, clock)

	topic := map[string]viewrow.Row{}
	for _, rows := range log.viewRows(p, "sessions") {
		for _, row := range rows {
			if row.Deleted {
				delete(topic, storeKey(row))
			} else {
				topic[storeKey(row)] = row
			}
		}
	}
	want := store.dump("sessions")
	if got := dumpRows(mapValues(topic)); got != want {
		t.Fatalf("the view's topic, upserted, differs from the store:\n%s", diffLines(want, got))
	}
	if want != "[2026-01-02T15:00:00Z 2026-01-02T15:02:00Z) eu|0|0; final=false => |1|0 eu|0|0 eu|0|0\n"+
		"[2026-01-02T15:03:30Z 2026-01-02T15:07:00Z) eu|0|0; final=false => |2|0 eu|0|0 eu|0|0" {
		t.Fatalf("store:\n%s", want)
	}
}

// TestFinalRanges: the ranges a checkpoint names hold the final rows of
// the view's topic still within retention, and no open row or tombstone,
// so that a restart reads back only final rows; the ranges survive the
// checkpoint.
func TestFinalRanges(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "40s"})
	rng := rand.New(rand.NewPCG(6, 6))
	events := genEvents(rng, 4000, 30, 3*60*minute)
	slices.SortFunc(events, func(a, b event.Event) int { return int(a.Time - b.Time) })
	log := newMemLog(p)
	for _, view := range []string{"all", "sessions"} {
		s, clock := newTestSpeed(t, p, log, newMemStore())
		r := s.restoreView(t, view)
		offsets := make([]int64, 2)
		for _, en := range split(rng, events, 2, 40, true) {
			feed(t, r, []testEntry{en}, offsets)
			clock.Add(300 * time.Millisecond) // open rows show now and then
		}
		v := p.ViewByName(view)
		cutoff := r.em.cutoff(r.e.wm)
		finals, opens := 0, 0
		for part := range r.em.parts {
			inRange := func(off int64) bool {
				for _, rg := range r.em.ranges[part] {
					if off >= rg.from && off < rg.to {
						return true
					}
				}
				return false
			}
			ents, _ := log.Fetch(t.Context(), view, part, 0, 1<<30)
			for _, ent := range ents {
				for i, ev := range ent.Events {
					row, _ := viewrow.FromValues(ev.Values, len(v.GroupBy), len(v.Aggregates))
					off := ent.Offset + int64(i)
					switch {
					case row.Final && row.End >= cutoff:
						finals++
						if !inRange(off) {
							t.Fatalf("%s: the final row at %d/%d is in no range %v", view, part, off, r.em.ranges[part])
						}
					case !row.Final:
						opens++
						if inRange(off) {
							t.Fatalf("%s: the ranges %v hold %d/%d, which is no final row", view, r.em.ranges[part], part, off)
						}
					}
				}
			}
		}
		if finals == 0 || opens == 0 {
			t.Fatalf("%s: %d final rows within retention and %d open rows: the test is too weak", view, finals, opens)
		}
		data, _, err := r.encode(timeAt(0))
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := decodeCheckpoint(data)
		if err != nil {
			t.Fatal(err)
		}
		for part, rs := range r.em.ranges {
			if len(h.retain[part]) != len(rs) {
				t.Fatalf("%s: %d ranges in the checkpoint, want %d", view, len(h.retain[part]), len(rs))
			}
			for i, rg := range rs {
				if got := h.retain[part][i]; got.from != rg.from || got.to != rg.to {
					t.Fatalf("%s: range %d is [%d, %d) in the checkpoint, want [%d, %d)", view, i, got.from, got.to, rg.from, rg.to)
				}
			}
		}
	}
}

// TestAddRange: touching ranges join; past maxRanges the two neighbours
// with the fewest rows between them join; trimRanges drops the ranges that
// ended before the cutoff.
func TestAddRange(t *testing.T) {
	em := &emitter{ranges: make([][]finalRange, 1)}
	em.addRange(0, finalRange{from: 0, to: 10, maxEnd: 5})
	em.addRange(0, finalRange{from: 10, to: 12, maxEnd: 7})
	if got := em.ranges[0]; len(got) != 1 || got[0] != (finalRange{0, 12, 7}) {
		t.Fatalf("touching ranges: %v", got)
	}
	for i := range maxRanges {
		gap := int64(100)
		if i == 1000 {
			gap = 3 // the fewest rows between two ranges
		}
		last := em.ranges[0][len(em.ranges[0])-1]
		em.addRange(0, finalRange{from: last.to + gap, to: last.to + gap + 1, maxEnd: int64(100 + i)})
	}
	rs := em.ranges[0]
	if len(rs) != maxRanges {
		t.Fatalf("%d ranges, want %d", len(rs), maxRanges)
	}
	if joined := rs[1000]; joined.to-joined.from != 1+3+1 || joined.maxEnd != 100+1000 {
		t.Fatalf("range 1000 is %v, want the ranges 3 rows apart joined", joined)
	}
	em.trimRanges(100 + 10) // the first range and those of i < 10
	if rs := em.ranges[0]; len(rs) != maxRanges-11 || rs[0].maxEnd != 100+10 {
		t.Fatalf("after trimming: %d ranges from %v", len(rs), rs[0])
	}
}

// TestCheckpointVersion1: a checkpoint of format 1 (whose view topic held
// final rows only, from retain to end) is read as one range per partition.
func TestCheckpointVersion1(t *testing.T) {
	b := append([]byte(checkpointMagic), 1, 0)
	b = binfmt.AppendString(b, "all")
	b = binary.LittleEndian.AppendUint64(b, 42)
	b = binary.AppendVarint(b, 7)    // saved at
	b = binary.AppendVarint(b, base) // watermark
	b = binary.AppendUvarint(b, 1)   // partitions
	b = binary.AppendVarint(b, 100)  // next
	b = append(b, 0)                 // nothing seen
	b = binary.AppendUvarint(b, 2)   // view partitions
	b = binary.AppendVarint(b, 50)   // end
	b = binary.AppendVarint(b, 20)   // retain
	b = binary.AppendVarint(b, 30)   // end
	b = binary.AppendVarint(b, 30)   // retain: nothing retained
	b = binary.AppendUvarint(b, 0)   // windows
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	h, r, err := decodeCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.retain) != 2 || len(h.retain[0]) != 1 || h.retain[0][0] != (finalRange{from: 20, to: 50}) || len(h.retain[1]) != 0 {
		t.Fatalf("ranges %v, want [[20, 50)] and none", h.retain)
	}
	if h.view != "all" || h.def != 42 || h.viewEnds[0] != 50 || h.viewEnds[1] != 30 || h.next[0] != 100 || r.Count(4) != 0 || r.Err() != nil {
		t.Fatalf("header %+v", h)
	}
}
