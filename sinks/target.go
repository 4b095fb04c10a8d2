package sinks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Table describes one destination table or index: a topic or a view.
type Table struct {
	// Name is the topic's or the view's name; targets name the table after it.
	Name string
	// Columns in order: for a topic its fields then _id; for a view
	// window_start, window_end, the group-by fields, the aggregates and
	// final (viewrow.Columns).
	Columns event.Schema
	// Key lists the columns of the primary key: [_id] for a topic; the
	// group-by fields then window_start for a view.
	Key []string
	// View is true when the table holds a view's rows.
	View bool
}

// Row is one record to upsert, or to delete. Values are in Table.Columns
// order.
type Row struct {
	Values []event.Value
	// Delete asks the target to remove the row with this row's key (of a
	// view: a session window that merged into another); only the key
	// columns' values are set. Removing a row the table does not hold
	// changes nothing, so a redelivered delete is harmless. Within one
	// Write, the last row of a key wins, whether upsert or delete.
	Delete bool
	// Time is the event time (for a view, window_start), UTC microseconds;
	// targets use it for date-pattern index names.
	Time int64
	// Where the record is in the log, for dead letters and logs.
	Source    string
	Partition int
	Offset    int64
}

// AppendKey appends the group key (event.GroupKey's encoding) of the values at
// idx of vals (a row's key columns); a missing value is null. Targets use it
// to find the rows of one key within a Write, where the later row must win.
func AppendKey(b []byte, vals []event.Value, idx []int) []byte {
	for _, i := range idx {
		var v event.Value
		if i < len(vals) {
			v = vals[i]
		}
		b = event.AppendGroupKeyValue(b, v)
	}
	return b
}

// Target is one sink's adapter to its database. It stays thin: batching,
// retries with backoff, dead-lettering and metrics are the runner's, wrapped
// around it. Methods are called from one goroutine at a time per target
// (Write and Ping may overlap for a ConcurrentWriter).
type Target interface {
	// Prepare makes the table ready for writes: creates it (and its keyspace,
	// index template…) when the sink has create: true, and adds columns that
	// the table lacks where the database allows it. Called before the first
	// write to a table and again when its columns change.
	Prepare(ctx context.Context, t Table) error
	// Write upserts rows into t: writing the same row twice leaves one row.
	// It returns nil when every row is written; a RowErrors when some rows
	// were rejected for good (the rest are written); an error wrapping
	// ErrPermanent when the whole batch can never be written; any other error
	// is transient and the runner retries the batch.
	Write(ctx context.Context, t Table, rows []Row) error
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Close releases connections.
	Close() error
}

// ConcurrentWriter is implemented by a Target whose Write and Ping are safe
// to call from several goroutines at once (a connection pool). The runner
// then writes the batches of different partitions in parallel instead of
// one at a time; Prepare stays serialised and happens before any Write to
// its table.
type ConcurrentWriter interface {
	ConcurrentWrites() bool
}

// ErrPermanent marks an error that retrying cannot fix.
var ErrPermanent = errors.New("permanent")

// RowError is the permanent failure of one row of a batch.
type RowError struct {
	Index int // into the rows passed to Write
	Err   error
}

// RowErrors lists the rows of a batch that were rejected for good.
type RowErrors []RowError

func (e RowErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d rows rejected", len(e))
	for i, r := range e {
		if i == 3 {
			fmt.Fprintf(&b, "; …")
			break
		}
		fmt.Fprintf(&b, "; row %d: %v", r.Index, r.Err)
	}
	return b.String()
}

// TopicTable is the table a topic lands in: its fields plus _id, keyed by _id.
func TopicTable(t *pipelines.Topic) Table {
	cols := append(event.Schema(nil), t.Schema...)
	cols = append(cols, event.Field{Name: event.ColID, Type: event.TypeString, Required: true})
	return Table{Name: t.Name, Columns: cols, Key: []string{event.ColID}}
}

// ViewTable is the table a view lands in, keyed by its group-by fields and
// window_start: the view's values and final, whether the row is the
// window's last value (false while the window is open).
func ViewTable(v *pipelines.View, from *pipelines.Topic) Table {
	key := append(append([]string(nil), v.GroupBy...), viewrow.ColWindowStart)
	return Table{Name: v.Name, Columns: viewrow.Columns(pipelines.ViewSchema(v, from)), Key: key, View: true}
}
