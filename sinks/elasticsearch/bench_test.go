package elasticsearch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

// Each benchmark iteration writes sinktest.BenchRows rows in Writes of
// sinktest.BenchBatch and, taking turns batch by batch so that both see the
// same load, the same rows through a baseline: one raw olivere bulk request
// per batch of documents built as maps, into an index of the same mapping.
// It reports docs/s of both and their ratio.
func BenchmarkWriteTopic(b *testing.B) {
	s := newTestSink(b, "", nil)
	ctx := context.Background()
	tab, raw := sinktest.AllTypesTopic("bench"), sinktest.AllTypesTopic("bench_raw")
	for _, t := range []sinks.Table{tab, raw} {
		if err := s.Prepare(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	rawIndex := s.pattern.index(raw.Name, 0)
	sinktest.BenchAgainstBaseline(b, "docs", sinktest.BenchTopicRows,
		func(batch []sinks.Row) error { return s.Write(ctx, tab, batch) },
		func(batch []sinks.Row) error { return rawBulk(ctx, s.client, rawIndex, raw, batch) })
}

// rawBulk is what a program would write by hand with olivere: a map per
// document, one bulk request.
func rawBulk(ctx context.Context, c *elastic.Client, index string, t sinks.Table, rows []sinks.Row) error {
	bulk := c.Bulk()
	for _, r := range rows {
		doc := make(map[string]any, len(t.Columns))
		var id string
		for i, f := range t.Columns {
			v := r.Values[i]
			switch {
			case f.Name == event.ColID:
				id = v.S
			case !v.Valid:
			case f.Type == event.TypeString:
				doc[f.Name] = v.S
			case f.Type == event.TypeDouble:
				doc[f.Name] = v.F
			case f.Type == event.TypeBool:
				doc[f.Name] = v.I != 0
			case f.Type == event.TypeTimestamp:
				doc[f.Name] = time.UnixMicro(v.I).UTC().Format(event.TimeLayoutMicros)
			default:
				doc[f.Name] = v.I
			}
		}
		bulk.Add(elastic.NewBulkIndexRequest().Index(index).Id(id).Doc(doc))
	}
	resp, err := bulk.Do(ctx)
	if err != nil {
		return err
	}
	if resp.Errors {
		return fmt.Errorf("%d items failed", len(resp.Failed()))
	}
	return nil
}
