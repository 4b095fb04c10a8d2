package speed

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// run feeds events to a fresh engine for view, as entries of the given
// partitions (in the order given), then forces the watermark past
// everything, and returns every row shown, keyed by window and group.
func runEngine(t testing.TB, pl *plan.Plan, parts int, entries []testEntry, flushEvery int) (*engine, *memStore) {
	t.Helper()
	e := newEngine(pl, parts)
	store := newMemStore()
	em := &emitter{view: pl.View(), store: store, retention: math.MaxInt64 / 4, step: 1, evicted: plan.NoWatermark, parts: 1, ends: make([]int64, 1), ranges: make([][]finalRange, 1)}
	var out output
	next := make([]int64, parts)
	for i, en := range entries {
		e.Process(en.part, next[en.part], en.events)
		next[en.part] += int64(len(en.events))
		if flushEvery > 0 && i%flushEvery == 0 {
			e.Flush(time.Time{}, &out)
			em.emit(&out)
		}
	}
	e.Flush(time.Time{}, &out)
	em.emit(&out)
	e.AdvanceWatermark(base + 1000*60*minute)
	e.Flush(time.Time{}, &out)
	em.emit(&out)
	return e, store
}

type testEntry struct {
	part   int
	events []event.Event
}

// genEvents returns n random events over span µs from base: few regions,
// hosts h0..h(hosts-1), a tenth with a negative cpu (filtered out by the
// "all" view), times on whole seconds so that first and last meet ties.
func genEvents(rng *rand.Rand, n, hosts int, span int64) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		at := rng.Int64N(span/sec) * sec
		cpu := rng.Float64()
		if rng.IntN(10) == 0 {
			cpu = -cpu
		}
		out[i] = ev(fmt.Sprintf("e%05d", i), at, fmt.Sprintf("h%d", rng.IntN(hosts)), fmt.Sprintf("r%d", rng.IntN(3)), cpu, rng.Int64N(1e6))
		if rng.IntN(2) == 0 {
			out[i].Values[5] = event.Value{S: "n", Valid: true}
		}
	}
	return out
}

// split deals events to parts partitions (by host, or at random), keeps
// each partition's events in the given order and cuts them into entries of
// 1 to maxEntry events, then interleaves the partitions' entries at random.
func split(rng *rand.Rand, events []event.Event, parts, maxEntry int, byHost bool) []testEntry {
	per := make([][]event.Event, parts)
	for _, e := range events {
		p := rng.IntN(parts)
		if byHost {
			p = int(fnv32(e.Values[1].S) % uint32(parts))
		}
		per[p] = append(per[p], e)
	}
	queues := make([][]testEntry, parts)
	for p, evs := range per {
		for len(evs) > 0 {
			k := min(len(evs), 1+rng.IntN(maxEntry))
			queues[p] = append(queues[p], testEntry{part: p, events: evs[:k]})
			evs = evs[k:]
		}
	}
	var out []testEntry
	for {
		var live []int
		for p, q := range queues {
			if len(q) > 0 {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			return out
		}
		p := live[rng.IntN(len(live))]
		out = append(out, queues[p][0])
		queues[p] = queues[p][1:]
	}
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// TestEngineOrderAndPartitioningInvariance: the same events in any order,
// any partitioning and any batching give the same final windows, equal to
// a direct computation of every aggregate.
func TestEngineOrderAndPartitioningInvariance(t *testing.T) {
	// Lateness longer than the span: no event is ever late, whatever the
	// order, so every order must give every window all its events.
	p := testPipeline(t, pipelineOpts{lateness: "2h"})
	for _, view := range []string{"all", "hop", "sessions"} {
		t.Run(view, func(t *testing.T) {
			pl := compile(t, p, view)
			rng := rand.New(rand.NewPCG(1, uint64(len(view))))
			events := genEvents(rng, 3000, 40, 30*minute)
			want := dumpRows(reference(t, view, events))
			for round := range 6 {
				shuffled := slices.Clone(events)
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				parts := 1 + rng.IntN(6)
				e, store := runEngine(t, pl, parts, split(rng, shuffled, parts, 50, false), rng.IntN(5))
				got := store.dump(view)
				if round == 0 {
					compareWithReference(t, view, want, got)
					want = got // later rounds must match bit for bit
				} else if got != want {
					t.Fatalf("round %d (%d partitions): rows differ from round 0:\n%s", round, parts, diffLines(want, got))
				}
				if s := e.Stats(); s.Late != 0 || s.Events != 3000 {
					t.Fatalf("stats %+v: want 3000 events, none late", s)
				}
				if e.OpenWindows() != 0 {
					t.Fatalf("%d windows still open after the final watermark", e.OpenWindows())
				}
			}
		})
	}
}

// TestEngineInterleavingInvariance: with a short lateness some events are
// late; which ones depends only on each partition's own order, so any
// interleaving of the partitions and any batching gives the same final
// windows and the same late count.
func TestEngineInterleavingInvariance(t *testing.T) {
	p := testPipeline(t, pipelineOpts{lateness: "20s"})
	for _, view := range []string{"all", "hop", "sessions"} {
		t.Run(view, func(t *testing.T) {
			pl := compile(t, p, view)
			rng := rand.New(rand.NewPCG(2, uint64(len(view))))
			// Mostly ordered with jitter of up to 90 s: some within
			// lateness, some beyond.
			events := genEvents(rng, 3000, 40, 30*minute)
			slices.SortFunc(events, func(a, b event.Event) int {
				return cmp.Compare(a.Time+rng.Int64N(90*sec), b.Time+rng.Int64N(90*sec))
			})
			var want string
			var wantLate uint64
			for round := range 6 {
				entries := split(rng, events, 4, 1+rng.IntN(80), true)
				e, store := runEngine(t, pl, 4, entries, rng.IntN(4))
				got := store.dump(view)
				if round == 0 {
					want, wantLate = got, e.Stats().Late
					if wantLate == 0 {
						t.Fatal("no event was late: the test does not test lateness")
					}
					continue
				}
				if got != want {
					t.Fatalf("round %d: rows differ from round 0:\n%s", round, diffLines(want, got))
				}
				if l := e.Stats().Late; l != wantLate {
					t.Fatalf("round %d: %d late events, round 0 had %d", round, l, wantLate)
				}
			}
		})
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)) && b.Len() < 4000; i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d\n  want %s\n  got  %s\n", i, a, c)
		}
	}
	return b.String()
}

