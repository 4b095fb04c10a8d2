package sinktest

import (
	"fmt"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// The shape of a target's write benchmark: each iteration writes BenchRows
// rows in Writes of BenchBatch (the runner's default max_rows).
const (
	BenchRows  = 100_000
	BenchBatch = 5000
)

// BenchTopicRows returns n rows of AllTypesTopic, a millisecond apart, of
// 50 hosts, with ids unique to benchmark iteration iter.
func BenchTopicRows(iter, n int) []sinks.Row {
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	long := func(i int64) event.Value { return event.Value{I: i, Valid: true} }
	str := func(s string) event.Value { return event.Value{S: s, Valid: true} }
	rows := make([]sinks.Row, n)
	for i := range rows {
		ts := base + int64(i)*1000
		rows[i] = sinks.Row{Time: ts, Values: []event.Value{
			long(ts), str(fmt.Sprintf("host-%d", i%50)), long(int64(i) * 1024),
			long(int64(i % 65536)), {F: float64(i%100) / 3, Valid: true}, long(int64(i % 2)),
			str(fmt.Sprintf("it%d-ev%d", iter, i)),
		}}
	}
	return rows
}

// BenchAgainstBaseline runs a write benchmark: each iteration takes
// BenchRows rows from gen and writes them in batches of BenchBatch through
// write (the target) and through baseline (what a program would write by
// hand with the engine's client), taking turns batch by batch so that both
// see the same load on a shared machine. It reports unit/s of both
// ("rows/s", "baseline_rows/s") and the target's speedup over the baseline.
func BenchAgainstBaseline(b *testing.B, unit string, gen func(iter, n int) []sinks.Row, write, baseline func(batch []sinks.Row) error) {
	b.Helper()
	var writeTime, rawTime time.Duration
	b.ReportAllocs()
	iter := 0
	for b.Loop() {
		rows := gen(iter, BenchRows)
		iter++
		for off := 0; off < len(rows); off += BenchBatch {
			batch := rows[off:min(off+BenchBatch, len(rows))]
			start := time.Now()
			if err := write(batch); err != nil {
				b.Fatal(err)
			}
			writeTime += time.Since(start)
			start = time.Now()
			if err := baseline(batch); err != nil {
				b.Fatal(err)
			}
			rawTime += time.Since(start)
		}
	}
	n := float64(iter * BenchRows)
	b.ReportMetric(n/writeTime.Seconds(), unit+"/s")
	b.ReportMetric(n/rawTime.Seconds(), "baseline_"+unit+"/s")
	b.ReportMetric(rawTime.Seconds()/writeTime.Seconds(), "speedup")
}
