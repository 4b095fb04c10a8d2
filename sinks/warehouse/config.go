package warehouse

import (
	"context"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// PostgresConfig is the keys of a postgres sink.
type PostgresConfig struct {
	DSN string `yaml:"dsn" required:"true" doc:"postgres: connection string (postgres://user:password@host:5432/db?sslmode=disable)."`
}

// DuckDBConfig is the keys of a duckdb sink.
type DuckDBConfig struct {
	Path string `yaml:"path" doc:"duckdb: database file; default <data_dir>/warehouse.duckdb."`
}

// PostgresKind is the postgres sink: tables in a PostgreSQL database.
func PostgresKind() sinks.Kind {
	return sinks.Kind{
		SinkType: pipelines.SinkType{
			Name:      "postgres",
			Doc:       "tables in a PostgreSQL database",
			NewConfig: func() any { return new(PostgresConfig) },
			Check:     func(cfg any, c pipelines.SinkCheck) { cfg.(*PostgresConfig).check(c) },
		},
		Open: func(ctx context.Context, _ *pipelines.Pipeline, spec *pipelines.Sink, logger *slog.Logger) (sinks.Target, error) {
			return NewPostgres(ctx, spec, logger)
		},
	}
}

// check parses the DSN as the driver will, so that a connection string
// that can never work is refused before anything starts. The message
// leaves the DSN out: it may hold a password.
func (cfg *PostgresConfig) check(c pipelines.SinkCheck) {
	if cfg.DSN == "" {
		return // required: reported by the tags
	}
	if _, err := pgconn.ParseConfig(cfg.DSN); err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, "`: "); strings.HasPrefix(msg, "cannot parse `") && i >= 0 {
			msg = msg[i+len("`: "):]
		}
		c.Errorf("dsn", "not a PostgreSQL connection string (postgres://user:password@host:5432/db?sslmode=disable, or key=value pairs): %s", msg)
	}
}

// duckDBNotCompiled is why a binary built without DuckDB refuses a duckdb
// sink.
const duckDBNotCompiled = "duckdb is not compiled into this binary (it was built with -tags noduckdb); use a build without that tag, or another sink type"

// DuckDBKind is the duckdb sink: tables in an embedded DuckDB file.
func DuckDBKind() sinks.Kind {
	return sinks.Kind{
		SinkType: pipelines.SinkType{
			Name:      "duckdb",
			Doc:       "tables in an embedded DuckDB file",
			NewConfig: func() any { return new(DuckDBConfig) },
			Check: func(_ any, c pipelines.SinkCheck) {
				// A binary built with -tags noduckdb knows the type but
				// cannot open it: refuse the file, not the running sink.
				if !DuckDBCompiled {
					c.Errorf("type", "%s", duckDBNotCompiled)
				}
			},
		},
		Open: func(ctx context.Context, p *pipelines.Pipeline, spec *pipelines.Sink, logger *slog.Logger) (sinks.Target, error) {
			return NewDuckDB(ctx, spec, p.DataDir, logger)
		},
	}
}
