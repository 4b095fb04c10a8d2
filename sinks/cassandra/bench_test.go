package cassandra

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// Each benchmark iteration writes benchRows rows in Writes of benchBatch
// (the runner's default max_rows), then the same number of rows through a
// baseline: raw gocql prepared single-row inserts, benchConcurrency at a
// time (the sink's inFlight). It reports rows/s of both and their ratio.
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

// benchViewRows: 500 groups of 10 windows per Write batch, so batches per
// partition carry 10 rows.
func benchViewRows(iter, n int) []sinks.Row {
	rows := make([]sinks.Row, n)
	m := time.Minute.Microseconds()
	for i := range rows {
		w := int64(iter*benchRows+i) / 500 * m
		rows[i] = sinks.Row{Time: w, Values: []pipelines.Value{
			i64(w), i64(w + m), str(fmt.Sprintf("region-%d", i%500)), i64(int64(i)), f64(float64(i) / 7),
		}}
	}
	return rows
}

func BenchmarkWriteTopic(b *testing.B) {
	benchWrite(b, allTypesTopic("bench_topic"), allTypesTopic("bench_topic_raw"), benchTopicRows)
}

func BenchmarkWriteView(b *testing.B) {
	benchWrite(b, viewTable("bench_view"), viewTable("bench_view_raw"), benchViewRows)
}

func benchWrite(b *testing.B, tab, raw sinks.Table, gen func(iter, n int) []sinks.Row) {
	s := newTestSink(b, nil)
	ctx := context.Background()
	for _, t := range []sinks.Table{tab, raw} {
		if err := s.Prepare(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	sess, err := s.conn()
	if err != nil {
		b.Fatal(err)
	}
	stmt := insertCQL(s.keyspace, raw, 0)
	var sinkTime, rawTime time.Duration
	b.ReportAllocs()
	iter := 0
	for b.Loop() {
		rows := gen(iter, benchRows)
		iter++
		// Sink and baseline take turns batch by batch, so that both see
		// the same load on a shared machine.
		for off := 0; off < len(rows); off += benchBatch {
			batch := rows[off : off+benchBatch]
			start := time.Now()
			if err := s.Write(ctx, tab, batch); err != nil {
				b.Fatal(err)
			}
			sinkTime += time.Since(start)
			start = time.Now()
			if err := rawInserts(ctx, sess, stmt, raw, batch, s.inFlight); err != nil {
				b.Fatal(err)
			}
			rawTime += time.Since(start)
		}
	}
	n := float64(iter * benchRows)
	b.ReportMetric(n/sinkTime.Seconds(), "rows/s")
	b.ReportMetric(n/rawTime.Seconds(), "baseline_rows/s")
	b.ReportMetric(rawTime.Seconds()/sinkTime.Seconds(), "speedup")
}

// rawInserts is what a program would write by hand: one prepared INSERT per
// row, conc goroutines.
func rawInserts(ctx context.Context, sess *gocql.Session, stmt string, t sinks.Table, rows []sinks.Row, conc int) error {
	work := make(chan []any, conc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range conc {
		wg.Go(func() {
			for args := range work {
				if err := sess.Query(stmt, args...).WithContext(ctx).Exec(); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		})
	}
	for _, r := range rows {
		args, err := bindRow(t, r.Values)
		if err != nil {
			close(work)
			wg.Wait()
			return err
		}
		work <- args
	}
	close(work)
	wg.Wait()
	return first
}
