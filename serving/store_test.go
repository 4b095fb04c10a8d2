package serving

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// describe renders query rows compactly: "k region zone events layer final".
func describe(rows []viewrow.Row) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%d %s %d %d %s %t\n", (r.Start-base)/minute, r.Group[0].S, r.Group[1].I, r.Aggs[0].I, r.Layer, r.Final)
	}
	return b.String()
}

func TestStoreMergesAtTheHorizon(t *testing.T) {
	s := NewStore(testPipeline(t))
	s.PutSpeed("cpu", []viewrow.Row{
		row(0, "eu", 1, 10, 0.5, true),
		row(1, "eu", 1, 11, 0.5, true),
		row(2, "eu", 1, 12, 0.5, true),
		row(3, "eu", 1, 13, 0.5, false),
	})
	rows, _, hasHorizon, ok := s.Query("cpu", Filter{})
	if !ok || hasHorizon {
		t.Fatalf("ok %v, horizon %v before any batch run", ok, hasHorizon)
	}
	if got, want := describe(rows), "0 eu 1 10 speed true\n1 eu 1 11 speed true\n2 eu 1 12 speed true\n3 eu 1 13 speed false\n"; got != want {
		t.Fatalf("before the batch run:\n%swant:\n%s", got, want)
	}

	// The batch run recomputed [0, 2) with a late event in window 1.
	drift := s.PutBatch("cpu", base, base+2*minute, base+2*minute, []viewrow.Row{
		row(0, "eu", 1, 10, 0.5, true),
		row(1, "eu", 1, 12, 0.5, true),
	})
	if drift != 1 {
		t.Errorf("drift %d, want 1 (window 1)", drift)
	}
	rows, horizon, hasHorizon, _ := s.Query("cpu", Filter{})
	if !hasHorizon || horizon != base+2*minute {
		t.Fatalf("horizon %v %v, want base+2m", horizon, hasHorizon)
	}
	// Batch rows for windows ending at or before the horizon, speed rows after.
	if got, want := describe(rows), "0 eu 1 10 batch true\n1 eu 1 12 batch true\n2 eu 1 12 speed true\n3 eu 1 13 speed false\n"; got != want {
		t.Fatalf("after the batch run:\n%swant:\n%s", got, want)
	}

	// A later run replaces the batch rows of its range and moves the
	// horizon on; the horizon never moves back.
	s.PutBatch("cpu", base+minute, base+3*minute, base+3*minute, []viewrow.Row{row(2, "eu", 1, 20, 0.5, true)})
	s.PutBatch("cpu", 0, 1, base, nil)
	rows, horizon, _, _ = s.Query("cpu", Filter{})
	if horizon != base+3*minute {
		t.Fatalf("horizon moved back to %d", (horizon-base)/minute)
	}
	// Window 1 was replaced by nothing: the batch layer found no events.
	if got, want := describe(rows), "0 eu 1 10 batch true\n2 eu 1 20 batch true\n3 eu 1 13 speed false\n"; got != want {
		t.Fatalf("after the second run:\n%swant:\n%s", got, want)
	}
	if s.Drift("cpu") != 2 {
		t.Errorf("drift total %d, want 2", s.Drift("cpu"))
	}
}

func TestStoreFilters(t *testing.T) {
	s := NewStore(testPipeline(t))
	s.PutSpeed("cpu", []viewrow.Row{
		row(0, "eu", 1, 1, 0, true), row(0, "eu", 2, 2, 0, true), row(0, "us", 1, 3, 0, true),
		row(1, "eu", 1, 4, 0, false), row(1, "us", 1, 5, 0, false), row(2, "eu", 1, 6, 0, false),
	})
	for _, c := range []struct {
		name string
		f    Filter
		want string
	}{
		{"all", Filter{}, "1 2 3 4 5 6"},
		{"one group field", Filter{Group: map[int]event.Value{0: str("eu")}}, "1 2 4 6"},
		{"every group field", Filter{Group: map[int]event.Value{0: str("eu"), 1: long(1)}}, "1 4 6"},
		{"no such group", Filter{Group: map[int]event.Value{0: str("ap"), 1: long(1)}}, ""},
		{"from", Filter{From: base + minute}, "4 5 6"},
		{"to (exclusive)", Filter{To: base + minute}, "1 2 3"},
		{"from and to", Filter{From: base + minute, To: base + 2*minute}, "4 5"},
		{"group and range", Filter{Group: map[int]event.Value{1: long(1)}, From: base + minute}, "4 5 6"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, _, _, ok := s.Query("cpu", c.f)
			if !ok {
				t.Fatal("unknown view")
			}
			var got []string
			for _, r := range rows {
				got = append(got, fmt.Sprint(r.Aggs[0].I))
			}
			if strings.Join(got, " ") != c.want {
				t.Fatalf("events %v, want %s", got, c.want)
			}
		})
	}
	if _, _, _, ok := s.Query("nope", Filter{}); ok {
		t.Error("unknown view: ok")
	}
}

func TestStoreSpeedUpdatesDeletesAndEvicts(t *testing.T) {
	s := NewStore(testPipeline(t))
	s.PutSpeed("cpu", []viewrow.Row{row(0, "eu", 1, 1, 0, false), row(1, "eu", 1, 1, 0, false)})
	s.PutSpeed("cpu", []viewrow.Row{row(0, "eu", 1, 5, 0, true)}) // the same window, later value
	s.DeleteSpeed("cpu", []viewrow.Row{{Start: base + minute, Group: []event.Value{str("eu"), long(1)}}})
	rows, _, _, _ := s.Query("cpu", Filter{})
	if got, want := describe(rows), "0 eu 1 5 speed true\n"; got != want {
		t.Fatalf("rows:\n%swant:\n%s", got, want)
	}
	s.PutSpeed("cpu", []viewrow.Row{row(5, "eu", 1, 1, 0, false)})
	if n := s.EvictSpeed("cpu", base+minute+1); n != 1 {
		t.Fatalf("evicted %d, want 1 (window 0 ends at 1m)", n)
	}
	rows, _, _, _ = s.Query("cpu", Filter{})
	if got, want := describe(rows), "5 eu 1 1 speed false\n"; got != want {
		t.Fatalf("after eviction:\n%swant:\n%s", got, want)
	}
	// Unknown views are ignored.
	s.PutSpeed("nope", []viewrow.Row{row(0, "eu", 1, 1, 0, false)})
	s.DeleteSpeed("nope", nil)
	if s.EvictSpeed("nope", base) != 0 {
		t.Error("evicted rows of an unknown view")
	}
}

func TestStoreViewWithoutGroupBy(t *testing.T) {
	s := NewStore(testPipeline(t))
	s.PutSpeed("total", []viewrow.Row{{Start: base, End: base + minute, Aggs: []event.Value{long(7)}}})
	rows, _, _, _ := s.Query("total", Filter{Group: map[int]event.Value{}})
	if len(rows) != 1 || rows[0].Aggs[0].I != 7 {
		t.Fatalf("rows %+v", rows)
	}
}
