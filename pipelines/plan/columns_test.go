package plan

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
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
