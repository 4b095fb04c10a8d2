package batch

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
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
		byPeriod[tl.layout.start(evs[i].Time)] = append(byPeriod[tl.layout.start(evs[i].Time)], i)
		ingest, maxTime = max(ingest, evs[i].Ingest), max(maxTime, evs[i].Time)
	}
	var entries []fileEntry
	for start, idx := range byPeriod {
		rows := make([]event.Event, len(idx))
		offs := make([]int64, len(idx))
		for k, i := range idx {
			rows[k], offs[k] = evs[i], first+int64(i)
		}
		path := tl.layout.path(start) + "/p" + strconv.Itoa(part) + "-" + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10) + ".parquet"
		entries = append(entries, writeTestFile(tb, tl, path, start, part, first, last, rows, offs))
	}
	_, err := tl.ms.commit(context.Background(), func(m *manifest) (*delta, error) {
		ps := m.partition(part)
		ps.Next, ps.Ingest, ps.Rows, ps.MaxTime = last+1, ingest, ps.Rows+int64(len(evs)), max(ps.MaxTime, maxTime)
		return &delta{Add: entries, Partitions: []partitionState{ps}}, nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// writeTestFile writes rows (of one partition, at offsets offs, in the
// period at start) as the lake file at path and returns its entry, which
// answers for [first, last].
func writeTestFile(tb testing.TB, tl *topicLake, path string, start int64, part int, first, last int64, rows []event.Event, offs []int64) fileEntry {
	tb.Helper()
	return writeTestFileWith(tb, tl, newFileWriter(tl.ls, nil), path, start, part, first, last, rows, offs)
}

// writeTestFileWith is writeTestFile with the file writer fw, which may
// have written other files before (as the lake writer's do).
func writeTestFileWith(tb testing.TB, tl *topicLake, fw *fileWriter, path string, start int64, part int, first, last int64, rows []event.Event, offs []int64) fileEntry {
	tb.Helper()
	fe := fileEntry{Path: path, Start: start, End: tl.layout.end(start), Rows: int64(len(rows)),
		Ranges: []offsetRange{{Partition: part, First: first, Last: last, Rows: int64(len(rows))}}}
	w, err := tl.st.Create(context.Background(), tl.key(path))
	if err != nil {
		tb.Fatal(err)
	}
	fw.observe(rows)
	if err := fw.start(w, fe.Ranges); err != nil {
		tb.Fatal(err)
	}
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
	for _, view := range []string{"design", "lean"} {
		b.Run(view, func(b *testing.B) {
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
			// Rows per second of CPU time (all threads): the per-core rate,
			// also on a machine others share.
			b.ReportMetric(float64(n)*float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
		})
	}
}

// BenchmarkRecomputeYear recomputes a view over a year of history shaped
// like the backfill benchmark's flights (336,776 events over 365 days,
// departures between 05:00 and 23:00) in a lake compacted to one file per
// period with data: with hourly partitioning 6,935 files, with daily 365,
// with monthly 12.
// What per-file work (open, checksum, footer, row groups) costs next to
// the rows.
func BenchmarkRecomputeYear(b *testing.B) {
	for _, part := range []string{pipelines.LakeHourly, pipelines.LakeDaily, pipelines.LakeMonthly} {
		b.Run("partitioning="+part, func(b *testing.B) { benchmarkRecomputeYear(b, part) })
	}
}

func benchmarkRecomputeYear(b *testing.B, partitioning string) {
	const n, days = 336_776, 365
	view := pipelines.View{
		Name: "by_region_day", From: "metrics", GroupBy: []string{"region"},
		Window: pipelines.Window{Type: "tumbling", Size: pipelines.Duration(24 * time.Hour), Lateness: pipelines.Duration(time.Hour)},
		Aggregates: pipelines.Aggregates{
			{Name: "events", Func: "count"}, {Name: "avg_cpu", Func: "avg", Field: "cpu"},
			{Name: "bytes", Func: "sum", Field: "bytes"}, {Name: "max_cpu", Func: "max", Field: "cpu"},
		},
	}
	topic := pipelines.Topic{Name: "metrics", Partitions: 1, Time: "ts", Schema: exampleSchema,
		Lake: pipelines.TopicLake{Partitioning: partitioning}}
	p := testPipeline(b.TempDir(), []pipelines.Topic{topic}, []pipelines.View{view})
	now := time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)
	bt, err := New(p, nil, nil, Options{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	evs := exampleEvents(n, 3)
	day := int64(24 * time.Hour / time.Microsecond)
	base := evs[0].Time - evs[0].Time%day
	for i := range evs {
		// Event i departs on day i·365/n, in order over 05:00–23:00.
		d := int64(i) * days / n
		first := int64(i) - (d*n+days-1)/days // index within its day
		perDay := int64(n / days)
		t := base + d*day + 5*int64(time.Hour/time.Microsecond) + first*18*int64(time.Hour/time.Microsecond)/(perDay+1)
		evs[i].Time, evs[i].Values[0].I = t, t
	}
	writeLakeDirect(b, bt.lakes["metrics"], 0, evs, 0)
	files := len(bt.manifestOf("metrics").Files())
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		bt.views[view.Name].st = newViewState()
		// The last hours are past the horizon (lateness), so not read.
		s, err := bt.recomputeWait(context.Background(), view.Name, time.Time{}, time.Time{}, nil)
		if err != nil || s.State != api.JobSucceeded || s.Rows < n-2000 {
			b.Fatalf("%+v %v", s, err)
		}
	}
	b.ReportMetric(float64(files), "files")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/recompute")
	b.ReportMetric(float64(n)*float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
