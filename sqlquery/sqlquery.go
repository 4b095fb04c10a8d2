package sqlquery

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Views is what the engine needs of the serving store: a view's rows, both
// layers merged as the query API answers them. ok is false for an unknown
// view.
type Views interface {
	Rows(view string) (rows []viewrow.Row, ok bool)
}

// SinkDB is the database of a DuckDB sink run by this process, read beside
// its writer.
type SinkDB struct {
	Name string
	DB   *sql.DB
}

// Options are the engine's dependencies. A nil source leaves its tables
// out: a query naming them gets an error saying which role serves them.
type Options struct {
	// Lake lists the local paths of a topic's committed lake files whose
	// period overlaps span (batch.LakeFiles, or batch.LakeCopies for a lake
	// on object storage), which stay readable until release is called;
	// release may be nil. An error with a Limit() string method is a bound
	// the query hit (422 naming it).
	Lake func(ctx context.Context, topic string, span Span) (files []string, release func(), err error)
	// Views gives view rows (the serving store).
	Views Views
	// Sinks are the DuckDB sinks of this process.
	Sinks []SinkDB
	// Logger gets the engine's messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock a query's now() is read with to bound its lake
	// tables; nil is time.Now.
	Now func() time.Time
}

// Limits bound one query. Zero fields take the pipeline's sql limits.
type Limits struct {
	Timeout  time.Duration
	MaxRows  int
	MaxBytes int64
}

// Request is one query.
type Request struct {
	SQL    string
	Limits Limits
	// MayRead reports whether the caller may read a topic (its lake, the
	// views over it and their sink tables); "" stands for tables of no
	// topic (a sink's other tables). Nil allows everything.
	MayRead func(topic string) bool
}

// Column is one column of an answer: its name and DuckDB type.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Result is an answer: columns, then rows of values in column order as JSON
// encodes them (strings, json.Number, bools, nil, lists and objects; times
// as RFC 3339 strings in UTC).
type Result struct {
	Columns []Column
	Rows    [][]any
}

// Kind classifies an Error; the HTTP API answers each with its status.
type Kind int

// The kinds of Error.
const (
	// Invalid is SQL that does not parse or bind, or fails while running
	// on its data (400, with the position where DuckDB gives one).
	Invalid Kind = iota + 1
	// NotReadOnly is a statement other than one SELECT (400).
	NotReadOnly
	// UnknownTable names a table the pipeline does not have (400, with the
	// position and the likely typo).
	UnknownTable
	// Forbidden is a table the caller's token may not read (403).
	Forbidden
	// LimitExceeded is a query past sql.timeout, sql.max_rows,
	// sql.max_bytes, sql.memory_limit or sql.lake_cache (422, Limit names
	// which).
	LimitExceeded
	// Unavailable is a table this process does not serve (503 naming the
	// role that does).
	Unavailable
	// NotCompiled is a binary built without DuckDB (501).
	NotCompiled
	// Internal is anything else (500).
	Internal
)

// Error is a refused or failed query.
type Error struct {
	Kind Kind
	Msg  string
	// Line and Column locate the error in the SQL, 1-based; 0 when unknown.
	Line, Column int
	// Limit names the limit a LimitExceeded error hit: "sql.timeout",
	// "sql.max_rows", "sql.max_bytes", "sql.memory_limit" or
	// "sql.lake_cache".
	Limit string
	// Table is the table an UnknownTable or Forbidden error names.
	Table string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
	}
	return e.Msg
}

// limitsOf applies the pipeline's limits to a request's: a request may ask
// for less, never for more.
func limitsOf(p *pipelines.Pipeline, l Limits) Limits {
	out := Limits{Timeout: time.Duration(p.SQL.Timeout), MaxRows: p.SQL.MaxRows, MaxBytes: int64(p.SQL.MaxBytes)}
	if out.Timeout <= 0 {
		out.Timeout = 30 * time.Second
	}
	if out.MaxRows <= 0 {
		out.MaxRows = 10000
	}
	if out.MaxBytes <= 0 {
		out.MaxBytes = 16 << 20
	}
	if l.Timeout > 0 && l.Timeout < out.Timeout {
		out.Timeout = l.Timeout
	}
	if l.MaxRows > 0 && l.MaxRows < out.MaxRows {
		out.MaxRows = l.MaxRows
	}
	if l.MaxBytes > 0 && l.MaxBytes < out.MaxBytes {
		out.MaxBytes = l.MaxBytes
	}
	return out
}

// Schemas of the tables, besides one per DuckDB sink.
const (
	SchemaLake  = "lake"
	SchemaViews = "views"
)

// reserved are the schema names a sink cannot take.
var reserved = []string{SchemaLake, SchemaViews, "main", "temp", "memory", "system", "information_schema", "pg_catalog"}

func isReserved(name string) bool { return slices.Contains(reserved, name) }

// catalogSchema reports whether schema is one of the catalog views a
// database has of itself (information_schema, pg_catalog): they show the
// query's own database, which holds only the tables it was allowed.
func catalogSchema(schema string) bool {
	s := strings.ToLower(schema)
	return s == "information_schema" || s == "pg_catalog"
}
