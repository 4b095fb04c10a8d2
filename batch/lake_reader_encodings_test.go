package batch

import (
	"context"
	"fmt"
	"hash/crc32"
	"math"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// encRow is a lake row whose columns use the encodings the lake writer does
// not use today but parquet-go can write for them (a writer may pick
// another encoding per file): plain and dictionary-encoded integers and
// doubles, delta-length strings, plain booleans, a dictionary-encoded event
// time; nullable where a field may be.
type encRow struct {
	TS     int64    `parquet:"ts,timestamp(microsecond:utc),plain,zstd"`
	Region *string  `parquet:"region,optional,zstd"`
	Host   string   `parquet:"host,delta,snappy"`
	N      *int64   `parquet:"n,optional,dict,zstd"`
	Code   int32    `parquet:"code,dict,zstd"`
	CPU    *float64 `parquet:"cpu,optional,dict,zstd"`
	Load   float64  `parquet:"load,plain"`
	OK     *bool    `parquet:"ok,optional,zstd"`
	Small  *int32   `parquet:"small,optional,plain,zstd"`
	ID     string   `parquet:"_id,plain,zstd"`
	Part   int32    `parquet:"_partition,plain,zstd"`
	Off    int64    `parquet:"_offset,dict,zstd"`
	Event  int64    `parquet:"_event_time,timestamp(microsecond:utc),dict,zstd"`
	Ingest int64    `parquet:"_ingest_time,timestamp(microsecond:utc),plain,zstd"`
}

// TestLakeReaderEncodings: the lake's reader reads every encoding
// parquet-go writes for the lake's column types, not only those the lake
// writer picks today — plain and dictionary integers (64 and 32 bits) and
// doubles, dictionary event times and offsets, delta-length and plain
// strings, plain booleans — with nulls, small pages (so batches span pages
// and pages split batches) and several row groups: the values written,
// exactly.
func TestLakeReaderEncodings(t *testing.T) {
	schema, hour, in, want := encTestRows()
	rows := len(in)
	tl, _ := testDirLake(t, schema)
	fe := writeStructFile(t, tl, "dt=2026-01-01/hour=00/p3-1000-99999.parquet", hour, 3, 1000, in,
		parquet.PageBufferSize(2<<10), parquet.MaxRowsPerRowGroup(20_000))
	for _, fields := range [][]bool{nil, {false, true, false, false, false, true, false, false, true}} {
		var got []event.Event
		o, _, err := tl.openFile(context.Background(), fe)
		if err != nil {
			t.Fatal(err)
		}
		err = scanParquet(context.Background(), o, fe.Path, schema, fe, scanOptions{Fields: fields, IDs: true, Ingest: true}, func(b *scanBatch) error {
			for i, e := range b.Events {
				if b.Parts[i] != 3 || b.Offsets[i] != 1000+int64(len(got)) {
					return fmt.Errorf("row %d: partition %d offset %d", len(got), b.Parts[i], b.Offsets[i])
				}
				e.Values = append([]event.Value(nil), e.Values...)
				got = append(got, e)
			}
			return nil
		})
		o.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != rows {
			t.Fatalf("fields %v: read %d rows, want %d", fields, len(got), rows)
		}
		for i, e := range got {
			w := want[i]
			if e.ID != w.ID || e.Time != w.Time || e.Ingest != w.Ingest {
				t.Fatalf("fields %v: row %d: %s %d %d, want %s %d %d", fields, i, e.ID, e.Time, e.Ingest, w.ID, w.Time, w.Ingest)
			}
			for j, v := range e.Values {
				wv := w.Values[j]
				if fields != nil && !fields[j] {
					wv = event.Value{}
				}
				if v != wv || math.Signbit(v.F) != math.Signbit(wv.F) {
					t.Fatalf("fields %v: row %d field %s = %+v, want %+v", fields, i, schema[j].Name, v, wv)
				}
			}
		}
	}
}

// writeStructFile writes rows (of partition part from offset first on, in
// the hour at hour) with parquet-go's writer and options opts as the lake
// file at path of tl, and returns its manifest entry.
func writeStructFile[T any](t *testing.T, tl *topicLake, path string, hour int64, part int, first int64, rows []T, opts ...parquet.WriterOption) fileEntry {
	t.Helper()
	w, err := tl.st.Create(context.Background(), tl.key(path))
	if err != nil {
		t.Fatal(err)
	}
	h := crc32.New(castagnoli)
	pw := parquet.NewGenericWriter[T](multiWriter{w, h}, opts...)
	if _, err := pw.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	n := int64(len(rows))
	fe := fileEntry{Path: path, Start: hour, End: hour + hourMicros, Rows: n, CRC32C: h.Sum32(),
		Ranges: []offsetRange{{Partition: part, First: first, Last: first + n - 1, Rows: n}}}
	if fe.Bytes, err = w.Commit(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	return fe
}

// multiWriter writes to a lake object and a checksum at once.
type multiWriter struct {
	w interface{ Write([]byte) (int, error) }
	h interface{ Write([]byte) (int, error) }
}

func (m multiWriter) Write(p []byte) (int, error) {
	m.h.Write(p)
	return m.w.Write(p)
}

// encTestRows returns the schema, hour and rows of TestLakeReaderEncodings:
// as written (encRow) and as they must read back.
func encTestRows() (event.Schema, int64, []encRow, []event.Event) {
	schema := event.Schema{
		{Name: "ts", Type: event.TypeTimestamp, Required: true},
		{Name: "region", Type: event.TypeString},
		{Name: "host", Type: event.TypeString, Required: true},
		{Name: "n", Type: event.TypeLong},
		{Name: "code", Type: event.TypeInt, Required: true},
		{Name: "cpu", Type: event.TypeDouble},
		{Name: "load", Type: event.TypeDouble, Required: true},
		{Name: "ok", Type: event.TypeBool},
		{Name: "small", Type: event.TypeInt},
	}
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	const rows = 3*readBatchRows + 77
	in := make([]encRow, rows)
	want := make([]event.Event, rows)
	for i := range in {
		tm := hour + int64(i)*100
		r := encRow{TS: tm, Host: fmt.Sprintf("host-%d", i%13), Code: int32(i%50) - 25, Load: float64(i) * 1.5,
			ID: fmt.Sprintf("id-%06d", i), Part: 3, Off: 1000 + int64(i), Event: tm, Ingest: tm + 7}
		v := make([]event.Value, len(schema))
		v[0] = event.Value{I: tm, Valid: true}
		if i%3 != 0 {
			s := fmt.Sprintf("region-%d", i%5)
			r.Region, v[1] = &s, event.Value{S: s, Valid: true}
		}
		v[2] = event.Value{S: r.Host, Valid: true}
		if i%4 != 0 {
			n := int64(i%100) * -7
			r.N, v[3] = &n, event.Value{I: n, Valid: true}
		}
		v[4] = event.Value{I: int64(r.Code), Valid: true}
		if i < readBatchRows || i%6 != 0 { // no nulls in the first batch
			c := float64(i%40) / 4
			if i%17 == 0 {
				c = math.Copysign(0, -1)
			}
			r.CPU, v[5] = &c, event.Value{F: c, Valid: true}
		}
		v[6] = event.Value{F: r.Load, Valid: true}
		if i%2 == 0 {
			ok := i%3 == 0
			r.OK, v[7] = &ok, event.Value{I: int64(i % 3 % 2), Valid: true}
			if ok {
				v[7].I = 1
			} else {
				v[7].I = 0
			}
		}
		if i >= 2*readBatchRows && i%9 != 0 { // null in every row of the first batches
			s := int32(i)
			r.Small, v[8] = &s, event.Value{I: int64(s), Valid: true}
		}
		in[i] = r
		want[i] = event.Event{ID: r.ID, Time: tm, Ingest: r.Ingest, Values: v}
	}
	return schema, hour, in, want
}
