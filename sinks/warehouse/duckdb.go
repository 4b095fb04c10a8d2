//go:build !noduckdb

package warehouse

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// DefaultDuckDBFile is the warehouse file under data_dir when the sink has
// no path.
const DefaultDuckDBFile = "warehouse.duckdb"

// DuckDBCompiled says whether this binary has the DuckDB target: true unless
// it was built with -tags noduckdb (see duckdb_off.go).
const DuckDBCompiled = true

// DuckDB's TIMESTAMPTZ keeps µs in an int64 but reserves both ends for
// ±infinity.
var duckLimits = engineLimits{name: "DuckDB", minMicros: math.MinInt64 + 2, maxMicros: math.MaxInt64 - 1}

// DuckDB is the embedded warehouse target: one database file, one writer
// connection. Each Write is one transaction on it: the Appender fills a
// temporary staging table, then the rows of the table with the staged keys
// are deleted and the staged rows inserted, an upsert by key. Rows to
// delete fill a second staging table (their keys), whose keys are deleted.
type DuckDB struct {
	db     *sql.DB
	conn   *sql.Conn // the writer; its temporary tables are its own
	path   string
	spec   *pipelines.Sink
	log    *slog.Logger
	tables map[string]*duckTable // prepared tables; the runner serialises calls
}

var _ sinks.Target = (*DuckDB)(nil)

type duckTable struct {
	cols   []string
	stage  string
	delete string // the rows the staged ones replace
	insert string
	keys   []string
	gone   string // the staging table of deletes
	remove string // the rows to delete
}

// NewDuckDB opens (creating it if needed) the DuckDB file at its path, or
// <dataDir>/warehouse.duckdb.
func NewDuckDB(ctx context.Context, spec *pipelines.Sink, dataDir string, logger *slog.Logger) (*DuckDB, error) {
	cfg, err := sinks.ConfigOf[DuckDBConfig](spec)
	if err != nil {
		return nil, err
	}
	path := cfg.Path
	if path == "" {
		path = filepath.Join(dataDir, DefaultDuckDBFile)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("sink %q: duckdb: %w", spec.Name, err)
	}
	db, err := sql.Open("duckdb", path)
	if err != nil {
		return nil, fmt.Errorf("sink %q: duckdb %s: %w", spec.Name, path, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sink %q: duckdb %s: %w", spec.Name, path, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &DuckDB{db: db, conn: conn, path: path, spec: spec, log: logger.With("sink", spec.Name),
		tables: make(map[string]*duckTable)}, nil
}

// DB returns the database, for reads beside the sink (on connections other
// than the writer's).
func (d *DuckDB) DB() *sql.DB { return d.db }

// Path returns the database file.
func (d *DuckDB) Path() string { return d.path }

// DuckDBType is the column type a field type maps to.
func DuckDBType(t event.FieldType) string {
	switch t {
	case event.TypeString:
		return "VARCHAR"
	case event.TypeLong:
		return "BIGINT"
	case event.TypeInt:
		return "INTEGER"
	case event.TypeDouble:
		return "DOUBLE"
	case event.TypeBool:
		return "BOOLEAN"
	case event.TypeTimestamp:
		return "TIMESTAMPTZ"
	}
	return "VARCHAR"
}

// Prepare creates t's table when the sink has create: true, adds the columns
// it lacks (nullable), and (re)creates the writer's staging table for it.
func (d *DuckDB) Prepare(ctx context.Context, t sinks.Table) error {
	if d.spec.Create {
		if _, err := d.conn.ExecContext(ctx, createTableSQL(t, DuckDBType)); err != nil {
			return fmt.Errorf("duckdb: create table %s: %w", t.Name, err)
		}
	}
	existing, err := d.columns(ctx, t.Name)
	if err != nil {
		return err
	}
	if existing == nil {
		return fmt.Errorf("duckdb: table %s does not exist and the sink has create: false", t.Name)
	}
	for _, c := range t.Columns {
		if existing[c.Name] {
			continue
		}
		q := fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", quote(t.Name), quote(c.Name), DuckDBType(c.Type))
		if _, err := d.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("duckdb: table %s: add column %s: %w", t.Name, c.Name, err)
		}
		d.log.Info("added a column", "table", t.Name, "column", c.Name, "type", DuckDBType(c.Type))
	}
	tb := &duckTable{cols: columnNames(t), stage: "lf_stage_" + t.Name, keys: t.Key, gone: "lf_stage_deletes_" + t.Name}
	stage := "temp.main." + quote(tb.stage)
	// Delete then insert, in one transaction, rather than INSERT … ON
	// CONFLICT DO UPDATE: DuckDB checks conflicts row by row, while the
	// delete is one join and the insert takes the bulk path, about twice
	// as fast for the new keys that make up most of a sink's rows.
	tb.delete = deleteSQL(t, stage)
	tb.remove = deleteSQL(t, "temp.main."+quote(tb.gone))
	cols := quoteList(tb.cols)
	tb.insert = fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s", quote(t.Name), cols, cols, stage)
	// The staging tables have exactly the columns written, in column
	// order, whatever order the table's columns are in.
	for _, st := range []struct {
		name string
		cols []string
	}{{tb.stage, tb.cols}, {tb.gone, tb.keys}} {
		q := fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s AS SELECT %s FROM %s LIMIT 0",
			quote(st.name), quoteList(st.cols), quote(t.Name))
		if _, err := d.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("duckdb: staging table for %s: %w", t.Name, err)
		}
	}
	d.tables[t.Name] = tb
	return nil
}

