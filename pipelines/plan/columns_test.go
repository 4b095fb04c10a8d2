package plan

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/internal/testtopic"
)

// TestColumnsEqualRows: the columnar path (Filter, Grouper, WindowGrid,
// UpdateColumns) gives every (window, group) the states that Match, Key,
// Windows and Update give event by event, for every aggregate, with nulls,
// dictionary-encoded and plain strings, several group-by shapes and a
// filter the VM must finish for some rows.
func TestColumnsEqualRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		name, where string
		group       []string
		window      pipelines.Window
		aggs        pipelines.Aggregates // nil: allAggsView's
	}{
		{"host", "", []string{"host"}, pipelines.Window{Type: "tumbling", Size: pipelines.Duration(10 * time.Millisecond)}, nil},
		{"note", `cpu >= 1 && note != "note-3"`, []string{"note"}, pipelines.Window{Type: "tumbling", Size: pipelines.Duration(20 * time.Millisecond)}, nil},
		{"code", `(load ?? 0) >= 0`, []string{"code"}, pipelines.Window{Type: "hopping", Size: pipelines.Duration(20 * time.Millisecond), Slide: pipelines.Duration(5 * time.Millisecond)}, nil},
		{"host-ok", "code > 100 || ok == true", []string{"host", "ok"}, pipelines.Window{Type: "tumbling", Size: pipelines.Duration(time.Second)}, nil},
		{"none", "", nil, pipelines.Window{Type: "tumbling", Size: pipelines.Duration(time.Second)}, nil},
		// An aggregate without stats of its own after ones that read
		// them: avg updates the stats quantile and first read.
		{"order", "", []string{"host"}, pipelines.Window{Type: "tumbling", Size: pipelines.Duration(10 * time.Millisecond)}, pipelines.Aggregates{
			{Name: "p50_cpu", Func: "quantile", Field: "cpu", Arg: 0.5}, {Name: "avg_cpu", Func: "avg", Field: "cpu"},
			{Name: "max_cpu", Func: "max", Field: "cpu"}, {Name: "first_code", Func: "first", Field: "code"},
			{Name: "sum_code", Func: "avg", Field: "code"}, {Name: "min_code", Func: "min", Field: "code"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := allAggsView()
			v.Where, v.GroupBy, v.Window = tc.where, tc.group, tc.window
			if tc.aggs != nil {
				v.Aggregates = tc.aggs
			}
			p := mustCompile(t, v)
			es := randomEvents(rng, 3000, 40)
			type wk struct {
				start int64
				key   string
			}
			want := map[wk]*aggregate.State{}
			for _, e := range es {
				if ok, err := p.Match(e); err != nil || !ok {
					continue
				}
				key := string(p.Key(e, nil))
				for _, w := range p.Windows(e.Time, nil) {
					st := want[wk{w.Start, key}]
					if st == nil {
						st = p.NewState()
						want[wk{w.Start, key}] = st
					}
					p.Update(st, e)
				}
			}
			size, slide, ok := p.WindowGrid()
			if !ok || size != int64(tc.window.Size.D()/time.Microsecond) {
				t.Fatalf("WindowGrid = %d, %d, %v", size, slide, ok)
			}
			for _, dict := range []bool{false, true} {
				c := testtopic.Columns(p.schema, es, dict)
				c.ID = make([]string, len(es))
				for i, e := range es {
					c.ID[i] = e.ID
				}
				g := p.NewGrouper()
				u := p.NewColumnar()
				m := p.NewMatcher()
				got := map[wk]*aggregate.State{}
				// Two batches, to cross a batch boundary.
				for _, half := range [][2]int{{0, len(es) / 2}, {len(es) / 2, len(es)}} {
					var rows []int32
					for i := half[0]; i < half[1]; i++ {
						rows = append(rows, int32(i))
					}
					rows = m.Filter(c, p.schema, rows, rows[:0])
					ids := g.Groups(c, rows, nil)
					for s := int64(0); s < size; s += slide {
						var sts []*aggregate.State
						var in []int32
						for k, r := range rows {
							start := floorDiv(c.Time[r], slide)*slide - s
							if c.Time[r] >= start+size {
								continue
							}
							key := wk{start, g.Key(ids[k])}
							st := got[key]
							if st == nil {
								st = p.NewState()
								got[key] = st
							}
							sts = append(sts, st)
							in = append(in, r)
						}
						u.UpdateColumns(sts, in, c)
					}
				}
				if len(got) != len(want) {
					t.Fatalf("dictionary %v: %d states, want %d", dict, len(got), len(want))
				}
				for k, st := range want {
					if got[k] == nil {
						t.Fatalf("dictionary %v: no state for %v", dict, k)
					}
					gv, wv := p.Finalize(got[k]), p.Finalize(st)
					for i, a := range v.Aggregates {
						if !identical(gv[i], wv[i]) {
							t.Errorf("dictionary %v, %v: %s = %+v, by rows %+v", dict, k, a.Name, gv[i], wv[i])
						}
					}
				}
			}
		})
	}
}