// reference computes a view's final rows directly from the events, without
// the plan: windows by arithmetic, aggregates by definition.
func reference(t testing.TB, view string, events []event.Event) []viewrow.Row {
	t.Helper()
	type gw struct {
		group      string
		start, end int64
	}
	groups := map[gw][]event.Event{}
	switch view {
	case "all":
		for _, e := range events {
			if e.Values[3].F < 0 {
				continue
			}
			s := e.Time - ((e.Time%minute)+minute)%minute
			k := gw{e.Values[2].S, s, s + minute}
			groups[k] = append(groups[k], e)
		}
	case "hop":
		for _, e := range events {
			for s := e.Time - ((e.Time%minute)+minute)%minute; s > e.Time-3*minute; s -= minute {
				k := gw{e.Values[1].S, s, s + 3*minute}
				groups[k] = append(groups[k], e)
			}
		}
	case "sessions":
		byHost := map[string][]event.Event{}
		for _, e := range events {
			byHost[e.Values[1].S] = append(byHost[e.Values[1].S], e)
		}
		for host, evs := range byHost {
			slices.SortFunc(evs, func(a, b event.Event) int { return cmp.Compare(a.Time, b.Time) })
			start := 0
			for i := 1; i <= len(evs); i++ {
				if i == len(evs) || evs[i].Time-evs[i-1].Time >= 2*minute {
					k := gw{host, evs[start].Time, evs[i-1].Time + 2*minute}
					groups[k] = evs[start:i]
					start = i
				}
			}
		}
	}
	var rows []viewrow.Row
	for k, evs := range groups {
		r := viewrow.Row{Start: k.start, End: k.end, Group: []event.Value{{S: k.group, Valid: true}}, Final: true}
		switch view {
		case "all":
			r.Aggs = referenceAll(evs)
		case "hop":
			var sum int64
			for _, e := range evs {
				sum += e.Values[4].I
			}
			r.Aggs = []event.Value{{I: int64(len(evs)), Valid: true}, {I: sum, Valid: true}}
		case "sessions":
			first, last := firstLast(evs)
			r.Aggs = []event.Value{{I: int64(len(evs)), Valid: true}, first.Values[2], last.Values[2]}
		}
		rows = append(rows, r)
	}
	return rows
}

