package sqlquery

import (
	"database/sql"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// Engine answers queries for one pipeline. It keeps no state between
// queries and is safe for concurrent use.
type Engine struct {
	p     *pipelines.Pipeline
	opts  Options
	log   *slog.Logger
	sinks map[string]*sql.DB // DuckDB sinks of this process, by name
	// duckSinks are the pipeline's DuckDB sinks, run here or not.
	duckSinks []string
	now       func() time.Time
}

// New returns the engine of pipeline p.
func New(p *pipelines.Pipeline, opts Options) *Engine {
	e := &Engine{p: p, opts: opts, log: opts.Logger, sinks: map[string]*sql.DB{}}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, s := range opts.Sinks {
		e.sinks[s.Name] = s.DB
	}
	e.now = opts.Now
	if e.now == nil {
		e.now = time.Now
	}
	for i := range p.Sinks {
		if p.Sinks[i].Type == "duckdb" {
			e.duckSinks = append(e.duckSinks, p.Sinks[i].Name)
		}
	}
	return e
}

// tableKind says where a table's rows come from.
type tableKind int

const (
	lakeTable tableKind = iota + 1
	viewTable
	sinkTable
)

// table is a resolved table reference.
type table struct {
	kind   tableKind
	schema string // lake, views or the sink's name
	name   string
	// topic is the topic whose read scope covers the table ("" for a sink
	// table of no topic or view).
	topic string
}

func (t table) key() string { return t.schema + "." + t.name }

// resolve finds what ref names, checks the caller may read it, and says
// why not otherwise.
func (e *Engine) resolve(q string, ref tableRef, mayRead func(string) bool) (table, *Error) {
	t, err := e.lookup(ref)
	if err != nil {
		err.Table = ref.String()
		if ref.at >= 0 {
			err.Line, err.Column = lineCol(q, ref.at)
		}
		return table{}, err
	}
	if mayRead != nil && !mayRead(t.topic) {
		msg := "the token may not read table " + strconv.Quote(t.key())
		if t.topic != "" {
			msg += " (topic " + strconv.Quote(t.topic) + ")"
		}
		e := &Error{Kind: Forbidden, Msg: msg, Table: t.key()}
		if ref.at >= 0 {
			e.Line, e.Column = lineCol(q, ref.at)
		}
		return table{}, e
	}
	return t, nil
}

func (e *Engine) lookup(ref tableRef) (table, *Error) {
	schema, name := strings.ToLower(ref.schema), ref.name
	if ref.catalog != "" {
		return table{}, e.unknown(ref)
	}
	switch schema {
	case "":
		if e.p.TopicByName(name) != nil {
			return e.lookup(tableRef{schema: SchemaLake, name: name})
		}
		if e.p.ViewByName(name) != nil {
			return e.lookup(tableRef{schema: SchemaViews, name: name})
		}
	case SchemaLake:
		if t := e.p.TopicByName(name); t != nil {
			if e.opts.Lake == nil {
				return table{}, &Error{Kind: Unavailable, Msg: "the lake is not read by this process (run SQL where the batch role runs)"}
			}
			return table{kind: lakeTable, schema: SchemaLake, name: name, topic: name}, nil
		}
	case SchemaViews:
		if v := e.p.ViewByName(name); v != nil {
			if e.opts.Views == nil {
				return table{}, &Error{Kind: Unavailable, Msg: "views are not served by this process (run SQL where the serve role runs)"}
			}
			return table{kind: viewTable, schema: SchemaViews, name: name, topic: v.From}, nil
		}
	default:
		for _, s := range e.duckSinks {
			if !strings.EqualFold(s, ref.schema) {
				continue
			}
			if _, ok := e.sinks[s]; !ok {
				return table{}, &Error{Kind: Unavailable, Msg: "the tables of sink " + strconv.Quote(s) + " are served by the process that runs the sinks role"}
			}
			if isReserved(strings.ToLower(s)) {
				return table{}, &Error{Kind: Unavailable, Msg: "sink " + strconv.Quote(s) + " has a name SQL reserves for a schema; rename the sink to query its tables"}
			}
			t := table{kind: sinkTable, schema: s, name: name}
			if e.p.TopicByName(name) != nil {
				t.topic = name
			} else if v := e.p.ViewByName(name); v != nil {
				t.topic = v.From
			}
			return t, nil
		}
	}
	return table{}, e.unknown(ref)
}

// unknown is the error for a table the pipeline does not have, with the
// likely typo or the tables there are.
func (e *Engine) unknown(ref tableRef) *Error {
	var known []string
	for i := range e.p.Topics {
		known = append(known, e.p.Topics[i].Name)
	}
	for i := range e.p.Views {
		known = append(known, e.p.Views[i].Name)
	}
	var qualified []string
	for _, k := range known {
		if e.p.TopicByName(k) != nil {
			qualified = append(qualified, SchemaLake+"."+k)
		} else {
			qualified = append(qualified, SchemaViews+"."+k)
		}
	}
	name := ref.String()
	candidates := known
	if ref.schema != "" {
		candidates = qualified
	}
	msg := httpapi.UnknownMessage("table", name, slices.Sorted(slices.Values(candidates)))
	return &Error{Kind: UnknownTable, Msg: msg}
}
