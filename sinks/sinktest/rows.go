package sinktest

import (
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// Tables and rows for a target's own tests, which write to it directly.

// AllTypesTopic is the table of a topic with one field of every type (ts
// and host required, the others nullable), and _id.
func AllTypesTopic(name string) sinks.Table {
	return sinks.TopicTable(&pipelines.Topic{Name: name, Schema: event.Schema{
		{Name: "ts", Type: event.TypeTimestamp, Required: true},
		{Name: "host", Type: event.TypeString, Required: true},
		{Name: "bytes", Type: event.TypeLong},
		{Name: "port", Type: event.TypeInt},
		{Name: "cpu", Type: event.TypeDouble},
		{Name: "up", Type: event.TypeBool},
	}})
}

// Rows makes the rows of a test Write from their values: each row's Time is
// its first value (a topic's ts, a view's window_start), its Source "test"
// and its Offset its position.
func Rows(vals ...[]event.Value) []sinks.Row {
	out := make([]sinks.Row, len(vals))
	for i, v := range vals {
		out[i] = sinks.Row{Values: v, Time: v[0].I, Source: "test", Offset: int64(i)}
	}
	return out
}
