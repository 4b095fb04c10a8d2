package cassandra

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

// Each benchmark iteration writes sinktest.BenchRows rows in Writes of
// sinktest.BenchBatch, then the same rows through a baseline: raw gocql
// prepared single-row inserts, s.inFlight at a time. It reports rows/s of
// both and their ratio.

// benchViewRows: 500 groups of 10 windows per Write batch, so batches per
// partition carry 10 rows.
func benchViewRows(iter, n int) []sinks.Row {
	rows := make([]sinks.Row, n)
	m := time.Minute.Microseconds()
	for i := range rows {
		w := int64(iter*sinktest.BenchRows+i) / 500 * m
		rows[i] = sinks.Row{Time: w, Values: []event.Value{
			i64(w), i64(w + m), str(fmt.Sprintf("region-%d", i%500)), i64(int64(i)), f64(float64(i) / 7),
		}}
	}
	return rows
}

func BenchmarkWriteTopic(b *testing.B) {
	benchWrite(b, sinktest.AllTypesTopic("bench_topic"), sinktest.AllTypesTopic("bench_topic_raw"), sinktest.BenchTopicRows)
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
	sinktest.BenchAgainstBaseline(b, "rows", gen,
		func(batch []sinks.Row) error { return s.Write(ctx, tab, batch) },
		func(batch []sinks.Row) error { return rawInserts(ctx, sess, stmt, raw, batch, s.inFlight) })
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
