//go:build !noduckdb

package sqlquery

import (
	"context"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

type fixedViews map[string][]viewrow.Row

func (f fixedViews) Rows(view string) ([]viewrow.Row, bool) {
	r, ok := f[view]
	return r, ok
}

// BenchmarkQueryView measures one query's fixed cost (its own database,
// the parse check, the lock-down) plus copying a view of 1,000 rows in.
func BenchmarkQueryView(b *testing.B) {
	p := &pipelines.Pipeline{
		Topics: []pipelines.Topic{{Name: "m", Partitions: 1, Schema: event.Schema{{Name: "host", Type: event.TypeString}, {Name: "cpu", Type: event.TypeDouble}}}},
		Views: []pipelines.View{{Name: "v", From: "m", GroupBy: []string{"host"},
			Aggregates: pipelines.Aggregates{{Name: "n", Func: "count"}}}},
	}
	rows := make([]viewrow.Row, 1000)
	for i := range rows {
		rows[i] = viewrow.Row{Start: int64(i) * 60e6, End: int64(i+1) * 60e6,
			Group: []event.Value{{S: "h", Valid: true}}, Aggs: []event.Value{{I: int64(i), Valid: true}}, Final: true, Layer: viewrow.LayerSpeed}
	}
	e := New(p, Options{Views: fixedViews{"v": rows}})
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Query(context.Background(), Request{SQL: "SELECT count(*), sum(n) FROM v"})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Rows) != 1 {
			b.Fatalf("rows %v", res.Rows)
		}
	}
}
