package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/cassandra"
	"github.com/lambdaflow/lambdaflow/sinks/elasticsearch"
	"github.com/lambdaflow/lambdaflow/sinks/warehouse"
)

// openTarget connects a sink's database adapter by its type. The switch is
// the only place that knows every target: no registry, no init().
func openTarget(ctx context.Context, p *pipelines.Pipeline, spec *pipelines.Sink, logger *slog.Logger) (sinks.Target, error) {
	switch spec.Type {
	case "postgres":
		return warehouse.NewPostgres(ctx, spec, logger)
	case "duckdb":
		return warehouse.NewDuckDB(ctx, spec, p.DataDir, logger)
	case "cassandra":
		return cassandra.New(ctx, spec, logger)
	case "elasticsearch":
		return elasticsearch.New(ctx, spec, logger)
	}
	return nil, fmt.Errorf("sink %q: unknown type %q", spec.Name, spec.Type)
}

// checkCompiledSinks refuses sinks whose target this binary was built
// without (the duckdb sink under -tags noduckdb), with the file position of
// each, before anything starts.
func checkCompiledSinks(p *pipelines.Pipeline) error {
	var errs pipelines.Errors
	for i := range p.Sinks {
		s := &p.Sinks[i]
		if s.Type == "duckdb" && !warehouse.DuckDBCompiled {
			errs = append(errs, &pipelines.Error{File: p.File, Line: s.Pos.Line, Col: s.Pos.Col,
				Path: fmt.Sprintf("sinks[%d].type", i),
				Msg:  "duckdb is not compiled into this binary (it was built with -tags noduckdb); use a build without that tag, or another sink type"})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}
