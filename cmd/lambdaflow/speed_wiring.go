package main

import (
	"github.com/lambdaflow/lambdaflow/serving"
	"github.com/lambdaflow/lambdaflow/speed"
)

// speedStore hands the speed layer's rows to the serving store. It lives here
// because speed may not import serving: the layers meet only in the wiring.
type speedStore struct{ s *serving.Store }

func (a speedStore) PutSpeed(view string, rows []speed.Row) { a.s.PutSpeed(view, toServing(rows)) }

func (a speedStore) DeleteSpeed(view string, rows []speed.Row) {
	a.s.DeleteSpeed(view, toServing(rows))
}

func (a speedStore) EvictSpeed(view string, endBefore int64) int {
	return a.s.EvictSpeed(view, endBefore)
}

func toServing(rs []speed.Row) []serving.Row {
	out := make([]serving.Row, len(rs))
	for i, r := range rs {
		out[i] = serving.Row{Start: r.Start, End: r.End, Group: r.Group, Aggs: r.Aggs, Final: r.Final}
	}
	return out
}