// columns returns the names of the table's columns, nil when it does not
// exist.
func (d *DuckDB) columns(ctx context.Context, table string) (map[string]bool, error) {
	rows, err := d.conn.QueryContext(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = ?`, table)
	if err != nil {
		return nil, fmt.Errorf("duckdb: columns of %s: %w", table, err)
	}
	defer rows.Close()
	var out map[string]bool
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("duckdb: columns of %s: %w", table, err)
		}
		if out == nil {
			out = make(map[string]bool)
		}
		out[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: columns of %s: %w", table, err)
	}
	return out, nil
}

// Write upserts rows into t. Rows DuckDB rejects for their data
// (conversion, constraint, out-of-range, invalid input) are found by
// bisecting the batch and returned as sinks.RowErrors while the others are
// written; other failures (I/O) are returned for the runner to retry.
func (d *DuckDB) Write(ctx context.Context, t sinks.Table, rows []sinks.Row) error {
	tb := d.tables[t.Name]
	if tb == nil {
		if err := d.Prepare(ctx, t); err != nil {
			return err
		}
		tb = d.tables[t.Name]
	}
	write, rejected, err := plan(t, rows, duckLimits)
	if err != nil {
		return err
	}
	found, err := isolate(ctx, write, func(idx []int) error {
		return d.writeTx(ctx, tb, t, rows, idx)
	}, duckDataError)
	if err != nil {
		var de *duckdb.Error
		if errors.As(err, &de) && (de.Type == duckdb.ErrorTypeCatalog || de.Type == duckdb.ErrorTypeBinder) {
			delete(d.tables, t.Name) // the table changed behind our back
		}
		return fmt.Errorf("duckdb: write %s: %w", t.Name, err)
	}
	return result(rejected, found)
}

func (d *DuckDB) writeTx(ctx context.Context, tb *duckTable, t sinks.Table, rows []sinks.Row, idx []int) (err error) {
	if _, err := d.conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// The appender's rows are part of the transaction: a rollback
			// leaves the staging table empty again.
			if _, rerr := d.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
			}
		}
	}()
	upserts, deletes := split(rows, idx)
	if len(upserts) > 0 {
		if err = d.stage(t, tb.stage, tb.cols, rows, upserts); err != nil {
			return err
		}
		for _, q := range []string{tb.delete, tb.insert, "DELETE FROM temp.main." + quote(tb.stage)} {
			if _, err = d.conn.ExecContext(ctx, q); err != nil {
				return err
			}
		}
	}
	if len(deletes) > 0 {
		if err = d.stage(t, tb.gone, tb.keys, rows, deletes); err != nil {
			return err
		}
		for _, q := range []string{tb.remove, "DELETE FROM temp.main." + quote(tb.gone)} {
			if _, err = d.conn.ExecContext(ctx, q); err != nil {
				return err
			}
		}
	}
	_, err = d.conn.ExecContext(ctx, "COMMIT")
	return err
}

// stage appends the columns cols of the rows at idx to the staging table
// stage.
func (d *DuckDB) stage(t sinks.Table, stage string, cols []string, rows []sinks.Row, idx []int) error {
	at := make([]int, len(cols))
	for j, c := range cols {
		at[j] = t.Columns.Index(c)
	}
	return d.conn.Raw(func(dc any) error {
		conn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("duckdb: driver connection is a %T", dc)
		}
		app, err := duckdb.NewAppenderWithColumns(conn, "temp", "main", stage, cols)
		if err != nil {
			return err
		}
		args := make([]driver.Value, len(cols))
		for _, i := range idx {
			vals := rows[i].Values
			for j, c := range at {
				var v event.Value
				if c < len(vals) {
					v = vals[c]
				}
				args[j] = goValue(t.Columns[c].Type, v)
			}
			if err := app.AppendRow(args...); err != nil {
				app.Close()
				return err
			}
		}
		return app.Close()
	})
}

// duckDataError reports an error caused by the rows' data.
func duckDataError(err error) bool {
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return false
	}
	switch de.Type {
	case duckdb.ErrorTypeConversion, duckdb.ErrorTypeConstraint, duckdb.ErrorTypeOutOfRange,
		duckdb.ErrorTypeInvalidInput, duckdb.ErrorTypeMismatchType:
		return true
	}
	return false
}

// Ping checks that the database answers.
func (d *DuckDB) Ping(ctx context.Context) error {
	if err := d.conn.PingContext(ctx); err != nil {
		return fmt.Errorf("duckdb: %w", err)
	}
	return nil
}

// Close closes the writer and the database, which checkpoints the file.
func (d *DuckDB) Close() error {
	return errors.Join(d.conn.Close(), d.db.Close())
}
