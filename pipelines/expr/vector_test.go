package expr

import (
	"slices"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/internal/testtopic"
)

// checkFilter: Filter over the events as a batch (plain and
// dictionary-encoded strings, every row and every other row) passes the
// rows Match accepts without error.
func checkFilter(t *testing.T, src string, schema event.Schema, m *Matcher, evs []*event.Event) {
	t.Helper()
	for _, dict := range []bool{false, true} {
		c := testtopic.Columns(schema, evs, dict)
		for _, step := range []int{1, 2} {
			var rows, want []int32
			for i := 0; i < len(evs); i += step {
				rows = append(rows, int32(i))
				if ok, err := m.Match(evs[i]); ok && err == nil {
					want = append(want, int32(i))
				}
			}
			if got := m.Filter(c, schema, rows, nil); !slices.Equal(got, want) {
				t.Fatalf("%s (dictionary %v, step %d): Filter passes %v, Match %v", src, dict, step, got, want)
			}
			// In place, as the batch engine calls it.
			if got := m.Filter(c, schema, rows, rows[:0]); !slices.Equal(got, want) {
				t.Fatalf("%s in place: Filter passes %v, Match %v", src, got, want)
			}
		}
	}
}
