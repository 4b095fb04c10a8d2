package batch

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestLakeFileRoundTrip writes a lake file with every field type, optional
// fields with nulls and enough rows for several pages and read batches, and
// reads it back with the lake's reader: the same events, exactly, also
// when only some fields are read.
func TestLakeFileRoundTrip(t *testing.T) {
	schema := event.Schema{
		{Name: "ts", Type: event.TypeTimestamp, Required: true},
		{Name: "host", Type: event.TypeString, Required: true},
		{Name: "note", Type: event.TypeString}, // optional, high cardinality
		{Name: "n", Type: event.TypeLong},
		{Name: "code", Type: event.TypeInt},
		{Name: "cpu", Type: event.TypeDouble},
		{Name: "ok", Type: event.TypeBool},
		{Name: "seen", Type: event.TypeTimestamp},
	}
	ls, err := newLakeSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	const rows = 3*readBatchRows + 123
	evs := make([]event.Event, rows)
	for i := range evs {
		v := make([]event.Value, len(schema))
		tm := hour + int64(i)*1000
		v[0] = event.Value{I: tm, Valid: true}
		v[1] = event.Value{S: fmt.Sprintf("host-%d", i%37), Valid: true}
		if i%3 != 0 {
			v[2] = event.Value{S: fmt.Sprintf("note %d with some words", i), Valid: true}
		}
		if i%5 != 0 {
			v[3] = event.Value{I: int64(i*i) - 1_000_000, Valid: true}
		}
		if i%7 != 0 {
			v[4] = event.Value{I: int64(int32(i * 7919)), Valid: true}
		}
		if i%2 == 0 {
			v[5] = event.Value{F: float64(i) / 3, Valid: true}
		} else if i%11 == 0 {
			v[5] = event.Value{F: math.Inf(-1), Valid: true}
		}
		if i%4 != 0 {
			v[6] = event.Value{I: int64(i % 3 % 2), Valid: true}
		}
		if i%9 != 0 {
			v[7] = event.Value{I: tm - int64(i), Valid: true}
		}
		evs[i] = event.Event{ID: fmt.Sprintf("id-%07d", i), Time: tm, Ingest: tm + 5, Values: v}
	}
	st, err := lakestore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tl := &topicLake{topic: &pipelines.Topic{Name: "t", Schema: schema}, st: st, ls: ls, layout: layout{size: hourMicros}}
	offsets := make([]int64, rows)
	for i := range offsets {
		offsets[i] = 1000 + int64(i)
	}
	fe := writeTestFile(t, tl, "dt=2026-01-01/hour=00/p3-1000-99999.parquet", hour, 3, 1000, 1000+rows-1, evs, offsets)
	readers := map[string]func(context.Context, lakestore.Object, string, event.Schema, fileEntry, scanOptions, func(*scanBatch) error) error{
		"parquet-go": scanParquet, "arrow": scanParquetArrow,
	}
	for name, scan := range readers {
		for _, fields := range [][]bool{nil, {false, true, false, false, false, true, true, false}} {
			var got []event.Event
			var offs []int64
			o, _, err := tl.openFile(context.Background(), fe)
			if err != nil {
				t.Fatal(err)
			}
			err = scan(context.Background(), o, fe.Path, schema, fe, scanOptions{Fields: fields, IDs: true, Ingest: true}, func(b *scanBatch) error {
				for i, e := range b.Events {
					if b.Parts[i] != 3 {
						return fmt.Errorf("partition %d", b.Parts[i])
					}
					e.Values = append([]event.Value(nil), e.Values...)
					got = append(got, e)
					offs = append(offs, b.Offsets[i])
				}
				return nil
			})
			o.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != rows {
				t.Fatalf("%s: fields %v: read %d rows, want %d", name, fields, len(got), rows)
			}
			for i, e := range got {
				w := evs[i]
				if e.ID != w.ID || e.Time != w.Time || e.Ingest != w.Ingest || offs[i] != 1000+int64(i) {
					t.Fatalf("%s: fields %v: row %d: %s %d %d offset %d, want %s %d %d %d", name, fields, i, e.ID, e.Time, e.Ingest, offs[i], w.ID, w.Time, w.Ingest, 1000+i)
				}
				for j, v := range e.Values {
					want := w.Values[j]
					if fields != nil && !fields[j] {
						want = event.Value{}
					}
					if v != want && !(math.IsNaN(v.F) && math.IsNaN(want.F)) {
						t.Fatalf("%s: fields %v: row %d field %s = %+v, want %+v", name, fields, i, schema[j].Name, v, want)
					}
				}
			}
		}
	}
}
