package batch

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestRowBufferRoundTrip: rows go into the buffer's encoding and come back
// the same, every field type with nulls and extremes, across block
// boundaries, chunk by chunk, in event-time order (ties by partition, then
// offset) whatever order they were added in.
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
	for part := range want {
		if r := b.periods[0][part]; len(r.blocks) < 2 {
			t.Fatalf("partition %d: %d blocks, want several", part, len(r.blocks))
		}
	}
	// Back in event-time order, ties by partition then offset.
	type row struct {
		ev   event.Event
		part int32
		off  int64
	}
	var rows []row
	for part, evs := range want {
		for k, ev := range evs {
			rows = append(rows, row{ev, int32(part), wantOffs[part][k]})
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.ev.Time, b.ev.Time), cmp.Compare(a.part, b.part), cmp.Compare(a.off, b.off))
	})
	pr := periodReader{schema: schema}
	if err := pr.reset(b.periods[0]); err != nil {
		t.Fatal(err)
	}
	k := 0
	for {
		got, parts, offs := pr.next(chunkRows)
		if len(got) == 0 {
			break
		}
		for i := range got {
			w := rows[k]
			if got[i].ID != w.ev.ID || got[i].Time != w.ev.Time || got[i].Ingest != w.ev.Ingest || parts[i] != w.part || offs[i] != w.off {
				t.Fatalf("row %d: %s %d %d p%d@%d, want %s %d %d p%d@%d", k, got[i].ID, got[i].Time, got[i].Ingest, parts[i], offs[i],
					w.ev.ID, w.ev.Time, w.ev.Ingest, w.part, w.off)
			}
			for j := range w.ev.Values {
				if got[i].Values[j] != w.ev.Values[j] {
					t.Fatalf("row %d field %s: %+v, want %+v", k, schema[j].Name, got[i].Values[j], w.ev.Values[j])
				}
			}
			k++
		}
	}
	if k != n {
		t.Fatalf("%d rows back, want %d", k, n)
	}
	// A damaged run is an error, not a panic or wrong rows.
	r := b.periods[0][0]
	r.blocks[0] = r.blocks[0][:len(r.blocks[0])-1]
	if err := pr.reset(b.periods[0]); err == nil {
		t.Fatal("a truncated run was read without an error")
	}
}
