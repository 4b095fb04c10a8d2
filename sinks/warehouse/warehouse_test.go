package warehouse

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

// allTypes is a topic table with a column of every type.
func allTypes(name string) sinks.Table {
	return sinks.TopicTable(&pipelines.Topic{Name: name, Schema: event.Schema{
		{Name: "s", Type: event.TypeString}, {Name: "l", Type: event.TypeLong},
		{Name: "i", Type: event.TypeInt}, {Name: "d", Type: event.TypeDouble},
		{Name: "b", Type: event.TypeBool}, {Name: "ts", Type: event.TypeTimestamp},
	}})
}

func row(id string, s string, l int64, ts int64) sinks.Row {
	return sinks.Row{Values: []event.Value{
		{S: s, Valid: true}, {I: l, Valid: true}, {I: l % 1000, Valid: true}, {F: float64(l) / 3, Valid: true},
		{I: l % 2, Valid: true}, {I: ts, Valid: true}, {S: id, Valid: true},
	}}
}

// engine is one warehouse under test.
type engine struct {
	name   string
	target func(t *testing.T, create bool) sinks.Target
	exec   func(t *testing.T, tg sinks.Target, q string)
	read   func(t *testing.T, tg sinks.Target, table string) []map[string]any
}

func engines(t *testing.T) []engine {
	duck := engine{
		name: "duckdb",
		target: func(t *testing.T, create bool) sinks.Target {
			d, err := NewDuckDB(context.Background(), &pipelines.Sink{Name: "w", Type: "duckdb", Create: create}, t.TempDir(), sinktest.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return d
		},
		exec: func(t *testing.T, tg sinks.Target, q string) {
			if _, err := tg.(*DuckDB).DB().Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		},
		read: func(t *testing.T, tg sinks.Target, table string) []map[string]any {
			return sqlReadAll(t, tg.(*DuckDB).DB(), table)
		},
	}
	out := []engine{duck}
	if os.Getenv("LF_TEST_POSTGRES_DSN") == "" && os.Getenv("LF_REQUIRE_SERVICES") != "1" {
		t.Log("postgres cases skipped: LF_TEST_POSTGRES_DSN is not set (deploy/dev/services.sh up postgres)")
		return out
	}
	dsn, admin := pgAdmin(t)
	return append(out, engine{
		name: "postgres",
		target: func(t *testing.T, create bool) sinks.Target {
			spec := &pipelines.Sink{Name: "w", Type: "postgres", Create: create, Config: &PostgresConfig{DSN: pgSchema(t, dsn, admin)}}
			pg, err := NewPostgres(context.Background(), spec, sinktest.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pg.Close() })
			return pg
		},
		exec: func(t *testing.T, tg sinks.Target, q string) {
			if _, err := tg.(*Postgres).pool.Exec(context.Background(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		},
		read: func(t *testing.T, tg sinks.Target, table string) []map[string]any {
			return pgReadAll(t, tg.(*Postgres).pool, table)
		},
	})
}

func byID(rows []map[string]any) map[string]map[string]any {
	out := make(map[string]map[string]any, len(rows))
	for _, r := range rows {
		out[r[event.ColID].(string)] = r
	}
	return out
}

func TestTypesMapping(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			tg := e.target(t, true)
			ctx := context.Background()
			tb := allTypes("types")
			if err := tg.Prepare(ctx, tb); err != nil {
				t.Fatal(err)
			}
			ts := time.Date(1969, 7, 20, 20, 17, 40, 123456000, time.UTC).UnixMicro()
			rows := []sinks.Row{row("a", "é \"x\"", math.MaxInt64, ts), {Values: make([]event.Value, 7)}}
			rows[1].Values[6] = event.Value{S: "nulls", Valid: true}
			if err := tg.Write(ctx, tb, rows); err != nil {
				t.Fatal(err)
			}
			got := byID(e.read(t, tg, "types"))
			a := got["a"]
			want := map[string]any{"s": "é \"x\"", "l": int64(math.MaxInt64), "i": int32(807), "d": float64(math.MaxInt64) / 3,
				"b": true, "ts": time.UnixMicro(ts).UTC(), "_id": "a"}
			for k, w := range want {
				g := a[k]
				if gt, ok := g.(time.Time); ok {
					if !gt.Equal(w.(time.Time)) || gt.UnixMicro() != ts {
						t.Errorf("ts = %v (%d µs), want %v (%d µs)", gt, gt.UnixMicro(), w, ts)
					}
					continue
				}
				if g != w {
					t.Errorf("%s = %#v (%T), want %#v (%T)", k, g, g, w, w)
				}
			}
			for k, v := range got["nulls"] {
				if k != event.ColID && v != nil {
					t.Errorf("nulls row: %s = %v, want NULL", k, v)
				}
			}
			types := columnTypes(t, e, tg, "types")
			wantTypes := map[string]string{
				"postgres": "s text, l bigint, i integer, d double precision, b boolean, ts timestamp with time zone, _id text",
				"duckdb":   "s VARCHAR, l BIGINT, i INTEGER, d DOUBLE, b BOOLEAN, ts TIMESTAMP WITH TIME ZONE, _id VARCHAR",
			}[e.name]
			if types != wantTypes {
				t.Errorf("column types\n got %s\nwant %s", types, wantTypes)
			}
		})
	}
}

