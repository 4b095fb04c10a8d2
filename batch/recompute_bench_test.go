package batch

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// writeLakeDirect writes events of one partition into tl's lake, one file
// per hour, without a log, and commits them in the manifest.
func writeLakeDirect(tb testing.TB, tl *topicLake, part int, evs []event.Event, first int64) {
	tb.Helper()
	byHour := map[int64]*fileWriter{}
	entries := map[int64]*fileEntry{}
	last := first + int64(len(evs)) - 1
	var ingest int64
	for i := range evs {
		e := &evs[i]
		h := hourOf(e.Time)
		fw := byHour[h]
		if fw == nil {
			rel := hourPath(h) + "/" + fileName(part, first, last)
			var err error
			if fw, err = createFile(tl.ls, filepath.Join(tl.dir, filepath.FromSlash(rel))); err != nil {
				tb.Fatal(err)
			}
			byHour[h] = fw
			entries[h] = &fileEntry{Path: rel, Hour: h, Partition: part, First: first, Last: last, MinTime: e.Time, MaxTime: e.Time}
		}
		if err := fw.add(e, int32(part), first+int64(i)); err != nil {
			tb.Fatal(err)
		}
		fe := entries[h]
		fe.Rows++
		fe.MinTime, fe.MaxTime = min(fe.MinTime, e.Time), max(fe.MaxTime, e.Time)
		ingest = max(ingest, e.Ingest)
	}
	for h, fw := range byHour {
		if err := fw.finish(); err != nil {
			tb.Fatal(err)
		}
		entries[h].CRC32C = fw.sum.Sum32()
		if err := renameFile(fw.tmp, fw.final); err != nil {
			tb.Fatal(err)
		}
	}
	_, err := tl.ms.update(func(m *manifest) error {
		for _, fe := range entries {
			fe.Added = m.Version
			m.Files = append(m.Files, *fe)
		}
		m.setPartition(partitionState{Partition: part, Next: last + 1, Ingest: ingest})
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkRecompute runs a view's plan over a lake of 2M rows of the
// example schema: the ops-metrics example view (where, six aggregates with a
// quantile and a distinct count) and a lean one (count, sum, max).
//
// With LF_BENCH_LAKE=DIR set, the lake is written under DIR (emptied
// first) and kept, so that another engine can read the same files
// (bench/peers runs DuckDB over them).
func BenchmarkRecompute(b *testing.B) {
	const n = 2_000_000
	design := pipelines.View{
		Name: "design", From: "metrics", Where: "cpu >= 0", GroupBy: []string{"region"},
		Window: pipelines.Window{Type: "tumbling", Size: pipelines.Duration(time.Minute), Lateness: pipelines.Duration(30 * time.Second)},
		Aggregates: pipelines.Aggregates{
			{Name: "events", Func: "count"}, {Name: "avg_cpu", Func: "avg", Field: "cpu"},
			{Name: "max_cpu", Func: "max", Field: "cpu"}, {Name: "bytes", Func: "sum", Field: "bytes"},
			{Name: "hosts", Func: "count_distinct", Field: "host"}, {Name: "p95_cpu", Func: "quantile", Field: "cpu", Arg: 0.95},
		},
	}
	lean := pipelines.View{
		Name: "lean", From: "metrics", GroupBy: []string{"region"},
		Window: pipelines.Window{Type: "tumbling", Size: pipelines.Duration(time.Minute)},
		Aggregates: pipelines.Aggregates{
			{Name: "events", Func: "count"}, {Name: "bytes", Func: "sum", Field: "bytes"}, {Name: "max_cpu", Func: "max", Field: "cpu"},
		},
	}
	topic := pipelines.Topic{Name: "metrics", Partitions: 1, Time: "ts", Schema: exampleSchema}
	dir := b.TempDir()
	if d := os.Getenv("LF_BENCH_LAKE"); d != "" {
		if err := os.RemoveAll(d); err != nil {
			b.Fatal(err)
		}
		dir = d
	}
	p := testPipeline(dir, []pipelines.Topic{topic}, []pipelines.View{design, lean})
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	bt, err := New(p, nil, nil, Options{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	writeLakeDirect(b, bt.lakes["metrics"], 0, exampleEvents(n, 2), 0)
	readers := []struct {
		name string
		scan func(context.Context, string, event.Schema, fileEntry, scanOptions, func(*scanBatch) error) error
	}{{"parquet-go", scanParquet}, {"arrow", scanParquetArrow}}
	for _, view := range []string{"design", "lean"} {
		for _, rd := range readers {
			b.Run(view+"/reader="+rd.name, func(b *testing.B) {
				bt.lakes["metrics"].scan = rd.scan
				b.ReportAllocs()
				b.SetBytes(n) // "MB/s" reads as million rows/s
				cpu0 := cpuTime()
				for b.Loop() {
					bt.views[view].st = newViewState() // recompute everything
					s, err := bt.recomputeWait(context.Background(), view, time.Time{}, time.Time{}, nil)
					if err != nil || s.Rows != n {
						b.Fatalf("%+v %v", s, err)
					}
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
				// Rows per second of CPU time: the per-core rate, also on a
				// machine others share.
				b.ReportMetric(float64(n)*float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
			})
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
