package aggregate

import (
	"math"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestAggStateAllocs guards the memory layout: a one-event state of the
// quickstart aggregates is its State, one block and one string for first and
// last (they share it, and its id and value when equal); no sketch is
// allocated before a second distinct value or a third quantile value.
func TestAggStateAllocs(t *testing.T) {
	schema := event.Schema{
		{Name: "host", Type: event.TypeString, Required: true},
		{Name: "cpu", Type: event.TypeDouble, Required: true},
		{Name: "bytes", Type: event.TypeLong, Required: true},
	}
	p := mustBuild(t, schema, []call{
		{"count", "", 0},
		{"avg", "cpu", 0},
		{"min", "cpu", 0},
		{"max", "cpu", 0},
		{"sum", "bytes", 0},
		{"count_distinct", "host", 0},
		{"quantile", "cpu", 0.95},
		{"first", "host", 0},
		{"last", "host", 0},
	})
	e := &event.Event{ID: "host-1", Time: 1, Values: []event.Value{
		{S: "host-1", Valid: true}, {F: 0.5, Valid: true}, {I: 100, Valid: true},
	}}
	if n := testing.AllocsPerRun(100, func() { p.Update(p.NewState(), e) }); n > 3 {
		t.Errorf("one-event state: %v allocations, want 3", n)
	}
	s := p.NewState()
	p.Update(s, e)
	if got := p.Finalize(s); got[7].S != "host-1" || got[8].S != "host-1" || got[5].I != 1 || got[6].F != 0.5 {
		t.Errorf("one-event state finalizes to %+v", got)
	}
	if p.sketchPtrs(s) != nil {
		t.Error("one event allocated the sketch pointers")
	}
}

// call is one aggregate call of a test Set.
type call struct {
	fn, field string
	arg       float64
}

func mustBuild(t testing.TB, schema event.Schema, calls []call) *Set {
	t.Helper()
	b := NewBuilder("test", schema)
	for _, c := range calls {
		if _, err := b.Add(c.fn, c.field, c.arg); err != nil {
			t.Fatalf("%s(%s): %v", c.fn, c.field, err)
		}
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAggPairs(t *testing.T) {
	for _, c := range []struct{ id, val string }{
		{"", ""}, {"a", ""}, {"", "b"}, {"id", "id"}, {"id", "value"},
		{strings.Repeat("x", 200), "v"}, {strings.Repeat("y", 70), strings.Repeat("y", 70)},
	} {
		pair := makePair(c.id, c.val)
		if id, val := splitPair(pair); id != c.id || val != c.val {
			t.Errorf("splitPair(makePair(%q, %q)) = %q, %q", c.id, c.val, id, val)
		}
		if c.id == c.val && len(pair) != uvarintLen(uint(2*len(c.id)+1))+len(c.id) {
			t.Errorf("pair of equal id and value %q is %d bytes", c.id, len(pair))
		}
	}
	if id, val := splitPair(""); id != "" || val != "" {
		t.Errorf("unset pair splits to %q, %q", id, val)
	}
}

func TestAggFloatKeyOrdersLikeFloatLess(t *testing.T) {
	xs := []float64{math.Inf(-1), -math.MaxFloat64, -1, -math.SmallestNonzeroFloat64, math.Copysign(0, -1), 0,
		math.SmallestNonzeroFloat64, 1e-300, 0.5, 1, 1e300, math.MaxFloat64, math.Inf(1)}
	for _, a := range xs {
		for _, b := range xs {
			if got, want := floatKey(math.Float64bits(a)) < floatKey(math.Float64bits(b)), floatLess(a, b); got != want {
				t.Errorf("floatKey(%v) < floatKey(%v) = %v, floatLess %v", a, b, got, want)
			}
		}
	}
}
