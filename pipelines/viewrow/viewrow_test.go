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

	r := Row{Start: 60e6, End: 120e6, Group: []event.Value{{S: "eu", Valid: true}, {}}, Aggs: []event.Value{{I: 7, Valid: true}}, Final: true}
	ev := r.Event("id-1")
	if ev.ID != "id-1" || ev.Time != r.Start || len(ev.Values) != len(s) {
		t.Fatalf("event %+v", ev)
	}
	if ev.Values[0] != (event.Value{I: 60e6, Valid: true}) || ev.Values[1] != (event.Value{I: 120e6, Valid: true}) || ev.Values[2].S != "eu" || ev.Values[4].I != 7 {
		t.Errorf("values %+v", ev.Values)
	}
	back, ok := FromValues(ev.Values, len(group))
	if !ok || !reflect.DeepEqual(back, r) {
		t.Errorf("FromValues = %+v, %v; want %+v", back, ok, r)
	}
	if start, ok := Start(ev.Values); !ok || start != r.Start {
		t.Errorf("Start = %d, %v", start, ok)
	}
	if _, ok := FromValues(ev.Values[:3], len(group)); ok {
		t.Error("FromValues took values missing a group field")
	}
	if _, ok := Start(nil); ok {
		t.Error("Start of no values")
	}
}
