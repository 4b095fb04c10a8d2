//go:build !noduckdb

package sqlquery

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
	"github.com/lambdaflow/lambdaflow/sinks/warehouse"
)

// Compiled says whether this binary has the SQL engine: true unless it was
// built with -tags noduckdb.
const Compiled = true

// Query runs req and returns its answer, or an *Error.
func (e *Engine) Query(ctx context.Context, req Request) (*Result, error) {
	lim := limitsOf(e.p, req.Limits)
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	res, err := e.query(ctx, req, lim)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, &Error{Kind: LimitExceeded, Limit: "sql.timeout",
			Msg: fmt.Sprintf("the query ran longer than %s (sql.timeout); narrow it or add a LIMIT", lim.Timeout)}
	}
	return res, err
}

func (e *Engine) query(ctx context.Context, req Request, lim Limits) (*Result, error) {
	if strings.TrimSpace(req.SQL) == "" {
		return nil, &Error{Kind: Invalid, Msg: "the query is empty"}
	}
	// A database of its own per query: what it attaches, the settings that
	// lock it down and its temporary state end with the query.
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, &Error{Kind: Internal, Msg: "sql engine: " + err.Error()}
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, &Error{Kind: Internal, Msg: "sql engine: " + err.Error()}
	}
	defer conn.Close()
	mem := int64(e.p.SQL.MemoryLimit)
	if mem <= 0 {
		mem = 1 << 30
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET memory_limit = '%dKiB'", max(mem>>10, 1024))); err != nil {
		return nil, &Error{Kind: Internal, Msg: "sql engine: " + err.Error()}
	}

	var js string
	if err := conn.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql("+literal(req.SQL)+") AS VARCHAR)").Scan(&js); err != nil {
		return nil, &Error{Kind: Internal, Msg: "sql engine: parsing the query: " + err.Error()}
	}
	refs, perr := checkParsed(req.SQL, []byte(js), e.now())
	if perr != nil {
		return nil, perr
	}
	// Both schemas exist whatever the query names: the search path
	// names them.
	seen := map[string]bool{SchemaLake: true, SchemaViews: true}
	if _, err := conn.ExecContext(ctx, "CREATE SCHEMA lake; CREATE SCHEMA views"); err != nil {
		return nil, &Error{Kind: Internal, Msg: "sql engine: " + err.Error()}
	}
	// A lake table named once is read only where its WHERE bounds the
	// event time; named twice, both readings share one table, which must
	// then hold every file.
	named := map[string]int{}
	for _, ref := range refs {
		if t, err := e.lookup(ref); err == nil {
			named[t.key()]++
		}
	}
	var allowed []string
	var releases []func()
	defer func() {
		for _, release := range releases {
			release()
		}
	}()
	for _, ref := range refs {
		if ref.catalog == "" && catalogSchema(ref.schema) {
			continue // the query's own database describing itself
		}
		t, rerr := e.resolve(req.SQL, ref, req.MayRead)
		if rerr != nil {
			return nil, rerr
		}
		if seen[t.key()] {
			continue
		}
		if !seen[t.schema] {
			if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+quote(t.schema)); err != nil {
				return nil, &Error{Kind: Internal, Msg: "sql engine: " + err.Error()}
			}
			seen[t.schema] = true
		}
		seen[t.key()] = true
		var span Span
		if t.kind == lakeTable && named[t.key()] == 1 {
			span = ref.bounds.span(event.ColEventTime, e.p.TopicByName(t.name).Time)
		}
		files, release, err := e.attach(ctx, conn, t, span)
		if release != nil {
			releases = append(releases, release)
		}
		if err != nil {
			var qe *Error
			var bound interface{ Limit() string }
			if errors.As(err, &bound) {
				qe = &Error{Kind: LimitExceeded, Limit: bound.Limit(), Msg: err.Error()}
			}
			if qe != nil || errors.As(err, &qe) {
				qe.Table = t.key()
				if ref.at >= 0 {
					qe.Line, qe.Column = lineCol(req.SQL, ref.at)
				}
				return nil, qe
			}
			return nil, &Error{Kind: Internal, Msg: fmt.Sprintf("table %s: %v", t.key(), err)}
		}
		allowed = append(allowed, files...)
	}
	// From here on the query reads only what was attached: no file but the
	// lake files named, no extension, no setting changed.
	var lock []string
	if len(allowed) > 0 {
		lock = append(lock, "SET allowed_paths = "+stringList(allowed))
	}
	lock = append(lock,
		"SET search_path = 'lake,views,main'",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET enable_external_access = false",
		"SET lock_configuration = true")
	for _, s := range lock {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return nil, &Error{Kind: Internal, Msg: "sql engine: " + s + ": " + err.Error()}
		}
	}
	if err := checkSelect(ctx, conn, req.SQL); err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, req.SQL)
	if err != nil {
		return nil, e.failed(req.SQL, err)
	}
	defer rows.Close()
	return collect(rows, lim, req.SQL, e)
}

