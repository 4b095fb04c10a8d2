package batch

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// writeLakeDirect writes events of one partition into tl's lake, one file
// per period, without a log, and commits them in the manifest.
func writeLakeDirect(tb testing.TB, tl *topicLake, part int, evs []event.Event, first int64) {
	tb.Helper()
	last := first + int64(len(evs)) - 1
	byPeriod := map[int64][]int{}
	var ingest, maxTime int64
	for i := range evs {
		byPeriod[periodOf(evs[i].Time, tl.period)] = append(byPeriod[periodOf(evs[i].Time, tl.period)], i)
		ingest, maxTime = max(ingest, evs[i].Ingest), max(maxTime, evs[i].Time)
	}
	var entries []FileEntry
	for start, idx := range byPeriod {
		rows := make([]event.Event, len(idx))
		offs := make([]int64, len(idx))
		for k, i := range idx {
			rows[k], offs[k] = evs[i], first+int64(i)
		}
		path := periodPath(start, tl.period) + "/p" + strconv.Itoa(part) + "-" + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10) + ".parquet"
		entries = append(entries, writeTestFile(tb, tl, path, start, part, first, last, rows, offs))
	}
	_, err := tl.ms.commit(context.Background(), func(m *Manifest) (*Delta, error) {
		ps := m.partition(part)
		ps.Next, ps.Ingest, ps.Rows, ps.MaxTime = last+1, ingest, ps.Rows+int64(len(evs)), max(ps.MaxTime, maxTime)
		return &Delta{Add: entries, Partitions: []PartitionState{ps}}, nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// writeTestFile writes rows (of one partition, at offsets offs, in the
// period at start) as the lake file at path and returns its entry, which
// answers for [first, last].
func writeTestFile(tb testing.TB, tl *topicLake, path string, start int64, part int, first, last int64, rows []event.Event, offs []int64) FileEntry {
	tb.Helper()
	fe := FileEntry{Path: path, Start: start, End: start + tl.period, Rows: int64(len(rows)),
		Ranges: []Range{{Partition: part, First: first, Last: last, Rows: int64(len(rows))}}}
	w, err := tl.st.Create(context.Background(), tl.key(path))
	if err != nil {
		tb.Fatal(err)
	}
	fw := newFileWriter(tl.ls)
	fw.start(w, fe.Ranges)
	for i := range rows {
		if i == 0 || rows[i].Time < fe.MinTime {
			fe.MinTime = rows[i].Time
		}
		fe.MaxTime = max(fe.MaxTime, rows[i].Time)
		if err := fw.add(&rows[i], int32(part), offs[i]); err != nil {
			tb.Fatal(err)
		}
	}
	if fe.CRC32C, err = fw.finish(); err != nil {
		tb.Fatal(err)
	}
	if fe.Bytes, err = w.Commit(context.Background(), true); err != nil {
		tb.Fatal(err)
	}
	return fe
}

// BenchmarkRecompute runs a view's plan over a lake of 2M rows of the
// example schema: the ops-metrics example view (where, six aggregates with a
// quantile and a distinct count) and a lean one (count, sum, max).
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
	p := testPipeline(b.TempDir(), []pipelines.Topic{topic}, []pipelines.View{design, lean})
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	bt, err := New(p, nil, nil, Options{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	writeLakeDirect(b, bt.lakes["metrics"], 0, exampleEvents(n, 2), 0)
	readers := []struct {
		name string
		scan func(context.Context, lakestore.Object, string, event.Schema, FileEntry, scanOptions, func(*scanBatch) error) error
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
					s, err := bt.RunJob(context.Background(), view, time.Time{}, time.Time{}, nil)
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
