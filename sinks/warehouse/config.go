package warehouse

import (
	"context"
	"log/slog"

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
		},
		Open: func(ctx context.Context, _ *pipelines.Pipeline, spec *pipelines.Sink, logger *slog.Logger) (sinks.Target, error) {
			return NewPostgres(ctx, spec, logger)
		},
	}
}

// DuckDBKind is the duckdb sink: tables in an embedded DuckDB file.
func DuckDBKind() sinks.Kind {
	return sinks.Kind{
		SinkType: pipelines.SinkType{
			Name:      "duckdb",
			Doc:       "tables in an embedded DuckDB file",
			NewConfig: func() any { return new(DuckDBConfig) },
		},
		Open: func(ctx context.Context, p *pipelines.Pipeline, spec *pipelines.Sink, logger *slog.Logger) (sinks.Target, error) {
			return NewDuckDB(ctx, spec, p.DataDir, logger)
		},
	}
}