// TestSlotsEqualRows: aggregates updated into Slots a column at a time and
// merged into states once per batch give every (window, group) the states
// Update gives event by event: counts, 128-bit integer sums past int64,
// averages, the extremes of integers and doubles with -0, +0 and NaN, over
// several batches, with nulls and without (every field set, Valid nil: the
// loops of UpdateAll that test nothing per row), for every row of a batch
// (UpdateAll) and for a selection (Update). A Set whose states need more
// than words has no Slots.
func TestSlotsEqualRows(t *testing.T) {
	v := allAggsView()
	if p := mustCompile(t, v); p.NewSlots() != nil {
		t.Fatal("NewSlots of a view with sketches and exact double sums is not nil")
	}
	v.GroupBy = []string{"host"}
	v.Window = pipelines.Window{Type: "tumbling", Size: pipelines.Duration(10 * time.Millisecond)}
	v.Aggregates = pipelines.Aggregates{
		{Name: "n", Func: "count"}, {Name: "n_load", Func: "count", Field: "load"}, {Name: "n_note", Func: "count", Field: "note"},
		{Name: "n_cpu", Func: "count", Field: "cpu"},
		{Name: "sum_bytes", Func: "sum", Field: "bytes"}, {Name: "sum_code", Func: "sum", Field: "code"},
		{Name: "avg_bytes", Func: "avg", Field: "bytes"}, {Name: "avg_code", Func: "avg", Field: "code"},
		{Name: "min_cpu", Func: "min", Field: "cpu"}, {Name: "max_cpu", Func: "max", Field: "cpu"},
		{Name: "max_load", Func: "max", Field: "load"}, {Name: "min_bytes", Func: "min", Field: "bytes"},
		{Name: "max_bytes", Func: "max", Field: "bytes"}, {Name: "min_ok", Func: "min", Field: "ok"},
		{Name: "min_code", Func: "min", Field: "code"}, {Name: "max_ts", Func: "max", Field: "ts"},
	}
	p := mustCompile(t, v)
	if p.NewSlots() == nil {
		t.Fatal("NewSlots of counts, integer sums and extremes is nil")
	}
	for _, tc := range []struct {
		name       string
		full, skip bool // every field set; a selection of the rows
	}{{"nulls", false, false}, {"nulls-selection", false, true}, {"full", true, false}, {"full-selection", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, 10))
			es := randomEvents(rng, 4000, 12)
			for i, e := range es {
				if tc.full {
					e.Values[testtopic.Note] = event.Value{S: "note-" + string(rune('a'+rng.IntN(5))), Valid: true}
					e.Values[testtopic.Code] = event.Value{I: int64(rng.IntN(600)) - 300, Valid: true}
					e.Values[testtopic.OK] = event.Value{I: int64(rng.IntN(2)), Valid: true}
					e.Values[testtopic.Load] = event.Value{F: rng.NormFloat64(), Valid: true}
				}
				switch i % 7 {
				case 0: // sums past int64 in both directions
					e.Values[testtopic.Bytes].I = math.MaxInt64 - int64(rng.IntN(10))
				case 1:
					e.Values[testtopic.Bytes].I = math.MinInt64 + int64(rng.IntN(10))
				case 2:
					e.Values[testtopic.Load] = event.Value{F: math.NaN(), Valid: true}
				case 3:
					e.Values[testtopic.CPU] = event.Value{F: math.NaN(), Valid: true}
				}
			}
			checkSlots(t, p, v, es, tc.skip)
		})
	}
}

