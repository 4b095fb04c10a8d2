// Package testtopic is the topic the pipeline packages' tests share: the
// ops-metrics example's metrics topic plus an optional field of each type,
// and a builder of its events. Only tests import it.
package testtopic

import "github.com/lambdaflow/lambdaflow/pipelines/event"

// Field positions in Schema.
const (
	TS = iota
	Host
	Region
	CPU
	Bytes
	Note
	Code
	OK
	Load
	NFields
)

// Schema returns a new copy of the topic's schema: ts, host, region, cpu
// and bytes required; note, code, ok and load optional.
func Schema() event.Schema {
	return event.Schema{
		{Name: "ts", Type: event.TypeTimestamp, Required: true},
		{Name: "host", Type: event.TypeString, Required: true},
		{Name: "region", Type: event.TypeString, Required: true},
		{Name: "cpu", Type: event.TypeDouble, Required: true},
		{Name: "bytes", Type: event.TypeLong, Required: true},
		{Name: "note", Type: event.TypeString},
		{Name: "code", Type: event.TypeInt},
		{Name: "ok", Type: event.TypeBool},
		{Name: "load", Type: event.TypeDouble},
	}
}

// Event builds an event at time t (µs, also its ts) with the given id; vals
// maps field positions to values (string, int64, int, float64, bool or nil);
// other fields are null.
func Event(t int64, id string, vals map[int]any) *event.Event {
	e := &event.Event{ID: id, Time: t, Values: make([]event.Value, NFields)}
	e.Values[TS] = event.Value{I: t, Valid: true}
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			e.Values[i] = event.Value{S: v, Valid: true}
		case int64:
			e.Values[i] = event.Value{I: v, Valid: true}
		case int:
			e.Values[i] = event.Value{I: int64(v), Valid: true}
		case float64:
			e.Values[i] = event.Value{F: v, Valid: true}
		case bool:
			e.Values[i] = event.Value{I: map[bool]int64{true: 1}[v], Valid: true}
		case nil:
		default:
			panic("testtopic: unsupported value")
		}
	}
	return e
}
