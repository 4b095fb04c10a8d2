// Package viewrow owns the view row: one window of one group of a view, as
// the speed layer and the batch layer compute it, the serving layer answers
// it, sinks deliver it and pipeline tests check it; and its positional
// layout as an event of the view's log topic (and a row of the batch
// layer's view file):
//
//	window_start, window_end, the group-by fields, the aggregates
//
// This package is the one place that layout is written down: Schema lays
// out the columns, Row.AppendValues and FromValues the values.
//
// It imports only the event package of Lambdaflow and keeps no state.
package viewrow

import "github.com/lambdaflow/lambdaflow/pipelines/event"

// Columns every view row starts with, and the one the query API adds.
const (
	ColWindowStart = "window_start"
	ColWindowEnd   = "window_end"
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

// Schema lays out the columns of a view's rows: window_start and
// window_end (required timestamps), then group, then aggs.
func Schema(group, aggs []event.Field) event.Schema {
	s := make(event.Schema, 0, groupAt+len(group)+len(aggs))
	s = append(s,
		event.Field{Name: ColWindowStart, Type: event.TypeTimestamp, Required: true},
		event.Field{Name: ColWindowEnd, Type: event.TypeTimestamp, Required: true},
	)
	s = append(s, group...)
	return append(s, aggs...)
}

// AppendValues appends the row's values in Schema's order to dst.
func (r *Row) AppendValues(dst []event.Value) []event.Value {
	dst = append(dst, event.Value{I: r.Start, Valid: true}, event.Value{I: r.End, Valid: true})
	dst = append(dst, r.Group...)
	return append(dst, r.Aggs...)
}

// Event returns the row as an event of the view's log topic with the given
// id; its event time is the window's start (the topic's time field).
func (r *Row) Event(id string) event.Event {
	vals := r.AppendValues(make([]event.Value, 0, groupAt+len(r.Group)+len(r.Aggs)))
	return event.Event{ID: id, Time: r.Start, Values: vals}
}

// FromValues reads a final row from the values of an event of the view's
// log topic, or of a row of a view file, for a view with ngroup group-by
// fields. Group and Aggs alias vals. ok is false when vals are too few.
func FromValues(vals []event.Value, ngroup int) (r Row, ok bool) {
	if len(vals) < groupAt+ngroup {
		return Row{}, false
	}
	return Row{
		Start: vals[startAt].I, End: vals[endAt].I,
		Group: vals[groupAt : groupAt+ngroup], Aggs: vals[groupAt+ngroup:],
		Final: true,
	}, true
}

// Start returns the window start of a row given as the values of its event.
func Start(vals []event.Value) (int64, bool) {
	if len(vals) <= startAt || !vals[startAt].Valid {
		return 0, false
	}
	return vals[startAt].I, true
}
