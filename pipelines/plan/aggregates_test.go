package plan

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/internal/testtopic"
)

// allAggsView has every aggregate over fields of every type, optional ones
// (null in about half the events) included.
func allAggsView() *pipelines.View {
	v := designView()
	v.Where = ""
	v.GroupBy = nil
	v.Aggregates = pipelines.Aggregates{
		{Name: "n", Func: "count"},
		{Name: "n_load", Func: "count", Field: "load"},
		{Name: "sum_bytes", Func: "sum", Field: "bytes"},
		{Name: "sum_cpu", Func: "sum", Field: "cpu"},
		{Name: "sum_load", Func: "sum", Field: "load"},
		{Name: "sum_code", Func: "sum", Field: "code"},
		{Name: "avg_cpu", Func: "avg", Field: "cpu"},
		{Name: "avg_bytes", Func: "avg", Field: "bytes"},
		{Name: "avg_load", Func: "avg", Field: "load"},
		{Name: "min_cpu", Func: "min", Field: "cpu"},
		{Name: "max_cpu", Func: "max", Field: "cpu"},
		{Name: "min_bytes", Func: "min", Field: "bytes"},
		{Name: "max_bytes", Func: "max", Field: "bytes"},
		{Name: "min_host", Func: "min", Field: "host"},
		{Name: "max_note", Func: "max", Field: "note"},
		{Name: "min_ok", Func: "min", Field: "ok"},
		{Name: "max_ts", Func: "max", Field: "ts"},
		{Name: "min_load", Func: "min", Field: "load"},
		{Name: "hosts", Func: "count_distinct", Field: "host"},
		{Name: "loads", Func: "count_distinct", Field: "load"},
		{Name: "codes", Func: "count_distinct", Field: "code"},
		{Name: "p50_cpu", Func: "quantile", Field: "cpu", Arg: 0.5},
		{Name: "p95_load", Func: "quantile", Field: "load", Arg: 0.95},
		{Name: "p99_bytes", Func: "quantile", Field: "bytes", Arg: 0.99},
		{Name: "p0_cpu", Func: "quantile", Field: "cpu", Arg: 0},
		{Name: "first_host", Func: "first", Field: "host"},
		{Name: "last_host", Func: "last", Field: "host"},
		{Name: "first_cpu", Func: "first", Field: "cpu"},
		{Name: "last_note", Func: "last", Field: "note"},
		{Name: "first_code", Func: "first", Field: "code"},
		{Name: "last_load", Func: "last", Field: "load"},
	}
	return v
}

// randomEvents makes n events with many ties in time and some repeated ids,
// so first/last must break ties; load spans 40 orders of magnitude, so its
// exact sum needs more than 192 bits.
func randomEvents(rng *rand.Rand, n, hosts int) []*event.Event {
	es := make([]*event.Event, n)
	for i := range es {
		vals := map[int]any{
			testtopic.Host:  fmt.Sprintf("host-%d", rng.IntN(hosts)),
			testtopic.CPU:   math.Round(rng.Float64()*10000) / 100,
			testtopic.Bytes: rng.Int64N(1_000_000) - 1000,
		}
		switch rng.IntN(20) {
		case 0:
			vals[testtopic.CPU] = 0.0
		case 1:
			vals[testtopic.CPU] = math.Copysign(0, -1)
		case 2:
			vals[testtopic.CPU] = -rng.Float64() * 5
		}
		if rng.IntN(2) == 0 {
			vals[testtopic.Note] = fmt.Sprintf("note-%d", rng.IntN(50))
		}
		if rng.IntN(2) == 0 {
			vals[testtopic.Code] = int64(rng.IntN(600))
		}
		if rng.IntN(2) == 0 {
			vals[testtopic.OK] = rng.IntN(2) == 0
		}
		if rng.IntN(2) == 0 {
			vals[testtopic.Load] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
		}
		t := 1_700_000_000_000_000 + rng.Int64N(50)*1000
		es[i] = newEvent(t, fmt.Sprintf("id-%d", rng.IntN(n)), vals)
	}
	return es
}

func fold(p *Plan, es []*event.Event) *aggregate.State {
	s := p.NewState()
	for _, e := range es {
		p.Update(s, e)
	}
	return s
}

