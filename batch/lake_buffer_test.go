package batch

import (
	"fmt"
	"math"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestRowBufferRoundTrip: rows go into the buffer's encoding and come back
// the same, every field type with nulls and extremes, across block
// boundaries, chunk by chunk, each partition's run in offset order.
func TestRowBufferRoundTrip(t *testing.T) {
	schema := event.Schema{
		{Name: "s", Type: event.TypeString}, {Name: "l", Type: event.TypeLong}, {Name: "i", Type: event.TypeInt},
		{Name: "d", Type: event.TypeDouble}, {Name: "b", Type: event.TypeBool}, {Name: "t", Type: event.TypeTimestamp},
	}
	b := newRowBuffer(schema)
	want := map[int][]event.Event{}
	wantOffs := map[int][]int64{}
	const n = 20000
	for i := range n {
		part := i % 3
		v := []event.Value{
			{S: fmt.Sprintf("value %d %s", i, string(make([]byte, i%300))), Valid: i%7 != 0},
			{I: int64(i) * -987654321, Valid: i%5 != 0},
			{I: math.MinInt32 + int64(i), Valid: true},
			{F: []float64{math.Inf(1), -0.5, math.MaxFloat64, 3}[i%4], Valid: i%3 != 1},
			{I: int64(i % 2), Valid: true},
			{I: math.MaxInt64 - int64(i), Valid: i%11 != 0},
		}
		for j := range v {
			if !v[j].Valid {
				v[j] = event.Value{}
			}
		}
		ev := event.Event{ID: fmt.Sprintf("id-%d", i), Time: 1_767_225_600_000_000 - int64(i%17)*1e9, Ingest: int64(i / 100), Values: v}
		off := int64(1000 + i*2) // gaps: offsets of other periods
		b.add(0, part, off, &ev)
		want[part] = append(want[part], ev)
		wantOffs[part] = append(wantOffs[part], off)
	}
	if b.rows != n {
		t.Fatalf("%d rows", b.rows)
	}
	if per := float64(b.bytes) / n; per > 300 {
		t.Errorf("%.0f bytes a row buffered", per)
	}
	var rr runReader
	rr.schema = schema
	for part, evs := range want {
		r := b.periods[0][part]
		if len(r.blocks) < 2 {
			t.Fatalf("partition %d: %d blocks, want several", part, len(r.blocks))
		}
		rr.reset(r)
		k := 0
		for {
			got, offs, err := rr.next(chunkRows)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			for i := range got {
				w := evs[k]
				if got[i].ID != w.ID || got[i].Time != w.Time || got[i].Ingest != w.Ingest || offs[i] != wantOffs[part][k] {
					t.Fatalf("partition %d row %d: %s %d %d @%d, want %s %d %d @%d", part, k, got[i].ID, got[i].Time, got[i].Ingest, offs[i], w.ID, w.Time, w.Ingest, wantOffs[part][k])
				}
				for j := range w.Values {
					if got[i].Values[j] != w.Values[j] {
						t.Fatalf("partition %d row %d field %s: %+v, want %+v", part, k, schema[j].Name, got[i].Values[j], w.Values[j])
					}
				}
				k++
			}
		}
		if k != len(evs) {
			t.Fatalf("partition %d: %d rows back, want %d", part, k, len(evs))
		}
	}
}
