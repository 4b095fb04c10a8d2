package batch

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// exampleSchema is the metrics topic of the ops-metrics example.
var exampleSchema = event.Schema{
	{Name: "ts", Type: event.TypeTimestamp, Required: true},
	{Name: "host", Type: event.TypeString, Required: true},
	{Name: "region", Type: event.TypeString, Required: true},
	{Name: "cpu", Type: event.TypeDouble, Required: true},
	{Name: "bytes", Type: event.TypeLong, Required: true},
}

// exampleEvents makes n events of exampleSchema: 1,000 hosts in 8 regions,
// one event per host about every second, ids numbered per client, entries
// of 100 events sharing an ingest time as the broker stamps them.
func exampleEvents(n int, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 1))
	regions := []string{"eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-east", "sa-east", "af-south"}
	hosts := make([]string, 1000)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("host-%04d", i)
	}
	base := int64(1_767_225_600_000_000) // 2026-01-01T00:00:00Z
	vals := make([]event.Value, n*len(exampleSchema))
	evs := make([]event.Event, n)
	for i := range evs {
		h := r.IntN(len(hosts))
		t := base + int64(i)*1000 + r.Int64N(500)
		v := vals[i*5 : i*5+5 : i*5+5]
		v[0] = event.Value{I: t, Valid: true}
		v[1] = event.Value{S: hosts[h], Valid: true}
		v[2] = event.Value{S: regions[h%len(regions)], Valid: true}
		v[3] = event.Value{F: float64(r.IntN(10000)) / 100, Valid: true}
		v[4] = event.Value{I: r.Int64N(1 << 20), Valid: true}
		ingest := base + int64(i/100*100)*1000 + 20000
		evs[i] = event.Event{ID: fmt.Sprintf("%s-%010d", hosts[h], i), Time: t, Ingest: ingest, Values: v}
	}
	return evs
}

// rawRow is the same lake row as a Go struct, for parquet-go's fastest
// path (GenericWriter[T]) with the same encodings and codec.
type rawRow struct {
	TS        int64   `parquet:"ts,timestamp(microsecond:utc),delta,zstd"`
	Host      string  `parquet:"host,dict,zstd"`
	Region    string  `parquet:"region,dict,zstd"`
	CPU       float64 `parquet:"cpu,zstd"`
	Bytes     int64   `parquet:"bytes,delta,zstd"`
	ID        string  `parquet:"_id,plain,zstd"`
	Partition int32   `parquet:"_partition,dict,zstd"`
	Offset    int64   `parquet:"_offset,delta,zstd"`
	EventTime int64   `parquet:"_event_time,timestamp(microsecond:utc),delta,zstd"`
	Ingest    int64   `parquet:"_ingest_time,timestamp(microsecond:utc),delta,zstd"`
}

const benchRows = 1_000_000

// BenchmarkLakeWrite compares the lake's file writer with raw parquet-go
// writing the same rows from Go structs, in the same run.
func BenchmarkLakeWrite(b *testing.B) {
	evs := exampleEvents(benchRows, 1)
	dir := b.TempDir()
	b.Run("lake", func(b *testing.B) {
		ls, err := newLakeSchema(exampleSchema)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(benchRows) // "MB/s" reads as million rows/s
		var size int64
		st, err := lakestore.NewDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		fw := newFileWriter(ls, nil)
		ranges := []offsetRange{{Partition: 0, First: 0, Last: benchRows - 1, Rows: benchRows}}
		cpu0 := cpuTime()
		for b.Loop() {
			w, err := st.Create(context.Background(), "lake.parquet")
			if err != nil {
				b.Fatal(err)
			}
			// The writer surveys a file's rows before writing them.
			for i := 0; i < len(evs); i += chunkRows {
				fw.observe(evs[i:min(i+chunkRows, len(evs))])
			}
			if err := fw.start(w, ranges); err != nil {
				b.Fatal(err)
			}
			for i := range evs {
				if err := fw.add(&evs[i], 0, int64(i)); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := fw.finish(); err != nil {
				b.Fatal(err)
			}
			if size, err = w.Commit(context.Background(), false); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size)/benchRows, "B/row")
		b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(benchRows)*float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
	})
	b.Run("raw", func(b *testing.B) {
		rows := make([]rawRow, len(evs))
		for i, e := range evs {
			rows[i] = rawRow{TS: e.Values[0].I, Host: e.Values[1].S, Region: e.Values[2].S, CPU: e.Values[3].F,
				Bytes: e.Values[4].I, ID: e.ID, Offset: int64(i), EventTime: e.Time, Ingest: e.Ingest}
		}
		b.ReportAllocs()
		b.SetBytes(benchRows)
		var size int64
		cpu0 := cpuTime()
		for b.Loop() {
			path := filepath.Join(dir, "raw.parquet")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			w := parquet.NewGenericWriter[rawRow](f, parquet.DataPageVersion(1), parquet.PageBufferSize(1<<20))
			for off := 0; off < len(rows); off += chunkRows {
				if _, err := w.Write(rows[off:min(off+chunkRows, len(rows))]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			st, _ := os.Stat(path)
			size = st.Size()
		}
		b.ReportMetric(float64(size)/benchRows, "B/row")
		b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(benchRows)*float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
	})
}

// BenchmarkLakeWriteFiles writes many small files with one fileWriter, as a
// flush of a backfill does: files of 48 rows (an hourly lake's average in
// the backfill benchmark) and of 920 (a daily one's), each surveyed first.
// It reports the CPU time per file and the bytes per row.
func BenchmarkLakeWriteFiles(b *testing.B) {
	for _, per := range []int{48, 920} {
		b.Run(fmt.Sprintf("rows=%d", per), func(b *testing.B) {
			const files = 200
			evs := exampleEvents(per*files, 1)
			ls, err := newLakeSchema(exampleSchema)
			if err != nil {
				b.Fatal(err)
			}
			fw := newFileWriter(ls, nil)
			var buf bytes.Buffer
			var size int64
			cpu0 := cpuTime()
			for b.Loop() {
				size = 0
				for f := range files {
					rows := evs[f*per : (f+1)*per]
					ranges := []offsetRange{{Partition: 0, First: int64(f * per), Last: int64((f+1)*per - 1), Rows: int64(per)}}
					buf.Reset()
					fw.observe(rows)
					if err := fw.start(&buf, ranges); err != nil {
						b.Fatal(err)
					}
					for i := range rows {
						if err := fw.add(&rows[i], 0, int64(f*per+i)); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := fw.finish(); err != nil {
						b.Fatal(err)
					}
					size += int64(buf.Len())
				}
			}
			b.ReportMetric(float64(size)/float64(per*files), "B/row")
			b.ReportMetric((cpuTime()-cpu0).Seconds()*1e6/float64(files*b.N), "cpu-µs/file")
		})
	}
}
