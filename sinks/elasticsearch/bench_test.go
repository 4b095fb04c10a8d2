package elasticsearch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// Each benchmark iteration writes benchRows rows in Writes of benchBatch
// (the runner's default max_rows) and, taking turns batch by batch so that
// both see the same load, the same rows through a baseline: one raw
// olivere bulk request per batch of documents built as maps, into an index
// of the same mapping. It reports docs/s of both and their ratio.
const (
	benchRows  = 100_000
	benchBatch = 5000
)

func benchTopicRows(iter, n int) []sinks.Row {
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	rows := make([]sinks.Row, n)
	for i := range rows {
		ts := base + int64(i)*1000
		rows[i] = sinks.Row{Time: ts, Values: []pipelines.Value{
			i64(ts), str(fmt.Sprintf("host-%d", i%50)), i64(int64(i) * 1024),
			i64(int64(i % 65536)), f64(float64(i%100) / 3), i64(int64(i % 2)),
			str(fmt.Sprintf("it%d-ev%d", iter, i)),
		}}
	}
	return rows
}

func BenchmarkWriteTopic(b *testing.B) {
	s := newTestSink(b, "", nil)
	ctx := context.Background()
	tab, raw := allTypesTopic("bench"), allTypesTopic("bench_raw")
	for _, t := range []sinks.Table{tab, raw} {
		if err := s.Prepare(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	rawIndex := s.pattern.index(raw.Name, 0)
	var sinkTime, rawTime time.Duration
	b.ReportAllocs()
	iter := 0
	for b.Loop() {
		rows := benchTopicRows(iter, benchRows)
		iter++
		for off := 0; off < len(rows); off += benchBatch {
			batch := rows[off : off+benchBatch]
			start := time.Now()
			if err := s.Write(ctx, tab, batch); err != nil {
				b.Fatal(err)
			}
			sinkTime += time.Since(start)
			start = time.Now()
			if err := rawBulk(ctx, s.client, rawIndex, raw, batch); err != nil {
				b.Fatal(err)
			}
			rawTime += time.Since(start)
		}
	}
	n := float64(iter * benchRows)
	b.ReportMetric(n/sinkTime.Seconds(), "docs/s")
	b.ReportMetric(n/rawTime.Seconds(), "baseline_docs/s")
	b.ReportMetric(rawTime.Seconds()/sinkTime.Seconds(), "speedup")
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
			case f.Name == sinks.ColID:
				id = v.S
			case !v.Valid:
			case f.Type == pipelines.TypeString:
				doc[f.Name] = v.S
			case f.Type == pipelines.TypeDouble:
				doc[f.Name] = v.F
			case f.Type == pipelines.TypeBool:
				doc[f.Name] = v.I != 0
			case f.Type == pipelines.TypeTimestamp:
				doc[f.Name] = time.UnixMicro(v.I).UTC().Format(timeLayout)
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
