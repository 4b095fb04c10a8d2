package aggregate

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestRegistryEntries checks that every registered function is complete:
// what loading, validation, the JSON Schema and plans read from it.
func TestRegistryEntries(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Funcs() {
		if seen[f.Name] {
			t.Errorf("%s registered twice", f.Name)
		}
		seen[f.Name] = true
		if f.Doc == "" || f.Example == "" || f.Takes == "" || f.Result == nil {
			t.Errorf("%s: Doc, Example, Takes and Result are required", f.Name)
		}
		if (f.compile == nil) == (f.New == nil) {
			t.Errorf("%s: needs exactly one of compile and New", f.Name)
		}
		if g, ok := Lookup(f.Name); !ok || g != f {
			t.Errorf("Lookup(%q) = %v, %v", f.Name, g, ok)
		}
	}
	if want := []string{"count", "sum", "min", "max", "avg", "count_distinct", "quantile", "first", "last"}; !slices.Equal(Names(), want) {
		t.Errorf("Names() = %v, want %v", Names(), want)
	}
}

// countAbove is a function outside the built-ins, written the way a new
// aggregate is: a Func with New, and an Accumulator. It counts the values
// of a numeric field above its argument.
var countAbove = Func{
	Name:    "count_above",
	Doc:     "count_above(f, x): the number of values of a numeric field above x",
	Args:    []Arg{{Name: "field", Kind: ArgField, Types: numeric}, {Name: "x", Kind: ArgNumber}},
	Takes:   "a field and x",
	Example: "count_above(cpu, 0.9)",
	Result:  long,
	New: func(field event.FieldType, x float64) Accumulator {
		return &aboveAcc{double: field == event.TypeDouble, x: x}
	},
}

type aboveAcc struct {
	double bool
	x      float64
	n      uint64
}

func (a *aboveAcc) Add(v *event.Value, _ *event.Event) {
	if f := float64(v.I); a.double && v.F > a.x || !a.double && f > a.x {
		a.n++
	}
}

func (a *aboveAcc) Merge(src Accumulator) { a.n += src.(*aboveAcc).n }

func (a *aboveAcc) Result() event.Value { return event.Value{I: int64(a.n), Valid: true} }

func (a *aboveAcc) AppendBinary(b []byte) ([]byte, error) { return binary.AppendUvarint(b, a.n), nil }

func (a *aboveAcc) UnmarshalBinary(b []byte) error {
	n, k := binary.Uvarint(b)
	if k <= 0 || k != len(b) {
		return errors.New("bad count_above state")
	}
	a.n = n
	return nil
}

// TestAccumulatorFunction runs a function outside the built-ins through a
// Set beside built-ins: update, merge, finalize and the state codec.
func TestAccumulatorFunction(t *testing.T) {
	saved := funcs
	funcs = append(slices.Clone(funcs), &countAbove)
	t.Cleanup(func() { funcs = saved })

	schema := event.Schema{
		{Name: "host", Type: event.TypeString, Required: true},
		{Name: "cpu", Type: event.TypeDouble},
		{Name: "bytes", Type: event.TypeLong, Required: true},
	}
	calls := []call{{"count", "", 0}, {"count_above", "cpu", 0.5}, {"sum", "bytes", 0}, {"count_above", "bytes", 10}}
	p := mustBuild(t, schema, calls)
	ev := func(cpu float64, null bool, bytes int64) *event.Event {
		return &event.Event{ID: "e", Values: []event.Value{{S: "h", Valid: true}, {F: cpu, Valid: !null}, {I: bytes, Valid: true}}}
	}
	es := []*event.Event{ev(0.9, false, 5), ev(0.1, false, 20), ev(0.7, true, 11), ev(0.6, false, 30), ev(0.2, false, 1)}
	want := []event.Value{{I: 5, Valid: true}, {I: 2, Valid: true}, {I: 67, Valid: true}, {I: 3, Valid: true}}

	whole := p.NewState()
	for _, e := range es {
		p.Update(whole, e)
	}
	if got := p.Finalize(whole); !slices.Equal(got, want) {
		t.Fatalf("one state: %+v, want %+v", got, want)
	}
	empty := p.Finalize(p.NewState())
	if !slices.Equal(empty, []event.Value{{Valid: true}, {Valid: true}, {Valid: true}, {Valid: true}}) {
		t.Errorf("empty state: %+v", empty)
	}
	for cut := range len(es) + 1 {
		a, b := p.NewState(), p.NewState()
		for _, e := range es[:cut] {
			p.Update(a, e)
		}
		for _, e := range es[cut:] {
			p.Update(b, e)
		}
		enc, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := p.UnmarshalState(enc)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		p.Merge(a, b2)
		if got := p.Finalize(a); !slices.Equal(got, want) {
			t.Errorf("cut %d, merged through the codec: %+v, want %+v", cut, got, want)
		}
	}
	// The signature tells the function apart from built-ins of the same
	// shape, so a checkpoint of another definition is refused.
	other := mustBuild(t, schema, []call{{"count", "", 0}, {"quantile", "cpu", 0.5}, {"sum", "bytes", 0}, {"quantile", "bytes", 0.1}})
	if _, err := other.UnmarshalState(must(whole.MarshalBinary())); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("state read by another definition: %v", err)
	}
	_, err := NewBuilder("test", schema).Add("count_above", "host", 1)
	if want := `count_above(host): field "host" is string; count_above needs a numeric field (long, int or double)`; err == nil || err.Error() != want {
		t.Errorf("count_above of a string: %v, want %s", err, want)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
