package speed

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// twoStages runs a view in parts as the partition runs do, without a log:
// a partial engine per source partition, records routed to a merger per
// view partition. Deliveries can be repeated and reordered per view
// partition the way the log can (a new owner replays).
type twoStages struct {
	t       testing.TB
	pl      *plan.Plan
	e1      []*engine
	m       []*merger
	em      []*emitter
	store   *memStore
	next    []int64
	epoch   []uint64
	pending [][]partial // per view partition, records not yet delivered
	out     output
}

func newTwoStages(t testing.TB, pl *plan.Plan, parts int) *twoStages {
	ts := &twoStages{t: t, pl: pl, store: newMemStore(), next: make([]int64, parts), epoch: make([]uint64, parts), pending: make([][]partial, parts)}
	for range parts {
		ts.e1 = append(ts.e1, newPartialEngine(pl))
		ts.m = append(ts.m, newMerger(pl, parts))
		ts.em = append(ts.em, &emitter{view: pl.View(), store: ts.store, retention: math.MaxInt64 / 4, step: 1, evicted: plan.NoWatermark, parts: 1, ends: make([]int64, 1), ranges: make([][]finalRange, 1)})
	}
	for p := range ts.epoch {
		ts.epoch[p] = 1
	}
	return ts
}

// process gives source partition p an entry and sends its records.
func (ts *twoStages) process(p int, events []event.Event) {
	ts.e1[p].Process(0, ts.next[p], events)
	ts.next[p] += int64(len(events))
	ts.send(p)
}

// send flushes source partition p's engine into records, as flush1 does.
func (ts *twoStages) send(p int) {
	e := ts.e1[p]
	var out output
	e.Flush(time.Time{}, &out)
	asOf := e.Next(0)
	add := func(kind int, rows []viewrow.Row) {
		for _, r := range rows {
			g := event.ViewRowPartition(r.Group, len(ts.m))
			pr := partial{source: p, epoch: ts.epoch[p], asOf: asOf, kind: kind, key: r.Key, start: r.Start, end: r.End}
			if kind != pipelines.PartialGone {
				pr.state = []byte(r.Aggs[0].S)
			}
			ts.pending[g] = append(ts.pending[g], pr)
		}
	}
	add(pipelines.PartialGone, out.Gone)
	add(pipelines.PartialOpen, out.Open)
	add(pipelines.PartialFinal, out.Final)
	newest, seen := e.MaxTime(0)
	for g := range ts.pending {
		ts.pending[g] = append(ts.pending[g], partial{source: p, epoch: ts.epoch[p], asOf: asOf, kind: pipelines.PartialMark, newest: newest, seen: seen, idle: e.Idle(0)})
	}
}

// deliver applies the pending records of view partition g, each once or,
// with replay, a prefix of them twice, and shows the result.
func (ts *twoStages) deliver(g int, replay bool) {
	recs := ts.pending[g]
	ts.pending[g] = nil
	if replay && len(recs) > 1 {
		recs = append(slices.Clone(recs[:len(recs)/2]), recs...)
	}
	for i := range recs {
		if err := ts.m[g].Apply(&recs[i]); err != nil {
			ts.t.Fatal(err)
		}
	}
	ts.m[g].Flush(time.Time{}, &ts.out)
	ts.em[g].emit(&ts.out)
	if err := ts.em[g].flushPending(ts.t.Context()); err != nil {
		ts.t.Fatal(err)
	}
}

func (ts *twoStages) deliverAll(replay bool) {
	for g := range ts.m {
		ts.deliver(g, replay)
	}
}