// direct computes an aggregate straight from the events, independently of
// the state code: exact big-float sums, full sorts for quantiles, maps for
// distinct counts.
func direct(a pipelines.Aggregate, es []*event.Event) event.Value {
	schema := planTopic().Schema
	var vals []event.Value
	var evs []*event.Event
	fi := schema.Index(a.Field)
	var typ event.FieldType
	if fi >= 0 {
		typ = schema[fi].Type
		for _, e := range es {
			if v := e.Values[fi]; v.Valid {
				vals = append(vals, v)
				evs = append(evs, e)
			}
		}
	}
	num := func(v event.Value) float64 {
		if typ == event.TypeDouble {
			return v.F
		}
		return float64(v.I)
	}
	less := func(a, b event.Value) bool {
		switch typ {
		case event.TypeString:
			return a.S < b.S
		case event.TypeDouble:
			return a.F < b.F || (a.F == b.F && math.Signbit(a.F) && !math.Signbit(b.F)) // -0 before +0
		}
		return a.I < b.I
	}
	exactSum := func() *big.Float {
		s := new(big.Float).SetPrec(4000)
		for _, v := range vals {
			s.Add(s, new(big.Float).SetPrec(4000).SetFloat64(num(v)))
		}
		return s
	}
	switch a.Func {
	case "count":
		if fi < 0 {
			return event.Value{I: int64(len(es)), Valid: true}
		}
		return event.Value{I: int64(len(vals)), Valid: true}
	case "sum":
		f, _ := exactSum().Float64()
		if typ == event.TypeDouble {
			return event.Value{F: f, Valid: true}
		}
		var s int64
		for _, v := range vals {
			s += v.I
		}
		return event.Value{I: s, Valid: true}
	case "avg":
		if len(vals) == 0 {
			return event.Value{}
		}
		f, _ := exactSum().Float64()
		return event.Value{F: f / float64(len(vals)), Valid: true}
	case "min", "max":
		if len(vals) == 0 {
			return event.Value{}
		}
		best := vals[0]
		for _, v := range vals[1:] {
			if (a.Func == "min" && less(v, best)) || (a.Func == "max" && less(best, v)) {
				best = v
			}
		}
		return best
	case "count_distinct":
		seen := map[event.Value]bool{}
		for _, v := range vals {
			seen[v] = true
		}
		return event.Value{I: int64(len(seen)), Valid: true}
	case "quantile":
		if len(vals) == 0 {
			return event.Value{}
		}
		fs := make([]float64, len(vals))
		for i, v := range vals {
			fs[i] = num(v)
		}
		slices.SortFunc(fs, func(a, b float64) int {
			lt := func(a, b float64) bool { return a < b || (a == b && math.Signbit(a) && !math.Signbit(b)) }
			switch {
			case lt(a, b):
				return -1
			case lt(b, a):
				return 1
			}
			return 0
		})
		return event.Value{F: fs[int(a.Arg*float64(len(fs)-1))], Valid: true}
	case "first", "last":
		if len(vals) == 0 {
			return event.Value{}
		}
		idx := make([]int, len(vals))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(i, j int) int {
			if c := cmp.Compare(evs[i].Time, evs[j].Time); c != 0 {
				return c
			}
			if c := strings.Compare(evs[i].ID, evs[j].ID); c != 0 {
				return c
			}
			switch {
			case less(vals[i], vals[j]):
				return -1
			case less(vals[j], vals[i]):
				return 1
			}
			return 0 // identical values: either will do
		})
		if a.Func == "first" {
			return vals[idx[0]]
		}
		return vals[idx[len(idx)-1]]
	}
	panic("unknown aggregate " + a.Func)
}

// sameValue reports whether two finalized values are identical, NaN and the
// sign of zero included.
func identical(a, b event.Value) bool {
	return a.Valid == b.Valid && a.S == b.S && a.I == b.I && math.Float64bits(a.F) == math.Float64bits(b.F)
}

// The documented accuracy of the sketches (see aggregate.Set.Finalize).
const (
	exactDistinct  = 1024 // count_distinct is exact up to this many values
	exactQuantiles = 16   // quantile is exact up to this many values
	quantileError  = 0.01 // and then within this relative error
)

func TestAggAgainstDirect(t *testing.T) {
	v := allAggsView()
	p := mustCompile(t, v)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 7, 16, 17, 100, 3000, 20000} {
		es := randomEvents(rng, n, 1+n/3)
		got := p.Finalize(fold(p, es))
		for i, a := range v.Aggregates {
			want := direct(a, es)
			g := got[i]
			switch {
			case a.Func == "quantile" && n > exactQuantiles && want.Valid:
				if !g.Valid || !withinRel(g.F, want.F, quantileError) {
					t.Errorf("n=%d %s = %v, want %v within 1%%", n, a.Name, g.F, want.F)
				}
			case a.Func == "count_distinct" && want.I > exactDistinct:
				if !withinRel(float64(g.I), float64(want.I), 0.02) {
					t.Errorf("n=%d %s = %d, want %d within 2%%", n, a.Name, g.I, want.I)
				}
			case !identical(g, want):
				t.Errorf("n=%d %s = %+v, want %+v", n, a.Name, g, want)
			}
		}
	}
}

func withinRel(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)+1e-300
}