// checkSlots updates es into Slots batch by batch, every row of a batch
// (UpdateAll) or, with skip, a selection of them (Update), and compares the
// states with Update's event by event over the same rows.
func checkSlots(t *testing.T, p *Plan, v *pipelines.View, es []*event.Event, skip bool) {
	t.Helper()
	type wk struct {
		start int64
		key   string
	}
	want := map[wk]*aggregate.State{}
	_, slide, _ := p.WindowGrid()
	g, sl := p.NewGrouper(), p.NewSlots()
	got := map[wk]*aggregate.State{}
	for _, batch := range [][2]int{{0, 1}, {1, 1500}, {1500, 1501}, {1501, len(es)}} {
		bes := es[batch[0]:batch[1]]
		c := testtopic.Columns(p.schema, bes, true)
		for f := range c.Fields {
			if !slices.Contains(c.Fields[f].Valid, false) {
				c.Fields[f].Valid = nil // no nulls, as the lake's reader leaves it
			}
		}
		var rows []int32
		for i, e := range bes {
			if skip && i%3 == 1 {
				continue
			}
			rows = append(rows, int32(i))
			key := string(p.Key(e, nil))
			for _, w := range p.Windows(e.Time, nil) {
				if want[wk{w.Start, key}] == nil {
					want[wk{w.Start, key}] = p.NewState()
				}
				p.Update(want[wk{w.Start, key}], e)
			}
		}
		ids := g.Groups(c, rows, nil)
		slotOf := map[wk]int32{}
		var owners []wk
		slots := make([]int32, len(rows))
		for k, r := range rows {
			key := wk{floorDiv(c.Time[r], slide) * slide, g.Key(ids[k])}
			s, ok := slotOf[key]
			if !ok {
				s = int32(len(owners))
				slotOf[key] = s
				owners = append(owners, key)
			}
			slots[k] = s
		}
		sl.Reset(len(owners))
		if skip {
			sl.Update(slots, rows, c)
		} else {
			sl.UpdateAll(slots, c)
		}
		for i, key := range owners {
			if got[key] == nil {
				got[key] = p.NewState()
			}
			sl.MergeInto(got[key], i)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d states, want %d", len(got), len(want))
	}
	for k, st := range want {
		if got[k] == nil {
			t.Fatalf("no state for %v", k)
		}
		gv, wv := p.Finalize(got[k]), p.Finalize(st)
		for i, a := range v.Aggregates {
			if !identical(gv[i], wv[i]) {
				t.Errorf("%v: %s = %+v, by rows %+v", k, a.Name, gv[i], wv[i])
			}
		}
	}
}

// TestDictKeys: a batch grouped by one dictionary-encoded string field
// without nulls gives its rows' dictionary indices, and WordID names each
// word's group as Groups does; with a null in the field, strings instead
// of indices, or two group-by fields, DictKeys declines.
func TestDictKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	es := randomEvents(rng, 500, 7)
	v := allAggsView()
	v.GroupBy = []string{"host"}
	p := mustCompile(t, v)
	c := testtopic.Columns(p.schema, es, true)
	c.Fields[testtopic.Host].Valid = nil
	g := p.NewGrouper()
	idx, words, ok := g.DictKeys(c)
	if !ok || len(idx) != len(es) || words != len(c.Fields[testtopic.Host].Words) {
		t.Fatalf("DictKeys = %d indices, %d words, %v; want %d, %d, true", len(idx), words, ok, len(es), len(c.Fields[testtopic.Host].Words))
	}
	rows := make([]int32, len(es))
	for i := range rows {
		rows[i] = int32(i)
	}
	want := p.NewGrouper().Groups(c, rows, nil)
	for k, w := range idx {
		if id := g.WordID(c, w); g.Key(id) != string(p.Key(es[k], nil)) || id != want[k] {
			t.Fatalf("row %d: WordID %d (key %q), Groups %d (key %q)", k, id, g.Key(id), want[k], p.Key(es[k], nil))
		}
	}
	c.Fields[testtopic.Host].Valid = make([]bool, len(es))
	if _, _, ok := g.DictKeys(c); ok {
		t.Error("DictKeys of a field with nulls")
	}
	if _, _, ok := g.DictKeys(testtopic.Columns(p.schema, es, false)); ok {
		t.Error("DictKeys of strings")
	}
	v.GroupBy = []string{"host", "region"}
	p2 := mustCompile(t, v)
	if _, _, ok := p2.NewGrouper().DictKeys(testtopic.Columns(p2.schema, es, true)); ok {
		t.Error("DictKeys of two group-by fields")
	}
}