// columnTypes lists "name type" of a table's columns in order.
func columnTypes(t *testing.T, e engine, tg sinks.Target, table string) string {
	t.Helper()
	var q string
	var rows []map[string]any
	switch e.name {
	case "postgres":
		q = fmt.Sprintf(`SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
			WHERE attrelid = to_regclass('%s') AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, quote(table))
		r, err := tg.(*Postgres).pool.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			v, _ := r.Values()
			rows = append(rows, map[string]any{"name": v[0], "type": v[1]})
		}
		r.Close()
	default:
		q = fmt.Sprintf(`SELECT column_name AS name, data_type AS type FROM information_schema.columns
			WHERE table_name = '%s' ORDER BY ordinal_position`, table)
		rows = sqlQuery(t, tg.(*DuckDB).DB(), q)
	}
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%v %v", r["name"], r["type"]))
	}
	return strings.Join(parts, ", ")
}

// TestTimestamptzExact: every microsecond survives, whatever the session's
// time zone, across the range of the log's timestamps.
func TestTimestamptzExact(t *testing.T) {
	micros := []int64{0, -1, 1, 999999, -62135596800000000 /* year 1 */, 253402300799999999, /* 9999-12-31 */
		1732541234123457, pgMinMicros, 1 << 60}
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			tg := e.target(t, true)
			if e.name == "postgres" {
				e.exec(t, tg, "SET TIME ZONE 'America/St_Johns'") // a half-hour offset, on one connection
			}
			tb := allTypes("times")
			var rows []sinks.Row
			for i, m := range micros {
				rows = append(rows, row(fmt.Sprint(i), "", 1, m))
			}
			if err := tg.Write(context.Background(), tb, rows); err != nil {
				t.Fatal(err)
			}
			got := byID(e.read(t, tg, "times"))
			for i, m := range micros {
				ts, ok := got[fmt.Sprint(i)]["ts"].(time.Time)
				if !ok || ts.UnixMicro() != m {
					t.Errorf("%d µs read back as %v (%d µs)", m, got[fmt.Sprint(i)]["ts"], ts.UnixMicro())
				}
			}
		})
	}
}

// TestBadRowsIsolated: rows the database rejects (a CHECK constraint, which
// only the database knows) are found by bisection and returned as
// RowErrors; the rest land, and a superseded duplicate key is harmless.
func TestBadRowsIsolated(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			tg := e.target(t, false)
			if e.name == "postgres" {
				e.exec(t, tg, `CREATE TABLE "bad" (s text, l bigint CHECK (l <> 13 AND l <> 77), i integer, d double precision,
					b boolean, ts timestamptz, _id text PRIMARY KEY, extra text DEFAULT 'kept')`)
			} else {
				e.exec(t, tg, `CREATE TABLE "bad" (extra VARCHAR DEFAULT 'kept', _id VARCHAR PRIMARY KEY, s VARCHAR,
					l BIGINT CHECK (l <> 13 AND l <> 77), i INTEGER, d DOUBLE, b BOOLEAN, ts TIMESTAMPTZ)`)
			}
			tb := allTypes("bad")
			var rows []sinks.Row
			for i := range 100 {
				rows = append(rows, row(fmt.Sprint(i), "x", int64(i), int64(i)))
			}
			rows[50] = row("49", "later wins", 49, 49) // same key as row 49, later
			rows[60].Values[2].I = math.MaxInt32 + 1   // an int out of range: rejected before sending
			err := tg.Write(context.Background(), tb, rows)
			var re sinks.RowErrors
			if !errors.As(err, &re) {
				t.Fatalf("Write = %v, want RowErrors", err)
			}
			var idx []int
			for _, r := range re {
				idx = append(idx, r.Index)
			}
			if !slices.Equal(idx, []int{13, 60, 77}) {
				t.Fatalf("rejected rows %v (%v), want [13 60 77]", idx, err)
			}
			if e.name == "postgres" {
				var pe *pgconn.PgError
				if !errors.As(re[0].Err, &pe) || pe.Code != "23514" {
					t.Errorf("row 13: %v, want check_violation 23514", re[0].Err)
				}
			}
			if !strings.Contains(re[1].Err.Error(), "out of range") {
				t.Errorf("row 60: %v", re[1].Err)
			}
			got := byID(e.read(t, tg, "bad"))
			if len(got) != 96 { // 100 - 3 rejected - 1 duplicate key
				t.Errorf("%d rows, want 96", len(got))
			}
			if got["49"]["s"] != "later wins" || got["50"] != nil || got["0"]["extra"] != "kept" {
				t.Errorf("rows 49 %v, 50 %v, 0 %v", got["49"], got["50"], got["0"])
			}
		})
	}
}

// TestCreateFalse: with create: false a missing table is an error Prepare
// returns (and the runner retries), never a permanent one.
func TestCreateFalse(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			tg := e.target(t, false)
			err := tg.Prepare(context.Background(), allTypes("missing"))
			if err == nil || !strings.Contains(err.Error(), "does not exist") || errors.Is(err, sinks.ErrPermanent) {
				t.Errorf("Prepare of a missing table = %v", err)
			}
		})
	}
}

// TestAddColumn: Prepare adds the columns a table lacks, nullable, and
// keeps its rows.
func TestAddColumn(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			tg := e.target(t, true)
			ctx := context.Background()
			old := allTypes("grow")
			if err := tg.Write(ctx, old, []sinks.Row{row("a", "x", 1, 1)}); err != nil {
				t.Fatal(err)
			}
			grown := old
			grown.Columns = slices.Insert(slices.Clone(old.Columns), len(old.Columns)-1,
				event.Field{Name: "new_one", Type: event.TypeTimestamp})
			if err := tg.Prepare(ctx, grown); err != nil {
				t.Fatal(err)
			}
			r := row("b", "y", 2, 2)
			r.Values = slices.Insert(r.Values, 6, event.Value{I: 42, Valid: true})
			if err := tg.Write(ctx, grown, []sinks.Row{r}); err != nil {
				t.Fatal(err)
			}
			got := byID(e.read(t, tg, "grow"))
			if got["a"]["new_one"] != nil || got["b"]["new_one"].(time.Time).UnixMicro() != 42 {
				t.Errorf("rows %v", got)
			}
		})
	}
}

// TestDuckDBFile: the warehouse is a file under data_dir that a fresh
// connection reads after the sink closes; spec.path overrides it.
func TestDuckDBFile(t *testing.T) {
	dataDir := t.TempDir()
	ctx := context.Background()
	d, err := NewDuckDB(ctx, &pipelines.Sink{Name: "w", Type: "duckdb", Create: true}, dataDir, sinktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	tb := allTypes("events")
	if err := d.Write(ctx, tb, []sinks.Row{row("a", "x", 5, 1700000000123456)}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dataDir, "warehouse.duckdb")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("warehouse file: %v", err)
	}
	db, err := sql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id string
	var l int64
	var ts time.Time
	if err := db.QueryRow(`SELECT _id, l, ts FROM events`).Scan(&id, &l, &ts); err != nil {
		t.Fatal(err)
	}
	if id != "a" || l != 5 || ts.UnixMicro() != 1700000000123456 {
		t.Errorf("read back %s %d %v", id, l, ts)
	}

	other := filepath.Join(t.TempDir(), "sub", "mine.duckdb")
	d2, err := NewDuckDB(ctx, &pipelines.Sink{Name: "w", Type: "duckdb", Config: &DuckDBConfig{Path: other}}, dataDir, sinktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if d2.Path() != other {
		t.Errorf("Path() = %s, want %s", d2.Path(), other)
	}
	d2.Close()
	if _, err := os.Stat(other); err != nil {
		t.Errorf("spec.path file: %v", err)
	}
}

// TestPostgresDown: a Write to a database that does not answer is a
// transient error: neither RowErrors nor ErrPermanent.
func TestPostgresDown(t *testing.T) {
	pg, err := NewPostgres(context.Background(), &pipelines.Sink{Name: "w", Type: "postgres", Create: true,
		Config: &PostgresConfig{DSN: "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"}}, sinktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	err = pg.Write(context.Background(), allTypes("x"), []sinks.Row{row("a", "x", 1, 1)})
	var re sinks.RowErrors
	if err == nil || errors.As(err, &re) || errors.Is(err, sinks.ErrPermanent) {
		t.Errorf("Write to a closed port = %v, want a transient error", err)
	}
	if err := pg.Ping(context.Background()); err == nil {
		t.Errorf("Ping of a closed port = nil")
	}
}