func TestAggEmptyAndNull(t *testing.T) {
	v := allAggsView()
	p := mustCompile(t, v)
	// An event with every optional field null, and NaN where a double is
	// required: NaN counts as null.
	e := newEvent(5, "x", map[int]any{testtopic.Host: "h", testtopic.Region: "r", testtopic.CPU: math.NaN(), testtopic.Bytes: int64(3)})
	for name, s := range map[string]*aggregate.State{"empty": p.NewState(), "nulls": fold(p, []*event.Event{e})} {
		got := p.Finalize(s)
		for i, a := range v.Aggregates {
			var want event.Value
			switch {
			case a.Func == "count" && a.Field == "" && name == "nulls":
				want = event.Value{I: 1, Valid: true}
			case a.Func == "count" || a.Func == "count_distinct" || a.Func == "sum":
				want = event.Value{Valid: true} // zero, not null
			}
			if name == "nulls" && (a.Field == "host" || a.Field == "bytes" || a.Field == "ts") {
				continue // those are set
			}
			if !identical(got[i], want) {
				t.Errorf("%s: %s = %+v, want %+v", name, a.Name, got[i], want)
			}
		}
	}
	// Events shorter than the schema (written before a field was added)
	// have nulls for the missing fields.
	short := &event.Event{ID: "s", Time: 1, Values: []event.Value{{I: 1, Valid: true}}}
	got := p.Finalize(fold(p, []*event.Event{short}))
	if !got[0].Valid || got[0].I != 1 || got[9].Valid {
		t.Errorf("short event: count %+v, min_cpu %+v", got[0], got[9])
	}
}

// TestAggPartitionInvariance checks the property both layers rely on: the
// same events in any order and any partitioning, with states merged in any
// grouping and passed through checkpoints, finalize to identical values.
func TestAggPartitionInvariance(t *testing.T) {
	v := allAggsView()
	p := mustCompile(t, v)
	rng := rand.New(rand.NewPCG(5, 6))
	// 5000 events over 2000 hosts take count_distinct past its exact set and
	// the quantiles into sketch mode; 12 events keep both exact.
	for _, n := range []int{12, 5000} {
		es := randomEvents(rng, n, 2000)
		want := p.Finalize(fold(p, es))
		for trial := range 15 {
			perm := slices.Clone(es)
			rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			parts := make([]*aggregate.State, 1+rng.IntN(8))
			for i := range parts {
				parts[i] = p.NewState()
			}
			for _, e := range perm {
				p.Update(parts[rng.IntN(len(parts))], e)
			}
			// Round-trip some partial states through a checkpoint.
			for i, s := range parts {
				if rng.IntN(2) == 0 {
					b, err := s.MarshalBinary()
					if err != nil {
						t.Fatal(err)
					}
					if parts[i], err = p.UnmarshalState(b); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Merge in a random tree.
			for len(parts) > 1 {
				i, j := rng.IntN(len(parts)), rng.IntN(len(parts)-1)
				if j >= i {
					j++
				}
				p.Merge(parts[i], parts[j])
				parts = slices.Delete(parts, j, j+1)
			}
			got := p.Finalize(parts[0])
			for i, a := range v.Aggregates {
				if !identical(got[i], want[i]) {
					t.Errorf("n=%d trial %d: %s = %+v, single pass %+v", n, trial, a.Name, got[i], want[i])
				}
			}
		}
	}
}

func TestAggMergeLeavesSourceUnchanged(t *testing.T) {
	p := mustCompile(t, allAggsView())
	rng := rand.New(rand.NewPCG(7, 8))
	a := fold(p, randomEvents(rng, 3000, 2000))
	b := fold(p, randomEvents(rng, 3000, 2000))
	before, _ := b.MarshalBinary()
	p.Merge(a, b)
	p.Merge(a, b)
	after, _ := b.MarshalBinary()
	if string(before) != string(after) {
		t.Error("Merge changed its source")
	}
}

func TestAggMarshalRoundTrip(t *testing.T) {
	p := mustCompile(t, allAggsView())
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 1, 16, 17, 5000} {
		s := fold(p, randomEvents(rng, n, 2000))
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != aggregate.StateVersion {
			t.Fatalf("first byte %d, want version %d", b[0], aggregate.StateVersion)
		}
		s2, err := p.UnmarshalState(b)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		b2, _ := s2.MarshalBinary()
		if string(b) != string(b2) {
			t.Errorf("n=%d: marshal(unmarshal(b)) != b", n)
		}
		want, got := p.Finalize(s), p.Finalize(s2)
		for i := range want {
			if !identical(got[i], want[i]) {
				t.Errorf("n=%d: aggregate %d = %+v after round trip, want %+v", n, i, got[i], want[i])
			}
		}
		s3 := p.NewState()
		if err := s3.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		// A restored state keeps working: updates and merges go on.
		p.Update(s3, randomEvents(rng, 1, 10)[0])
		p.Merge(s3, s2)

		// Every truncation is an error, never a panic.
		for i := 0; i < len(b); i += 1 + i/100 {
			if _, err := p.UnmarshalState(b[:i]); err == nil {
				t.Fatalf("n=%d: truncated to %d of %d bytes decodes", n, i, len(b))
			}
		}
		if _, err := p.UnmarshalState(append(b, 0)); err == nil {
			t.Error("trailing bytes decode")
		}
	}
	b, _ := p.NewState().MarshalBinary()
	b[0] = 99
	if _, err := p.UnmarshalState(b); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("unknown version: %v", err)
	}
	other := mustCompile(t, designView())
	b, _ = other.NewState().MarshalBinary()
	if _, err := p.UnmarshalState(b); !errors.Is(err, aggregate.ErrStateMismatch) {
		t.Errorf("state of another view: %v, want ErrStateMismatch", err)
	}
	if err := new(aggregate.State).UnmarshalBinary(b); err == nil {
		t.Error("UnmarshalBinary into a State without plan succeeded")
	}
}

