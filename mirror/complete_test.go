package mirror

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestCompleteLeavesReadEventsAlone checks that giving pulled events their
// site writes into values of their own: a Reader's events are shared with
// the other Readers of the partition.
func TestCompleteLeavesReadEventsAlone(t *testing.T) {
	topic := &pipelines.Topic{Name: "orders", Schema: event.Schema{
		{Name: "id", Type: event.TypeString, Required: true},
		{Name: "site", Type: event.TypeString, Required: true},
	}}
	l := &link{topic: topic, src: &pipelines.Source{Site: "paris"}, siteIdx: 1, required: []int{0}}
	str := func(s string) event.Value { return event.Value{S: s, Valid: s != ""} }
	read := []event.Event{
		{ID: "a", Values: []event.Value{str("a"), str("")}},
		{ID: "b", Values: []event.Value{str("b"), str("lyon")}},
		{ID: "c", Values: []event.Value{str("c"), {S: "", Valid: true}}},
	}
	before := make([]event.Event, len(read))
	for i, ev := range read {
		before[i] = ev
		before[i].Values = slices.Clone(ev.Values)
	}
	var slab []event.Value
	var got []string
	for i := range read {
		ev, err := l.complete(read[i], int64(i), 0, &slab, len(read)-i)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		got = append(got, ev.ID+"@"+ev.Values[1].S)
	}
	if want := []string{"a@paris", "b@lyon", "c@paris"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("completed %v, want %v", got, want)
	}
	if !reflect.DeepEqual(read, before) {
		t.Fatalf("the read events changed: %v, were %v", read, before)
	}

	_, err := l.complete(event.Event{ID: "d", Values: []event.Value{{}, str("lyon")}}, 9, 2, &slab, 1)
	if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), `event "d" at site "paris", partition 2 offset 9, has no "id"`) {
		t.Fatalf("an event without a required field: %v", err)
	}
}