// checkSelect prepares q and refuses it unless DuckDB calls it a SELECT:
// the parse check, seen from the engine that runs it.
func checkSelect(ctx context.Context, conn *sql.Conn, q string) error {
	var qerr error
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("driver connection is a %T", dc)
		}
		st, err := c.PrepareContext(ctx, q)
		if err != nil {
			qerr = err
			return nil
		}
		defer st.Close()
		ds, ok := st.(*duckdb.Stmt)
		if !ok {
			return fmt.Errorf("driver statement is a %T", st)
		}
		ty, err := ds.StatementType()
		if err != nil {
			return err
		}
		if ty != duckdb.STATEMENT_TYPE_SELECT {
			qerr = notReadOnly(q)
		}
		return nil
	})
	if err != nil {
		return &Error{Kind: Internal, Msg: "sql engine: " + err.Error()}
	}
	var e *Error
	if errors.As(qerr, &e) {
		return e
	}
	if qerr != nil {
		return failedErr(q, qerr)
	}
	return nil
}

// failed turns an error DuckDB gave for the query into an *Error with the
// position it names.
func (e *Engine) failed(q string, err error) error {
	return failedErr(q, err)
}

func failedErr(q string, err error) error {
	var de *duckdb.Error
	if !errors.As(err, &de) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return err
		}
		return &Error{Kind: Internal, Msg: err.Error()}
	}
	kind := Invalid
	if de.Type == duckdb.ErrorTypeInterrupt {
		return context.Canceled
	}
	if de.Type == duckdb.ErrorTypeOutOfMemory {
		kind = LimitExceeded
	}
	text, line, col := positioned(q, de.Msg)
	qe := &Error{Kind: kind, Msg: text, Line: line, Column: col}
	if kind == LimitExceeded {
		qe.Limit = "sql.memory_limit"
	}
	return qe
}

// attach makes t a table of the query's database and returns the files it
// reads, and what releases them once the query is done (or nil).
func (e *Engine) attach(ctx context.Context, conn *sql.Conn, t table, span Span) ([]string, func(), error) {
	switch t.kind {
	case lakeTable:
		return e.attachLake(ctx, conn, t, span)
	case viewTable:
		return nil, nil, e.attachView(ctx, conn, t)
	case sinkTable:
		return nil, nil, e.attachSink(ctx, conn, t)
	}
	return nil, nil, fmt.Errorf("unknown kind of table")
}

func (e *Engine) attachLake(ctx context.Context, conn *sql.Conn, t table, span Span) ([]string, func(), error) {
	files, release, err := e.opts.Lake(ctx, t.name, span)
	if err != nil {
		return nil, nil, err
	}
	files, err = e.attachLakeFiles(ctx, conn, t, files)
	return files, release, err
}