// firstLast orders by event time, then id (the plan's documented rule).
func firstLast(evs []event.Event) (first, last event.Event) {
	s := slices.Clone(evs)
	slices.SortFunc(s, func(a, b event.Event) int {
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return s[0], s[len(s)-1]
}

// referenceAll computes the "all" view's aggregates by definition.
func referenceAll(evs []event.Event) []event.Value {
	n := int64(len(evs))
	var bytes int64
	cpuSum := new(big.Float).SetPrec(4096)
	cpus := make([]float64, 0, n)
	bs := make([]float64, 0, n)
	hosts := map[string]bool{}
	minCPU, maxCPU := math.Inf(1), math.Inf(-1)
	minB, maxB := int64(math.MaxInt64), int64(math.MinInt64)
	started := int64(math.MaxInt64)
	var noted []event.Event
	for _, e := range evs {
		cpu, b, h := e.Values[3].F, e.Values[4].I, e.Values[1].S
		bytes += b
		cpuSum.Add(cpuSum, new(big.Float).SetFloat64(cpu))
		cpus, bs = append(cpus, cpu), append(bs, float64(b))
		hosts[h] = true
		minCPU, maxCPU = math.Min(minCPU, cpu), math.Max(maxCPU, cpu)
		minB, maxB = min(minB, b), max(maxB, b)
		started = min(started, e.Values[0].I)
		if e.Values[5].Valid {
			noted = append(noted, e)
		}
	}
	sum, _ := cpuSum.Float64()
	avg := sum / float64(n) // the exact sum, rounded once, over the count
	first, last := firstLast(evs)
	lastNote := event.Value{}
	if len(noted) > 0 {
		_, l := firstLast(noted)
		lastNote = l.Values[5]
	}
	v := func(i int64) event.Value { return event.Value{I: i, Valid: true} }
	f := func(x float64) event.Value { return event.Value{F: x, Valid: true} }
	return []event.Value{
		v(n), v(bytes), f(sum), f(avg), f(float64(bytes) / float64(n)),
		f(minCPU), f(maxCPU), v(minB), v(maxB),
		v(int64(len(hosts))), f(rankValue(cpus, 0.5)), f(rankValue(bs, 0.95)),
		first.Values[1], last.Values[3], v(started), lastNote,
	}
}

// rankValue is the value at 0-based rank ⌊q·(n−1)⌋ of the sorted values.
func rankValue(vs []float64, q float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// compareWithReference compares dumps of engine rows with reference rows
// row by row: exact except for the sketches (quantiles within 1%) and the
// rounding of avg(long).
func compareWithReference(t *testing.T, view, want, got string) {
	t.Helper()
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	if len(w) != len(g) {
		t.Fatalf("%d rows, want %d:\n%s", len(g), len(w), diffLines(want, got))
	}
	approx := map[int]float64{} // aggregate index → relative tolerance
	if view == "all" {
		approx = map[int]float64{4: 1e-15, 10: 0.01, 11: 0.01}
	}
	for i := range w {
		if w[i] == g[i] {
			continue
		}
		wh, wv, _ := strings.Cut(w[i], " =>")
		gh, gv, _ := strings.Cut(g[i], " =>")
		wf, gf := strings.Fields(wv), strings.Fields(gv)
		if wh != gh || len(wf) != len(gf) {
			t.Fatalf("row %d:\n  want %s\n  got  %s", i, w[i], g[i])
		}
		for j := range wf {
			if wf[j] == gf[j] {
				continue
			}
			tol, ok := approx[j]
			if !ok || !closeTo(wf[j], gf[j], tol) {
				t.Fatalf("row %d aggregate %d: want %s, got %s\n  want %s\n  got  %s", i, j, wf[j], gf[j], w[i], g[i])
			}
		}
	}
}

func closeTo(want, got string, tol float64) bool {
	var a, b float64
	_, e1 := fmt.Sscanf(want[strings.LastIndex(want, "|")+1:], "%g", &a)
	_, e2 := fmt.Sscanf(got[strings.LastIndex(got, "|")+1:], "%g", &b)
	return e1 == nil && e2 == nil && math.Abs(a-b) <= tol*math.Abs(a)
}

// TestEngineCountDistinctSketch: past 1,024 distinct values count_distinct
// is a HyperLogLog; through the engine it stays within 2% and does not
// depend on the partitioning.
func TestEngineCountDistinctSketch(t *testing.T) {
	p := testPipeline(t, pipelineOpts{lateness: "1h"})
	pl := compile(t, p, "all")
	const hosts = 50000
	events := make([]event.Event, 0, 2*hosts)
	for i := range 2 * hosts {
		events = append(events, ev(fmt.Sprint(i), int64(i%50)*sec, fmt.Sprintf("host-%d", i%hosts), "eu", 0.5, 1))
	}
	var want string
	for round, parts := range []int{1, 3, 8} {
		rng := rand.New(rand.NewPCG(uint64(round), 6))
		_, store := runEngine(t, pl, parts, split(rng, events, parts, 500, false), 0)
		got := store.dump("all")
		if round == 0 {
			want = got
			rows := mapValues(store.rows["all"])
			if len(rows) != 1 {
				t.Fatalf("%d rows, want 1", len(rows))
			}
			if n := rows[0].Aggs[9].I; math.Abs(float64(n-hosts)) > 0.02*hosts {
				t.Fatalf("count_distinct %d, want %d within 2%%", n, hosts)
			}
		} else if got != want {
			t.Fatalf("%d partitions: %s\nwant %s", parts, got, want)
		}
	}
}
