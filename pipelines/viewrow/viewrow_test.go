package viewrow

import (
	"reflect"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestLayoutRoundTrip pins the positional layout: a row's event has its
// values in Schema's column order, and FromValues reads it back.
func TestLayoutRoundTrip(t *testing.T) {
	group := []event.Field{{Name: "region", Type: event.TypeString, Required: true}, {Name: "zone", Type: event.TypeLong}}
	aggs := []event.Field{{Name: "events", Type: event.TypeLong}}
	s := Schema(group, aggs)
	var names []string
	for _, f := range s {
		names = append(names, f.Name)
	}
	if want := []string{"window_start", "window_end", "region", "zone", "events"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("columns %v, want %v", names, want)
	}
	if s[0].Type != event.TypeTimestamp || !s[0].Required || s[1].Type != event.TypeTimestamp || !s[1].Required {
		t.Errorf("window columns: %+v %+v", s[0], s[1])
	}

	ts := TopicSchema(s)
	var topicNames []string
	for _, f := range ts {
		topicNames = append(topicNames, f.Name)
	}
	if want := []string{"window_start", "window_end", "region", "zone", "events", "final", "_deleted"}; !reflect.DeepEqual(topicNames, want) {
		t.Fatalf("topic fields %v, want %v", topicNames, want)
	}
	if cols := Columns(s); len(cols) != len(s)+1 || cols[len(s)].Name != ColFinal || cols[len(s)].Type != event.TypeBool || cols[len(s)].Required {
		t.Errorf("Columns = %+v", cols)
	}
	if len(s) != 5 {
		t.Errorf("Columns changed the values' schema: %+v", s)
	}

	for _, r := range []Row{
		{Start: 60e6, End: 120e6, Group: []event.Value{{S: "eu", Valid: true}, {}}, Aggs: []event.Value{{I: 7, Valid: true}}, Final: true},
		{Start: 60e6, End: 120e6, Group: []event.Value{{S: "eu", Valid: true}, {}}, Aggs: []event.Value{{I: 3, Valid: true}}},
		{Start: 60e6, End: 90e6, Group: []event.Value{{S: "eu", Valid: true}, {}}, Aggs: []event.Value{{}}, Deleted: true},
	} {
		ev := r.Event("id-1")
		if ev.ID != "id-1" || ev.Time != r.Start || len(ev.Values) != len(ts) {
			t.Fatalf("event %+v", ev)
		}
		if ev.Values[0] != (event.Value{I: 60e6, Valid: true}) || ev.Values[1] != (event.Value{I: r.End, Valid: true}) || ev.Values[2].S != "eu" || ev.Values[4] != r.Aggs[0] {
			t.Errorf("values %+v", ev.Values)
		}
		if ev.Values[5] != boolValue(r.Final) || ev.Values[6] != boolValue(r.Deleted) {
			t.Errorf("final and _deleted of %+v: %+v", r, ev.Values[5:])
		}
		back, ok := FromValues(ev.Values, len(group), len(aggs))
		if !ok || !reflect.DeepEqual(back, r) {
			t.Errorf("FromValues = %+v, %v; want %+v", back, ok, r)
		}
		if start, ok := Start(ev.Values); !ok || start != r.Start {
			t.Errorf("Start = %d, %v", start, ok)
		}
		if _, ok := FromValues(ev.Values[:4], len(group), len(aggs)); ok {
			t.Error("FromValues took values missing an aggregate")
		}
	}
	// A view file's row, and an event appended before final and _deleted
	// existed (they read as null), are final rows.
	for _, vals := range [][]event.Value{
		{{I: 60e6, Valid: true}, {I: 120e6, Valid: true}, {S: "eu", Valid: true}, {}, {I: 7, Valid: true}},
		{{I: 60e6, Valid: true}, {I: 120e6, Valid: true}, {S: "eu", Valid: true}, {}, {I: 7, Valid: true}, {}, {}},
	} {
		r, ok := FromValues(vals, len(group), len(aggs))
		if !ok || !r.Final || r.Deleted || len(r.Aggs) != 1 || r.Aggs[0].I != 7 {
			t.Errorf("FromValues(%d values) = %+v, %v; want a final row", len(vals), r, ok)
		}
	}
	if _, ok := Start(nil); ok {
		t.Error("Start of no values")
	}
}