// attachLakeFiles makes the lake table t read files, with every column of
// the topic's schema beside theirs: files written before a field was
// added lack its column, which reads as null, and the files a query's
// bounds leave may all be such files.
func (e *Engine) attachLakeFiles(ctx context.Context, conn *sql.Conn, t table, files []string) ([]string, error) {
	name := quote(t.schema) + "." + quote(t.name)
	tp := e.p.TopicByName(t.name)
	cols := columnDefs(tp.Schema)
	cols = append(cols,
		[2]string{event.ColID, "VARCHAR"}, [2]string{event.ColPartition, "INTEGER"}, [2]string{event.ColOffset, "BIGINT"},
		[2]string{event.ColEventTime, "TIMESTAMPTZ"}, [2]string{event.ColIngestTime, "TIMESTAMPTZ"})
	if len(files) == 0 {
		// No file yet: an empty table with the lake's columns.
		_, err := conn.ExecContext(ctx, "CREATE TABLE "+name+" ("+tableDefs(cols)+")")
		return nil, err
	}
	nulls := make([]string, len(cols))
	for i, c := range cols {
		nulls[i] = "CAST(NULL AS " + c[1] + ") AS " + quote(c[0])
	}
	q := fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM read_parquet(%s, union_by_name = true, hive_partitioning = false) UNION ALL BY NAME SELECT %s WHERE false",
		name, stringList(files), strings.Join(nulls, ", "))
	if _, err := conn.ExecContext(ctx, q); err != nil {
		return nil, err
	}
	return files, nil
}

