package batch

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestDictionariesInValueOrder writes daily-sized files of few distinct
// values with one file writer, each file with other values than the one
// before, and reads each file's numeric dictionaries: exactly the file's
// own distinct values (nothing left from the file before), in value order
// (doubles: -0 before +0), and every row back exactly with the batch
// layer's reader, pyarrow and DuckDB. (NaNs in a seeded dictionary:
// TestLakeParquetJava's daily file.)
func TestDictionariesInValueOrder(t *testing.T) {
	tl, dir := testDirLake(t, encodingSchema)
	daily := &topicLake{topic: tl.topic, st: tl.st, ls: tl.ls, layout: layout{size: dayMicros}}
	fw := newFileWriter(tl.ls, nil)
	day := periodOf(1_767_225_600_000_000, dayMicros)
	for k := range 3 {
		start := day + int64(k)*dayMicros
		evs := encodingEvents(600, start, true)
		for i := range evs {
			v := evs[i].Values
			v[3].I += int64(k * 7) // other codes in every file
			v[4].I = int64((i*2654435761>>7)%6) * 1_000_000_007
			// 40 log entries, stored at no regular interval, whose events
			// interleave in no pattern
			h := uint64(i+1) * 0x9E3779B97F4A7C15
			h ^= h >> 31
			h *= 0xBF58476D1CE4E5B9
			h ^= h >> 29
			e := h%40 + 1
			evs[i].Ingest = start + int64(e*0x9E3779B97F4A7C15>>28)
			if v[5].Valid {
				v[5].F = float64((i*2654435761>>9)%12) * 0.1 // mantissas BYTE_STREAM_SPLIT cannot shrink
			}
			if i%50 == 1 {
				v[5] = event.Value{F: []float64{math.Inf(1), math.Copysign(0, -1), 0, math.Inf(-1)}[(i/50)%4], Valid: true}
			}
		}
		offs := make([]int64, len(evs))
		for i := range offs {
			offs[i] = int64(k*1000 + i)
		}
		path := fmt.Sprintf("%s/f%d.parquet", periodPath(start, dayMicros), k)
		fe := writeTestFileWith(t, daily, fw, path, start, 2, offs[0], offs[len(offs)-1], evs, offs)
		file := filepath.Join(dir, filepath.FromSlash(daily.key(path)))
		pf := openParquet(t, file)
		for col, name := range []string{"code", "level", "ratio", event.ColIngestTime} {
			leaf, ok := pf.Schema().Lookup(name)
			if !ok {
				t.Fatalf("no column %s", name)
			}
			dict := readDictionary(t, pf, leaf.ColumnIndex)
			if dict == nil {
				t.Fatalf("file %d: %s is not dictionary-encoded (%v)", k, name, pf.Metadata().RowGroups[0].Columns[leaf.ColumnIndex].MetaData.Encoding)
			}
			var want []uint64
			for _, ev := range evs {
				switch {
				case name == event.ColIngestTime:
					want = append(want, uint64(ev.Ingest))
				case !ev.Values[leaf.ColumnIndex].Valid:
				case name == "ratio":
					want = append(want, math.Float64bits(ev.Values[leaf.ColumnIndex].F))
				default:
					want = append(want, uint64(ev.Values[leaf.ColumnIndex].I))
				}
			}
			typ := []event.FieldType{event.TypeInt, event.TypeLong, event.TypeDouble, event.TypeTimestamp}[col]
			want = sortedDistinct(nil, typ, want)
			if !slices.Equal(dict, want) {
				t.Errorf("file %d: %s: dictionary %v, want the file's distinct values in order %v", k, name, dict, want)
			}
		}
		readBack(t, daily, fe, evs, offs)
		checkPyarrowDuckDB(t, file, evs, offs)
	}
}

// readDictionary returns the values of column c's dictionary page (as
// bits: integers as themselves, doubles by math.Float64bits), nil when the
// column has none.
func readDictionary(t *testing.T, pf *parquet.File, c int) []uint64 {
	t.Helper()
	fp := pf.RowGroups()[0].ColumnChunks()[c].Pages().(*parquet.FilePages)
	defer fp.Close()
	d, err := fp.ReadDictionary()
	if err != nil {
		t.Fatal(err)
	}
	if d == nil {
		return nil
	}
	out := make([]uint64, d.Len())
	for i := range out {
		v := d.Index(int32(i))
		switch v.Kind() {
		case parquet.Double:
			out[i] = math.Float64bits(v.Double())
		default:
			out[i] = uint64(v.Int64())
		}
	}
	return out
}
