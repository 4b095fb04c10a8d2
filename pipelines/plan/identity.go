package plan

import (
	"fmt"
	"hash/fnv"
	"math"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// A compiled view carries two hashes of its definition, both persisted, each
// computed in one place:
//
//   - the definition hash (Plan.Definition) identifies everything a view's
//     windowed state depends on: where, group_by with the fields' types, the
//     window and the aggregates. The speed layer keeps it in its checkpoints
//     and recomputes a view whose definition changed (docs/checkpoint-format.md
//     specifies the text hashed). Lateness and retention are left out:
//     changing them changes what happens next, not what the state means.
//   - the signature identifies only the layout of one aggregate State: the
//     aggregates' kinds, input types and arguments. Package aggregate
//     computes it (aggregate.Builder.Build) and every marshalled State
//     carries it, so that a state is never read into a plan with other
//     aggregates, while views that differ only in their filter or window can
//     still exchange states.

// Definition returns the view's definition hash.
func (p *Plan) Definition() uint64 { return p.def }

// definitionHash is FNV-1a 64 of the text docs/checkpoint-format.md
// specifies.
func definitionHash(v *pipelines.View, t *pipelines.Topic) uint64 {
	h := fnv.New64a()
	typeOf := func(name string) string {
		if i := t.Schema.Index(name); i >= 0 {
			return t.Schema[i].Type.String()
		}
		return "?"
	}
	fmt.Fprintf(h, "from=%q;where=%q;", v.From, v.Where)
	for _, g := range v.GroupBy {
		fmt.Fprintf(h, "group=%q:%s;", g, typeOf(g))
	}
	w := v.Window
	fmt.Fprintf(h, "window=%q,%d,%d,%d;", w.Type, w.Size, w.Slide, w.Gap)
	for _, a := range v.Aggregates {
		fmt.Fprintf(h, "agg=%q:%q:%q:%s:%x;", a.Name, a.Func, a.Field, typeOf(a.Field), math.Float64bits(a.Arg))
	}
	return h.Sum64()
}