func (e *Engine) attachView(ctx context.Context, conn *sql.Conn, t table) error {
	v := e.p.ViewByName(t.name)
	from := e.p.TopicByName(v.From)
	if from == nil {
		return fmt.Errorf("view %s reads unknown topic %s", v.Name, v.From)
	}
	schema := pipelines.ViewSchema(v, from)
	cols := columnDefs(schema)
	cols = append(cols, [2]string{viewrow.ColLayer, "VARCHAR"}, [2]string{"final", "BOOLEAN"})
	name := quote(t.schema) + "." + quote(t.name)
	if _, err := conn.ExecContext(ctx, "CREATE TABLE "+name+" ("+tableDefs(cols)+")"); err != nil {
		return err
	}
	rows, ok := e.opts.Views.Rows(t.name)
	if !ok {
		return fmt.Errorf("the serving store has no view %s", t.name)
	}
	return appendRows(conn, t, func(add func(args ...driver.Value) error) error {
		vals := make([]event.Value, 0, len(schema))
		args := make([]driver.Value, len(schema)+2)
		for i := range rows {
			vals = rows[i].AppendValues(vals[:0])
			for c := range schema {
				var v event.Value
				if c < len(vals) {
					v = vals[c]
				}
				args[c] = warehouse.DriverValue(schema[c].Type, v)
			}
			args[len(schema)] = string(rows[i].Layer)
			args[len(schema)+1] = rows[i].Final
			if err := add(args...); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *Engine) attachSink(ctx context.Context, conn *sql.Conn, t table) error {
	src := e.sinks[t.schema]
	crows, err := src.QueryContext(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = ? ORDER BY ordinal_position`, t.name)
	if err != nil {
		return err
	}
	var cols, names []string
	for crows.Next() {
		var n, ty string
		if err := crows.Scan(&n, &ty); err != nil {
			crows.Close()
			return err
		}
		cols = append(cols, quote(n)+" "+ty)
		names = append(names, quote(n))
	}
	crows.Close()
	if err := crows.Err(); err != nil {
		return err
	}
	if len(cols) == 0 {
		tables, err := sinkTables(ctx, src)
		if err != nil {
			return err
		}
		msg := "sink " + strconv.Quote(t.schema) + " has no table " + strconv.Quote(t.name)
		if len(tables) > 0 {
			msg += " (tables: " + strings.Join(tables, ", ") + ")"
		}
		return &Error{Kind: UnknownTable, Msg: msg}
	}
	name := quote(t.schema) + "." + quote(t.name)
	if _, err := conn.ExecContext(ctx, "CREATE TABLE "+name+" ("+strings.Join(cols, ", ")+")"); err != nil {
		return err
	}
	// Read on the sink's own database, beside its writer: one consistent
	// snapshot of what it committed.
	rows, err := src.QueryContext(ctx, "SELECT "+strings.Join(names, ", ")+" FROM main."+quote(t.name))
	if err != nil {
		return err
	}
	defer rows.Close()
	return appendRows(conn, t, func(add func(args ...driver.Value) error) error {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		args := make([]driver.Value, len(cols))
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			for i, v := range vals {
				args[i] = v
			}
			if err := add(args...); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// sinkTables lists a DuckDB sink's tables.
func sinkTables(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_catalog = current_database() AND table_schema = 'main' ORDER BY table_name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// appendRows fills t through DuckDB's appender with the rows fill adds.
func appendRows(conn *sql.Conn, t table, fill func(add func(args ...driver.Value) error) error) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("driver connection is a %T", dc)
		}
		app, err := duckdb.NewAppender(c, "", t.schema, t.name)
		if err != nil {
			return err
		}
		if err := fill(app.AppendRow); err != nil {
			app.Close()
			return err
		}
		return app.Close()
	})
}

// tableDefs writes columns (name, type) as CREATE TABLE lists them.
func tableDefs(cols [][2]string) string {
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = quote(c[0]) + " " + c[1]
	}
	return strings.Join(defs, ", ")
}

// columnDefs are the names and DuckDB types of s's columns.
func columnDefs(s event.Schema) [][2]string {
	out := make([][2]string, 0, len(s)+5)
	for _, f := range s {
		out = append(out, [2]string{f.Name, warehouse.DuckDBType(f.Type)})
	}
	return out
}

// collect reads the answer within the row and byte limits.
func collect(rows *sql.Rows, lim Limits, q string, e *Engine) (*Result, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, e.failed(q, err)
	}
	res := &Result{Columns: make([]Column, len(types)), Rows: [][]any{}}
	for i, ct := range types {
		res.Columns[i] = Column{Name: ct.Name(), Type: ct.DatabaseTypeName()}
	}
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var size int64
	for rows.Next() {
		if len(res.Rows) == lim.MaxRows {
			return nil, &Error{Kind: LimitExceeded, Limit: "sql.max_rows",
				Msg: fmt.Sprintf("the answer has more than %d rows (sql.max_rows); add a LIMIT or aggregate", lim.MaxRows)}
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, e.failed(q, err)
		}
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i] = cell(v)
		}
		b, err := json.Marshal(row)
		if err != nil {
			return nil, &Error{Kind: Internal, Msg: "encoding a row: " + err.Error()}
		}
		if size += int64(len(b)) + 1; size > lim.MaxBytes {
			return nil, &Error{Kind: LimitExceeded, Limit: "sql.max_bytes",
				Msg: fmt.Sprintf("the answer is larger than %d bytes (sql.max_bytes); select fewer columns or rows", lim.MaxBytes)}
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, e.failed(q, err)
	}
	return res, nil
}

// cell is a scanned value as the answer carries it.
func cell(v any) any {
	switch x := v.(type) {
	case nil, string, bool:
		return x
	case time.Time:
		return event.FormatTime(x.UnixMicro())
	case float64:
		return number(x)
	case float32:
		return number(float64(x))
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, uint:
		return json.Number(fmt.Sprint(x))
	case *big.Int:
		return json.Number(x.String())
	case duckdb.Decimal:
		return json.Number(x.String())
	case duckdb.UUID:
		return x.String()
	case *duckdb.UUID:
		return x.String()
	case duckdb.Interval:
		return (time.Duration(x.Micros) * time.Microsecond).String()
	case []byte:
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i, c := range x {
			out[i] = cell(c)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, c := range x {
			out[k] = cell(c)
		}
		return out
	case duckdb.Map:
		out := make(map[string]any, len(x))
		for k, c := range x {
			out[fmt.Sprint(cell(k))] = cell(c)
		}
		return out
	}
	return fmt.Sprint(v)
}

// number is a float for JSON, which has no NaN or infinities: those are
// strings.
func number(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
}

func quote(name string) string { return warehouse.QuoteIdent(name) }

// literal is s as a SQL string literal. (json_serialize_sql takes a
// constant, not a parameter.)
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// stringList is a DuckDB list of string literals.
func stringList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = literal(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
