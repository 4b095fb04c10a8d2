package batch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// flightsSchema is the backfill benchmark's topic (bench/backfill/flights.yaml):
// sixteen fields of mixed types, some optional.
var flightsSchema = event.Schema{
	{Name: "sched_dep", Type: event.TypeTimestamp, Required: true},
	{Name: "carrier", Type: event.TypeString, Required: true},
	{Name: "flight", Type: event.TypeInt, Required: true},
	{Name: "tailnum", Type: event.TypeString, Required: true},
	{Name: "origin", Type: event.TypeString, Required: true},
	{Name: "dest", Type: event.TypeString, Required: true},
	{Name: "distance", Type: event.TypeLong, Required: true},
	{Name: "hour", Type: event.TypeInt, Required: true},
	{Name: "minute", Type: event.TypeInt, Required: true},
	{Name: "sched_arr_time", Type: event.TypeInt, Required: true},
	{Name: "dep_time", Type: event.TypeInt},
	{Name: "dep_delay", Type: event.TypeDouble},
	{Name: "arr_time", Type: event.TypeInt},
	{Name: "arr_delay", Type: event.TypeDouble},
	{Name: "air_time", Type: event.TypeDouble},
	{Name: "cancelled", Type: event.TypeBool, Required: true},
}

// flightEvents makes rowsPerHour events in each of hours consecutive
// hours, shuffled, with values shaped like the backfill benchmark's.
func flightEvents(hours, rowsPerHour int, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 7))
	carriers := []string{"UA", "B6", "EV", "DL", "AA", "MQ", "US", "9E", "WN", "VX"}
	origins := []string{"EWR", "JFK", "LGA"}
	base := time.Date(2013, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	n := hours * rowsPerHour
	evs := make([]event.Event, n)
	vals := make([]event.Value, n*len(flightsSchema))
	for i := range evs {
		t := base + int64(i/rowsPerHour)*hourMicros + int64(r.IntN(12))*5*60_000_000
		v := vals[i*16 : i*16+16 : i*16+16]
		v[0] = event.Value{I: t, Valid: true}
		v[1] = event.Value{S: carriers[r.IntN(len(carriers))], Valid: true}
		v[2] = event.Value{I: int64(1 + r.IntN(8500)), Valid: true}
		v[3] = event.Value{S: "N" + strconv.Itoa(100+r.IntN(4000)), Valid: true}
		v[4] = event.Value{S: origins[r.IntN(3)], Valid: true}
		v[5] = event.Value{S: "D" + strconv.Itoa(r.IntN(100)), Valid: true}
		v[6] = event.Value{I: int64(80 + r.IntN(4900)), Valid: true}
		v[7] = event.Value{I: int64(5 + r.IntN(19)), Valid: true}
		v[8] = event.Value{I: int64(5 * r.IntN(12)), Valid: true}
		v[9] = event.Value{I: int64(r.IntN(2400)), Valid: true}
		if r.IntN(40) > 0 {
			v[10] = event.Value{I: int64(r.IntN(2400)), Valid: true}
			v[11] = event.Value{F: float64(r.IntN(60) - 10), Valid: true}
			v[12] = event.Value{I: int64(r.IntN(2400)), Valid: true}
			v[13] = event.Value{F: float64(r.IntN(80) - 20), Valid: true}
			v[14] = event.Value{F: float64(20 + r.IntN(600)), Valid: true}
		}
		v[15] = event.Value{I: int64(r.IntN(2)), Valid: true}
		evs[i] = event.Event{ID: fmt.Sprintf("f%07d", i), Time: t, Ingest: base + int64(i/1000), Values: v}
	}
	r.Shuffle(n, func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	return evs
}

// BenchmarkLakeFlushSmallFiles is the hourly backfill's flush: one flush
// of a buffer holding 1,000 hours of ~48 rows each, from 8 partitions,
// into a fresh lake on a local directory (one file per hour, written,
// made durable and committed to the manifest as the lake writer does).
// It reports the wall clock and the CPU time per file.
func BenchmarkLakeFlushSmallFiles(b *testing.B) {
	const hours, perHour, parts = 1000, 48, 8
	evs := flightEvents(hours, perHour, 1)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	root := b.TempDir()
	var cpu time.Duration
	run := 0
	for b.Loop() {
		b.StopTimer()
		run++
		p := testPipeline(filepath.Join(root, strconv.Itoa(run)), []pipelines.Topic{testTopic("flights", parts)}, nil)
		p.Topics[0].Schema, p.Topics[0].Key, p.Topics[0].Time = flightsSchema, "tailnum", "sched_dep"
		st := openStore(b, p)
		tl, err := openTopicLake(ctx, st, &p.Topics[0], time.Now, testLogger(b))
		if err != nil {
			b.Fatal(err)
		}
		tw := newTopicWriter(tl, progressOnly{}, testLogger(b), time.Now, pipelines.LakeRoll{MaxRows: 1 << 30, MaxAge: pipelines.Duration(time.Hour)},
			10*time.Millisecond, m, newMemBudget(1<<30))
		for part := range parts {
			tw.parts[part] = &partWriter{committed: -1}
		}
		for part := range parts {
			var mine []event.Event
			for i := part; i < len(evs); i += parts {
				mine = append(mine, evs[i])
			}
			if err := tw.add(part, tw.gen, &broker.Entry{Offset: 0, Events: mine, Ingest: 1}); err != nil {
				b.Fatal(err)
			}
		}
		cpu0 := cpuTime()
		b.StartTimer()
		if err := tw.flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime() - cpu0
		if files := len(tl.ms.snapshot().Files()); files != hours {
			b.Fatalf("%d files, want %d", files, hours)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*hours), "µs/file")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*hours), "cpu-µs/file")
}