func FuzzAggUnmarshal(f *testing.F) {
	p := mustCompile(f, allAggsView())
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 3, 40, 2000} {
		b, _ := fold(p, randomEvents(rng, n, 1500)).MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := p.UnmarshalState(b)
		if err != nil {
			return
		}
		// Whatever decodes must finalize, merge and encode without panics.
		p.Finalize(s)
		p.Merge(s, s)
		if _, err := s.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAggSumLongSaturates(t *testing.T) {
	v := designView()
	v.Aggregates = pipelines.Aggregates{{Name: "s", Func: "sum", Field: "bytes"}, {Name: "a", Func: "avg", Field: "bytes"}}
	p := mustCompile(t, v)
	es := []*event.Event{
		newEvent(1, "a", map[int]any{testtopic.Bytes: int64(math.MaxInt64)}),
		newEvent(2, "b", map[int]any{testtopic.Bytes: int64(math.MaxInt64)}),
	}
	got := p.Finalize(fold(p, es))
	if got[0].I != math.MaxInt64 {
		t.Errorf("overflowing sum = %d, want MaxInt64", got[0].I)
	}
	if got[1].F != float64(math.MaxInt64) {
		t.Errorf("avg = %v, want %v (exact 128-bit sum)", got[1].F, float64(math.MaxInt64))
	}
	// The 128-bit sum comes back into range.
	es = append(es, newEvent(3, "c", map[int]any{testtopic.Bytes: int64(math.MinInt64)}), newEvent(3, "d", map[int]any{testtopic.Bytes: int64(math.MinInt64)}))
	if got := p.Finalize(fold(p, es)); got[0].I != -2 {
		t.Errorf("sum = %d, want -2", got[0].I)
	}
}

func TestAggFirstLastTies(t *testing.T) {
	v := designView()
	v.Aggregates = pipelines.Aggregates{{Name: "f", Func: "first", Field: "host"}, {Name: "l", Func: "last", Field: "host"}}
	p := mustCompile(t, v)
	es := []*event.Event{
		newEvent(10, "b", map[int]any{testtopic.Host: "b"}),
		newEvent(10, "a", map[int]any{testtopic.Host: "a"}),
		newEvent(10, "c", map[int]any{testtopic.Host: "c2"}),
		newEvent(10, "c", map[int]any{testtopic.Host: "c1"}), // same time and id: by value
		newEvent(11, "0", map[int]any{}),                     // null host: skipped
	}
	for range 10 {
		rand.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
		got := p.Finalize(fold(p, es))
		if got[0].S != "a" || got[1].S != "c2" {
			t.Fatalf("first, last = %q, %q; want a, c2", got[0].S, got[1].S)
		}
	}
}

func TestAggStateCopiesStrings(t *testing.T) {
	v := designView()
	v.Aggregates = pipelines.Aggregates{{Name: "f", Func: "last", Field: "host"}, {Name: "m", Func: "max", Field: "host"}}
	p := mustCompile(t, v)
	buf := []byte("zzz")
	e := newEvent(1, "id", nil)
	e.Values[testtopic.Host] = event.Value{S: unsafeString(buf), Valid: true}
	s := fold(p, []*event.Event{e})
	copy(buf, "aaa") // a decoder reusing its buffer
	if got := p.Finalize(s); got[0].S != "zzz" || got[1].S != "zzz" {
		t.Errorf("state follows the event's buffer: %q %q", got[0].S, got[1].S)
	}
}

func unsafeString(b []byte) string { return unsafe.String(&b[0], len(b)) }
