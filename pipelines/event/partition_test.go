package event

import (
	"fmt"
	"hash/fnv"
	"math"
	"testing"
)

// fnvMod is the partition rule computed the slow, obvious way.
func fnvMod(text string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(text))
	return int(h.Sum32() % uint32(n))
}

func TestPartitionOf(t *testing.T) {
	for _, key := range []string{"", "a", "host-17", "é ✓ 😀", "\xff"} {
		for _, n := range []int{2, 3, 8, 64} {
			if got, want := PartitionOf(key, n), fnvMod(key, n); got != want {
				t.Errorf("PartitionOf(%q, %d) = %d, want %d", key, n, got, want)
			}
		}
		if got := PartitionOf(key, 1); got != 0 {
			t.Errorf("PartitionOf(%q, 1) = %d", key, got)
		}
		if got := PartitionOf(key, 0); got != 0 {
			t.Errorf("PartitionOf(%q, 0) = %d", key, got)
		}
	}
}

func TestEventPartitionByCanonicalText(t *testing.T) {
	f := func(typ FieldType, v Value, text string) {
		t.Helper()
		if got := string(AppendCanonical(nil, typ, v)); got != text {
			t.Errorf("AppendCanonical(%v, %+v) = %q, want %q", typ, v, got, text)
		}
		ev := Event{ID: "id-1", Values: []Value{{S: "x", Valid: true}, v}}
		for _, n := range []int{2, 7, 8} {
			if got, want := EventPartition(&ev, 1, typ, n), fnvMod(text, n); got != want {
				t.Errorf("EventPartition(%v %q, %d) = %d, want %d", typ, text, n, got, want)
			}
		}
	}
	f(TypeString, Value{S: "eu-west", Valid: true}, "eu-west")
	f(TypeLong, Value{I: -42, Valid: true}, "-42")
	f(TypeInt, Value{I: math.MaxInt32, Valid: true}, "2147483647")
	f(TypeTimestamp, Value{I: 1_700_000_000_123_456, Valid: true}, "1700000000123456")
	f(TypeDouble, Value{F: 0.1, Valid: true}, "0.1")
	f(TypeDouble, Value{F: 1e21, Valid: true}, "1e+21")
	f(TypeDouble, Value{F: -math.SmallestNonzeroFloat64, Valid: true}, "-5e-324")
	f(TypeDouble, Value{F: -2.2250738585072014e-308, Valid: true}, "-2.2250738585072014e-308")
	f(TypeBool, Value{I: 1, Valid: true}, "true")
	f(TypeBool, Value{Valid: true}, "false")

	// No key field, or a null key: by the event id.
	ev := Event{ID: "evt-9", Values: []Value{{}}}
	for _, n := range []int{2, 7} {
		if got, want := EventPartition(&ev, 0, TypeLong, n), fnvMod("evt-9", n); got != want {
			t.Errorf("null key: partition %d, want %d", got, want)
		}
		if got, want := EventPartition(&ev, -1, 0, n), fnvMod("evt-9", n); got != want {
			t.Errorf("no key: partition %d, want %d", got, want)
		}
	}
	if got := EventPartition(&ev, -1, 0, 1); got != 0 {
		t.Errorf("one partition: %d", got)
	}
}

func TestEventPartitionAllocatesNothing(t *testing.T) {
	ev := Event{ID: "id", Values: []Value{{F: 3.25, Valid: true}}}
	if n := testing.AllocsPerRun(100, func() { EventPartition(&ev, 0, TypeDouble, 8) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func TestViewRowPartitionText(t *testing.T) {
	groups := [][]Value{
		nil,
		{{S: "eu", Valid: true}},
		{{}, {I: -7, Valid: true}},
		{{S: "tab\t\"q\" é \xff", Valid: true}, {F: math.Inf(-1), Valid: true}, {F: 0.1, Valid: true}},
		{{I: 1, Valid: true}, {S: "a", I: 2, F: 3, Valid: true}},
	}
	for _, g := range groups {
		var text []byte
		for _, v := range g {
			text = fmt.Appendf(text, "%t|%d|%x|%q;", v.Valid, v.I, math.Float64bits(v.F), v.S)
		}
		if got := string(appendGroupText(nil, g)); got != string(text) {
			t.Errorf("group text %q, want %q", got, text)
		}
		for _, n := range []int{2, 4, 9} {
			if got, want := ViewRowPartition(g, n), fnvMod(string(text), n); got != want {
				t.Errorf("ViewRowPartition(%v, %d) = %d, want %d", g, n, got, want)
			}
		}
		if got := ViewRowPartition(g, 1); got != 0 {
			t.Errorf("ViewRowPartition(%v, 1) = %d", g, got)
		}
	}
}
