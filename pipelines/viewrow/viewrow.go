// Package viewrow owns the view row: one window of one group of a view, as
// the speed layer and the batch layer compute it, the serving layer answers
// it, sinks deliver it and pipeline tests check it; and its positional
// layout as an event of the view's log topic:
//
//	window_start, window_end, the group-by fields, the aggregates, final, _deleted
//
// The first four make the row's values (Schema; also a row of the batch
// layer's view file). Sinks store the values and final (Columns). The view's
// topic carries all of it (TopicSchema): final is false for the current
// value of a window still open, true for its last value (the speed layer's
// final row, every batch row); _deleted is true on a tombstone, which says
// that the window of that group no longer exists under that start (a
// session merged into another) and that its row must be removed. An event
// written before final and _deleted existed reads them as null: it is a
// final row.
//
// This package is the one place that layout is written down: Schema,
// Columns and TopicSchema lay out the fields, Row.AppendValues, Row.Event,
// FromValues and Flags the values.
//
// It imports only the event package of Lambdaflow and keeps no state.
package viewrow

import "github.com/lambdaflow/lambdaflow/pipelines/event"

// Columns every view row has besides its group-by fields and aggregates,
// and the one the query API adds.
const (
	ColWindowStart = "window_start"
	ColWindowEnd   = "window_end"
	ColFinal       = "final"
	ColDeleted     = "_deleted"
	ColLayer       = "layer"
)

// Layer names the layer a row comes from.
type Layer string

// Layers.
const (
	LayerSpeed Layer = "speed"
	LayerBatch Layer = "batch"
)

// Row is one window of one group of a view.
type Row struct {
	Start, End int64         // window bounds, UTC microseconds, End exclusive
	Group      []event.Value // group-by values, in group_by order
	Aggs       []event.Value // aggregate values, in the view's order
	// Final is true when the window is closed and this is its last value;
	// batch rows are always final.
	Final bool
	// Deleted marks a tombstone: the window (Group, Start) no longer exists
	// and its row is to be removed. Its Aggs are nulls (one per aggregate,
	// so that its event has the layout of any other) and Final is false.
	Deleted bool
	// Key is the group key as plan.Plan.Key encodes it, when the speed
	// layer knows it (final and session rows); others leave it empty.
	Key string
	// Layer is set by the serving store on the way out.
	Layer Layer
}

// Positions of the values of a row in its event (see the package doc).
const (
	startAt = 0
	endAt   = 1
	groupAt = 2
)

// Schema lays out the values of a view's rows: window_start and
// window_end (required timestamps), then group, then aggs.
func Schema(group, aggs []event.Field) event.Schema {
	s := make(event.Schema, 0, groupAt+len(group)+len(aggs)+2)
	s = append(s,
		event.Field{Name: ColWindowStart, Type: event.TypeTimestamp, Required: true},
		event.Field{Name: ColWindowEnd, Type: event.TypeTimestamp, Required: true},
	)
	s = append(s, group...)
	return append(s, aggs...)
}

// Columns lays out what sinks store of a view whose values Schema laid
// out: the values, then final.
func Columns(values event.Schema) event.Schema {
	return append(values[:len(values):len(values)], event.Field{Name: ColFinal, Type: event.TypeBool})
}

// TopicSchema lays out the events of a view's log topic, for a view whose
// values Schema laid out: Columns, then _deleted. Both are optional: events
// appended before they existed read them as null.
func TopicSchema(values event.Schema) event.Schema {
	return append(Columns(values), event.Field{Name: ColDeleted, Type: event.TypeBool})
}

// AppendValues appends the row's values in Schema's order to dst (a row of
// the batch layer's view file).
func (r *Row) AppendValues(dst []event.Value) []event.Value {
	dst = append(dst, event.Value{I: r.Start, Valid: true}, event.Value{I: r.End, Valid: true})
	dst = append(dst, r.Group...)
	return append(dst, r.Aggs...)
}

// Event returns the row as an event of the view's log topic with the given
// id; its event time is the window's start (the topic's time field).
func (r *Row) Event(id string) event.Event {
	vals := r.AppendValues(make([]event.Value, 0, groupAt+len(r.Group)+len(r.Aggs)+2))
	vals = append(vals, boolValue(r.Final), boolValue(r.Deleted))
	return event.Event{ID: id, Time: r.Start, Values: vals}
}

func boolValue(b bool) event.Value {
	if b {
		return event.Value{I: 1, Valid: true}
	}
	return event.Value{Valid: true}
}

// FromValues reads a row from the values of an event of the view's log
// topic, or of a row of a view file, for a view with ngroup group-by fields
// and naggs aggregates. Group and Aggs alias vals. Final and Deleted come
// from Flags: a row without them (a view file's, an event appended before
// they existed) is final. ok is false when vals are too few.
func FromValues(vals []event.Value, ngroup, naggs int) (r Row, ok bool) {
	n := groupAt + ngroup + naggs
	if len(vals) < n {
		return Row{}, false
	}
	r = Row{
		Start: vals[startAt].I, End: vals[endAt].I,
		Group: vals[groupAt : groupAt+ngroup : groupAt+ngroup], Aggs: vals[groupAt+ngroup : n : n],
	}
	r.Final, r.Deleted = Flags(vals, n)
	return r, true
}

// Flags reads final and _deleted from the values of an event of the view's
// log topic whose row values (Schema) are the first nvalues: final is true
// unless the event says false, deleted false unless it says true.
func Flags(vals []event.Value, nvalues int) (final, deleted bool) {
	final = true
	if len(vals) > nvalues && vals[nvalues].Valid {
		final = vals[nvalues].I != 0
	}
	if len(vals) > nvalues+1 && vals[nvalues+1].Valid {
		deleted = vals[nvalues+1].I != 0
	}
	return final, deleted
}

// Start returns the window start of a row given as the values of its event.
func Start(vals []event.Value) (int64, bool) {
	if len(vals) <= startAt || !vals[startAt].Valid {
		return 0, false
	}
	return vals[startAt].I, true
}
