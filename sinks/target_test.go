package sinks_test

import (
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

func TestAppendKeyTellsKeysApart(t *testing.T) {
	s := func(x string) event.Value { return event.Value{S: x, Valid: true} }
	i := func(x int64) event.Value { return event.Value{I: x, Valid: true} }
	f := func(x float64) event.Value { return event.Value{F: x, Valid: true} }
	keys := [][]event.Value{
		{s("a"), s("b")}, {s("a:"), s("b")}, {s("a"), s(":b")}, {s("ab"), s("")}, {s(""), s("ab")},
		{{}, s("")}, {s(""), {}}, {{}, {}},
		{i(1), i(2)}, {i(12), {}}, {f(0.5), f(1)}, {f(1), f(0.5)},
	}
	seen := map[string]int{}
	for n, k := range keys {
		b := string(sinks.AppendKey(nil, k, []int{0, 1}))
		if m, ok := seen[b]; ok {
			t.Errorf("keys %v and %v encode alike: %q", keys[m], k, b)
		}
		seen[b] = n
	}
	// Only the columns at idx count; a missing one is null.
	row := []event.Value{s("x"), i(5), s("ignored")}
	if a, b := sinks.AppendKey(nil, row, []int{1, 0}), sinks.AppendKey(nil, []event.Value{s("y"), i(5), s("z")}, []int{1}); string(a) == string(b) {
		t.Errorf("different keys encode alike")
	}
	if a, b := sinks.AppendKey(nil, row[:1], []int{0, 1}), sinks.AppendKey(nil, []event.Value{s("x"), {}}, []int{0, 1}); string(a) != string(b) {
		t.Errorf("missing value %q, null %q", a, b)
	}
}
