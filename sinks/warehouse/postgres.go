package warehouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// pgStage and pgStageDeletes are the per-transaction staging tables of
// upserts and of deletes; ON COMMIT DROP removes them with the
// transaction, and a rollback never created them.
const (
	pgStage        = "lf_stage"
	pgStageDeletes = "lf_stage_deletes"
)

// pgMinMicros is the start of PostgreSQL's timestamptz range, 4714-11-24 BC,
// in UTC µs since the Unix epoch. Its end, 294276 AD, lies beyond int64 µs.
const pgMinMicros = -210866803200000000

var pgLimits = engineLimits{name: "PostgreSQL", noNulByte: true, minMicros: pgMinMicros, maxMicros: math.MaxInt64}

// Postgres is the PostgreSQL target. Each Write is one transaction: COPY
// into a temporary staging table, then INSERT … SELECT … ON CONFLICT (key) DO
// UPDATE into the table, so a batch lands whole or not at all; rows to
// delete are COPYed (their keys) into a second staging table, then DELETE …
// USING it.
type Postgres struct {
	pool *pgxpool.Pool
	spec *pipelines.Sink
	log  *slog.Logger

	mu     sync.Mutex
	tables map[string]*pgTable // prepared tables
}

var (
	_ sinks.Target           = (*Postgres)(nil)
	_ sinks.ConcurrentWriter = (*Postgres)(nil)
)

// ConcurrentWrites tells the runner that partitions may write in parallel:
// each Write is a transaction on its own pooled connection. Upserts of
// different partitions touch different keys, so they rarely wait on each
// other; a deadlock between them is a transient error the runner retries.
func (p *Postgres) ConcurrentWrites() bool { return true }

// pgTable is what Write needs of a prepared table.
type pgTable struct {
	cols          []string
	keys          []string
	create        string // the staging table
	merge         string
	createDeletes string // the staging table of deletes
	delete        string
}