// TestTwoStagesEqualOneEngine: a view computed in parts (an engine per
// source partition, a merger per view partition, records delivered with
// repeats and in any interleaving across view partitions) shows exactly
// the rows of one engine over every partition: open windows, final
// windows, late events and all.
func TestTwoStagesEqualOneEngine(t *testing.T) {
	p := testPipeline(t, pipelineOpts{lateness: "20s"})
	const parts = 4
	for _, view := range []string{"all", "hop", "sessions"} {
		t.Run(view, func(t *testing.T) {
			pl := compile(t, p, view)
			rng := rand.New(rand.NewPCG(7, uint64(len(view))))
			events := genEvents(rng, 4000, 40, 90*minute)
			slices.SortFunc(events, func(a, b event.Event) int {
				return int((a.Time + rng.Int64N(90*sec)) - (b.Time + rng.Int64N(90*sec)))
			})
			entries := split(rng, events, parts, 30, true)

			one := newEngine(pl, parts)
			oneStore := newMemStore()
			oneEm := &emitter{view: pl.View(), store: oneStore, retention: math.MaxInt64 / 4, step: 1, evicted: plan.NoWatermark, parts: 1, ends: make([]int64, 1), ranges: make([][]finalRange, 1)}
			next := make([]int64, parts)
			var out output

			ts := newTwoStages(t, pl, parts)
			for i, en := range entries {
				one.Process(en.part, next[en.part], en.events)
				next[en.part] += int64(len(en.events))
				one.Flush(time.Time{}, &out)
				oneEm.emit(&out)
				if err := oneEm.flushPending(t.Context()); err != nil {
					t.Fatal(err)
				}
				ts.process(en.part, en.events)
				// Deliver to the view partitions at random moments.
				if rng.IntN(3) == 0 {
					ts.deliver(rng.IntN(parts), i%5 == 0)
				}
			}
			ts.deliverAll(true)
			// Mid-stream: the same open and final rows.
			if got, want := ts.store.dump(view), oneStore.dump(view); got != want {
				t.Fatalf("rows differ from one engine:\n%s", diffLines(want, got))
			}
			late := uint64(0)
			for _, e := range ts.e1 {
				late += e.Stats().Late
			}
			for _, m := range ts.m {
				late += m.Late()
			}
			if late != one.Stats().Late || late == 0 {
				t.Fatalf("late events %d in parts, %d in one engine (want equal and some)", late, one.Stats().Late)
			}
			if !bytes.Contains([]byte(oneStore.dump(view)), []byte("final=true")) || !bytes.Contains([]byte(oneStore.dump(view)), []byte("final=false")) {
				t.Fatal("the reference has no final or no open rows; the test is too weak")
			}
		})
	}
}

// TestMergerSkipsOlderAndStaleRecords: a record older than what was
// applied from its source partition, or from an owner that was replaced,
// changes nothing.
func TestMergerSkipsOlderAndStaleRecords(t *testing.T) {
	p := testPipeline(t, pipelineOpts{lateness: "0s"})
	pl := compile(t, p, "hop")
	m := newMerger(pl, 1)
	e := newPartialEngine(pl)
	e.Process(0, 0, []event.Event{ev("a", 10*sec, "h1", "eu", 0.5, 100)})
	var out output
	e.Flush(time.Time{}, &out)
	r := out.Open[0]
	state := func(rows int64) []byte {
		st := pl.NewState()
		for i := range rows {
			ev := ev("x", 10*sec+i, "h1", "eu", 0.5, 1)
			pl.Update(st, &ev)
		}
		b, _ := st.AppendBinary(nil)
		return b
	}
	apply := func(epoch uint64, asOf, rows int64) {
		pr := partial{source: 0, epoch: epoch, asOf: asOf, kind: pipelines.PartialOpen, key: r.Key, start: r.Start, end: r.End, state: state(rows)}
		if err := m.Apply(&pr); err != nil {
			t.Fatal(err)
		}
	}
	events := func() int64 {
		m.Flush(time.Time{}, &out)
		for _, o := range out.Open {
			if o.Start == r.Start {
				return o.Aggs[0].I
			}
		}
		return -1
	}
	apply(2, 10, 3)
	if n := events(); n != 3 {
		t.Fatalf("%d events, want 3", n)
	}
	apply(2, 5, 1)  // older
	apply(1, 20, 9) // an earlier owner
	m.units[unitKey{r.Key, r.Start}].dirty = true
	if n := events(); n != 3 {
		t.Fatalf("%d events after older and stale records, want 3", n)
	}
	apply(3, 12, 4) // the next owner, past what was applied
	if n := events(); n != 4 {
		t.Fatalf("%d events, want 4", n)
	}
}

func testPartCheckpoint(t testing.TB) (*twoStages, []byte) {
	t.Helper()
	return testPartCheckpointN(t, 500)
}

// testPartCheckpointN is testPartCheckpoint of n events (a fuzz seed wants
// a small one: every new input is minimised, at a cost that grows with it).
func testPartCheckpointN(t testing.TB, n int) (*twoStages, []byte) {
	t.Helper()
	p := testPipeline(t, pipelineOpts{partitions: 2})
	pl := compile(t, p, "all")
	ts := newTwoStages(t, pl, 2)
	rng := rand.New(rand.NewPCG(4, 4))
	for _, en := range split(rng, genEvents(rng, n, 10, 10*minute), 2, 20, true) {
		ts.process(en.part, en.events)
	}
	ts.deliverAll(false)
	em := newEmitter(p, p.ViewByName("all"), newMemStore())
	data, err := encodePart(nil, "all", 42, 7, 1, 3, ts.e1[1], ts.m[1], 99, em)
	if err != nil {
		t.Fatal(err)
	}
	return ts, data
}

