package warehouse

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pgAdmin connects to the test database, or skips.
func pgAdmin(t testing.TB) (dsn string, admin *pgxpool.Pool) {
	t.Helper()
	dsn = sinktest.Service(t, "LF_TEST_POSTGRES_DSN", "postgres")
	admin, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(admin.Close)
	return dsn, admin
}

// pgSchema creates an empty schema for one test, dropped at its end, and
// returns a DSN whose search_path points at it.
func pgSchema(t testing.TB, dsn string, admin *pgxpool.Pool) string {
	t.Helper()
	schema := sinktest.UniqueName("lf_test_")
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(dsn, schema)
}

func withSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// postgresScript runs deploy/dev/postgres.sh.
func postgresScript(t testing.TB, action string) {
	t.Helper()
	script, err := filepath.Abs("../../deploy/dev/postgres.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, action)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, action, err, out)
	}
}

func TestPostgresConformance(t *testing.T) {
	dsn, admin := pgAdmin(t)
	sinktest.Run(t, sinktest.Harness{
		Sink: func(t *testing.T) pipelines.Sink {
			return pipelines.Sink{Type: "postgres", Config: &PostgresConfig{DSN: pgSchema(t, dsn, admin)}}
		},
		NewTarget: sinktest.Opener(PostgresKind()),
		ReadAll: func(t *testing.T, tg sinks.Target, spec *pipelines.Sink, table sinks.Table) []map[string]any {
			return pgReadAll(t, tg.(*Postgres).pool, table.Name)
		},
		Poison: func(t *testing.T) (event.FieldType, event.Value) {
			return event.TypeString, event.Value{S: "nul\x00byte"}
		},
		Outage: func(t *testing.T) func() {
			postgresScript(t, "stop")
			return func() { postgresScript(t, "start") }
		},
	})
}

// pgReadAll reads a whole table, retrying while PostgreSQL comes back.
func pgReadAll(t testing.TB, pool *pgxpool.Pool, table string) []map[string]any {
	t.Helper()
	var out []map[string]any
	testenv.CheckFor(t, 30*time.Second, 25*time.Millisecond, func() error {
		rows, err := pool.Query(context.Background(), "SELECT * FROM "+quote(table))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToMap)
		return err
	})
	return out
}

func TestDuckDBConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Sink: func(t *testing.T) pipelines.Sink {
			// No path: the file goes under the case's own data_dir.
			return pipelines.Sink{Type: "duckdb"}
		},
		NewTarget: sinktest.Opener(DuckDBKind()),
		ReadAll: func(t *testing.T, tg sinks.Target, spec *pipelines.Sink, table sinks.Table) []map[string]any {
			return sqlReadAll(t, tg.(*DuckDB).DB(), table.Name)
		},
		Poison: func(t *testing.T) (event.FieldType, event.Value) {
			// DuckDB's appender would store invalid UTF-8 as NULL; the
			// target rejects it instead.
			return event.TypeString, event.Value{S: "bad \xff utf-8"}
		},
	})
}

// sqlReadAll reads a whole table through database/sql.
func sqlReadAll(t testing.TB, db *sql.DB, table string) []map[string]any {
	t.Helper()
	return sqlQuery(t, db, "SELECT * FROM "+quote(table))
}

// sqlQuery runs q and returns its rows, column name to value.
func sqlQuery(t testing.TB, db *sql.DB, q string) []map[string]any {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