// NewPostgres opens a connection pool to the sink's dsn. It does not connect
// until first used, so a sink starts while the database is down (Health
// reports it).
func NewPostgres(ctx context.Context, spec *pipelines.Sink, logger *slog.Logger) (*Postgres, error) {
	pc, err := sinks.ConfigOf[PostgresConfig](spec)
	if err != nil {
		return nil, err
	}
	if pc.DSN == "" {
		return nil, fmt.Errorf("sink %q: postgres needs a dsn", spec.Name)
	}
	cfg, err := pgxpool.ParseConfig(pc.DSN)
	if err != nil {
		// The DSN may hold a password; pgx's parse errors redact it.
		return nil, fmt.Errorf("sink %q: postgres dsn: %w", spec.Name, err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sink %q: postgres: %w", spec.Name, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Postgres{pool: pool, spec: spec, log: logger.With("sink", spec.Name), tables: make(map[string]*pgTable)}, nil
}

// postgresType is the column type a field type maps to.
func postgresType(t event.FieldType) string {
	switch t {
	case event.TypeString:
		return "text"
	case event.TypeLong:
		return "bigint"
	case event.TypeInt:
		return "integer"
	case event.TypeDouble:
		return "double precision"
	case event.TypeBool:
		return "boolean"
	case event.TypeTimestamp:
		return "timestamptz"
	}
	return "text"
}

// Prepare creates t's table when the sink has create: true and adds the
// columns it lacks, nullable. A missing table with create: false is an
// error (the runner retries until someone creates it).
func (p *Postgres) Prepare(ctx context.Context, t sinks.Table) error {
	if p.spec.Create {
		if _, err := p.pool.Exec(ctx, createTableSQL(t, postgresType), pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("postgres: create table %s: %w", t.Name, err)
		}
	}
	existing, err := p.columns(ctx, t.Name)
	if err != nil {
		return err
	}
	if existing == nil {
		return fmt.Errorf("postgres: table %s does not exist and the sink has create: false", t.Name)
	}
	for _, c := range t.Columns {
		if existing[c.Name] {
			continue
		}
		q := fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", quote(t.Name), quote(c.Name), postgresType(c.Type))
		if _, err := p.pool.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("postgres: table %s: add column %s: %w", t.Name, c.Name, err)
		}
		p.log.Info("added a column", "table", t.Name, "column", c.Name, "type", postgresType(c.Type))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tables[t.Name] = &pgTable{
		cols: columnNames(t),
		keys: t.Key,
		// LIKE copies the column types and NOT NULL, not the key: the
		// merge, not the staging table, deals with keys.
		create:        fmt.Sprintf("CREATE TEMP TABLE %s (LIKE %s) ON COMMIT DROP", pgStage, quote(t.Name)),
		merge:         mergeSQL(t, pgStage),
		createDeletes: fmt.Sprintf("CREATE TEMP TABLE %s (LIKE %s) ON COMMIT DROP", pgStageDeletes, quote(t.Name)),
		delete:        deleteSQL(t, pgStageDeletes),
	}
	return nil
}

// columns returns the names of the table's columns, nil when it does not
// exist. The name resolves through the connection's search_path.
func (p *Postgres) columns(ctx context.Context, table string) (map[string]bool, error) {
	var exists bool
	if err := p.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", quote(table)).Scan(&exists); err != nil {
		return nil, fmt.Errorf("postgres: table %s: %w", table, err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := p.pool.Query(ctx, `SELECT attname FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, quote(table))
	if err != nil {
		return nil, fmt.Errorf("postgres: columns of %s: %w", table, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: columns of %s: %w", table, err)
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

// Write upserts rows into t. Rows PostgreSQL rejects for their data (class
// 22 data exceptions, 23 integrity violations, 54 limits) are found by
// bisecting the batch and returned as sinks.RowErrors while the others are
// written; any other failure (connection, timeout, serialization, missing
// table) is returned for the runner to retry.
func (p *Postgres) Write(ctx context.Context, t sinks.Table, rows []sinks.Row) error {
	tb := p.table(t.Name)
	if tb == nil {
		if err := p.Prepare(ctx, t); err != nil {
			return err
		}
		tb = p.table(t.Name)
	}
	write, rejected, err := plan(t, rows, pgLimits)
	if err != nil {
		return err
	}
	found, err := isolate(ctx, write, func(idx []int) error {
		return p.writeTx(ctx, tb, t, rows, idx)
	}, pgDataError)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "42703") {
			// The table or a column went away behind our back: prepare
			// again on the next attempt.
			p.mu.Lock()
			delete(p.tables, t.Name)
			p.mu.Unlock()
		}
		return fmt.Errorf("postgres: write %s: %w", t.Name, err)
	}
	return result(rejected, found)
}

func (p *Postgres) table(name string) *pgTable {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tables[name]
}

func (p *Postgres) writeTx(ctx context.Context, tb *pgTable, t sinks.Table, rows []sinks.Row, idx []int) error {
	upserts, deletes := split(rows, idx)
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	// Each kind of row: create its staging table, COPY its columns in,
	// then apply it to the table.
	for _, st := range []struct {
		idx                 []int
		create, name, apply string
		cols                []string
	}{
		{upserts, tb.create, pgStage, tb.merge, tb.cols},
		{deletes, tb.createDeletes, pgStageDeletes, tb.delete, tb.keys},
	} {
		if len(st.idx) == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, st.create, pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
		src := newPgCopySource(t, rows, st.idx, st.cols)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{st.name}, st.cols, src); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, st.apply, pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// pgCopySource feeds the columns cols of the rows at idx to COPY, reusing
// one slice of values: pgx encodes a row before asking for the next.
type pgCopySource struct {
	t    sinks.Table
	rows []sinks.Row
	idx  []int
	cols []int // positions in t.Columns
	i    int
	buf  []any
}

func newPgCopySource(t sinks.Table, rows []sinks.Row, idx []int, names []string) *pgCopySource {
	s := &pgCopySource{t: t, rows: rows, idx: idx, buf: make([]any, len(names))}
	for _, n := range names {
		s.cols = append(s.cols, t.Columns.Index(n))
	}
	return s
}

func (s *pgCopySource) Next() bool { s.i++; return s.i <= len(s.idx) }
func (s *pgCopySource) Err() error { return nil }

func (s *pgCopySource) Values() ([]any, error) {
	vals := s.rows[s.idx[s.i-1]].Values
	for j, c := range s.cols {
		var v event.Value
		if c < len(vals) {
			v = vals[c]
		}
		s.buf[j] = goValue(s.t.Columns[c].Type, v)
	}
	return s.buf, nil
}

// DriverValue is the Go value of a log value for a column of the field's
// type in PostgreSQL or DuckDB (goValue), for code outside the package that
// fills such columns.
func DriverValue(t event.FieldType, v event.Value) any { return goValue(t, v) }

// goValue is the Go value of a log value for the drivers (event.GoValue),
// but int32 for an int, the column's type.
func goValue(t event.FieldType, v event.Value) any {
	if t == event.TypeInt && v.Valid {
		return int32(v.I) // validate checked the range
	}
	return event.GoValue(t, v)
}

// pgDataError reports an error caused by the rows' data, which no retry
// can fix.
func pgDataError(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch {
	case strings.HasPrefix(pe.Code, "22"), // data exception
		strings.HasPrefix(pe.Code, "23"), // integrity constraint violation
		strings.HasPrefix(pe.Code, "54"): // program limit exceeded (row too big)
		return true
	}
	return false
}

// Ping checks that PostgreSQL answers.
func (p *Postgres) Ping(ctx context.Context) error {
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// Close closes the pool.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}