func TestPartCheckpointRoundTrip(t *testing.T) {
	ts, data := testPartCheckpoint(t)
	e1, m := newPartialEngine(ts.pl), newMerger(ts.pl, 2)
	h, err := decodePart(data, e1, m)
	if err != nil {
		t.Fatal(err)
	}
	if h.view != "all" || h.def != 42 || h.savedAt != 7 || h.part != 1 || h.epoch != 3 || h.partialsNext != 99 {
		t.Fatalf("header %+v", h)
	}
	if e1.OpenWindows() != ts.e1[1].OpenWindows() || e1.Next(0) != ts.e1[1].Next(0) || m.OpenWindows() != ts.m[1].OpenWindows() || m.wm != ts.m[1].wm {
		t.Fatalf("restored %d windows at %d, %d units; had %d at %d, %d", e1.OpenWindows(), e1.Next(0), m.OpenWindows(),
			ts.e1[1].OpenWindows(), ts.e1[1].Next(0), ts.m[1].OpenWindows())
	}
	if e1.OpenWindows() == 0 || m.OpenWindows() == 0 {
		t.Fatal("nothing open: the test is too weak")
	}
}

func TestPartCheckpointCorruption(t *testing.T) {
	ts, data := testPartCheckpoint(t)
	restore := func(d []byte) error {
		_, err := decodePart(d, newPartialEngine(ts.pl), newMerger(ts.pl, 2))
		return err
	}
	for i := range data {
		d := bytes.Clone(data)
		d[i] ^= 0x10
		if err := restore(d); !errors.Is(err, ErrCorruptCheckpoint) && !errors.Is(err, ErrCheckpointVersion) {
			t.Fatalf("byte %d flipped: err %v, want ErrCorruptCheckpoint", i, err)
		}
	}
	for _, n := range []int{0, 3, 10, len(data) / 2, len(data) - 1} {
		if err := restore(data[:n]); !errors.Is(err, ErrCorruptCheckpoint) {
			t.Fatalf("truncated to %d bytes: err %v, want ErrCorruptCheckpoint", n, err)
		}
	}
	d := bytes.Clone(data)
	d[4] = 1
	if err := restore(d); !errors.Is(err, ErrCheckpointVersion) {
		t.Fatalf("version 1: err %v, want ErrCheckpointVersion", err)
	}
}

// TestMergerPacesOpenRows: with an emit interval the merger shows a
// window's first change at once, holds later ones until the interval has
// passed since it was last shown (then shows the newest), shows every
// waiting row when asked (a checkpoint, a soft stop), and never holds a
// final row back.
func TestMergerPacesOpenRows(t *testing.T) {
	p := testPipeline(t, pipelineOpts{lateness: "0s"})
	pl := compile(t, p, "all")
	m := newMerger(pl, 1)
	m.SetEmitInterval(time.Second)
	e := newPartialEngine(pl)
	var out output
	e.Process(0, 0, []event.Event{ev("a", 10*sec, "h1", "eu", 0.5, 100)})
	e.Flush(time.Time{}, &out)
	key, start, end := out.Open[0].Key, out.Open[0].Start, out.Open[0].End
	state := func(rows int64) []byte {
		st := pl.NewState()
		for i := range rows {
			ev := ev("x", 10*sec+i, "h1", "eu", 0.5, 1)
			pl.Update(st, &ev)
		}
		b, _ := st.AppendBinary(nil)
		return b
	}
	asOf := int64(0)
	apply := func(rows int64) {
		asOf++
		pr := partial{source: 0, epoch: 1, asOf: asOf, kind: pipelines.PartialOpen, key: key, start: start, end: end, state: state(rows)}
		if err := m.Apply(&pr); err != nil {
			t.Fatal(err)
		}
	}
	t0 := timeAt(0)
	shown := func(at time.Duration) []string {
		m.Flush(t0.Add(at), &out)
		var got []string
		for _, r := range out.Open {
			got = append(got, fmt.Sprintf("open %d", r.Aggs[0].I))
		}
		for _, r := range out.Final {
			got = append(got, fmt.Sprintf("final %d", r.Aggs[0].I))
		}
		return got
	}
	check := func(at time.Duration, want ...string) {
		t.Helper()
		if got := shown(at); !slices.Equal(got, want) {
			t.Fatalf("at %v: shown %q, want %q", at, got, want)
		}
	}
	apply(1)
	check(0, "open 1") // the first change at once
	apply(2)
	check(300 * time.Millisecond) // within the interval: held
	apply(3)
	check(900 * time.Millisecond)
	check(time.Second, "open 3") // the interval passed: the newest
	check(1500 * time.Millisecond)
	apply(4)
	check(1600 * time.Millisecond)
	m.showWaiting()
	check(1700*time.Millisecond, "open 4") // asked: shown at once
	apply(5)
	// The watermark passes the window: its final row is not held back.
	pr := partial{source: 0, epoch: 1, asOf: asOf + 1, kind: pipelines.PartialMark, newest: end, seen: true}
	if err := m.Apply(&pr); err != nil {
		t.Fatal(err)
	}
	check(1800*time.Millisecond, "final 5")
}
