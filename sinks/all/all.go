// Package all is the table of every sink kind the program supports: the one
// place that knows them all. The CLI passes Types to the pipeline file's
// loader and JSON Schema, and opens targets with Open.
//
// A new sink is a folder under sinks/ (its Target and its Kind, see
// sinks.Kind) and one line in Kinds.
package all

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

// Kinds returns every sink kind, in the order messages and the JSON Schema
// list them.
func Kinds() []sinks.Kind {
	return []sinks.Kind{
		warehouse.PostgresKind(),
		warehouse.DuckDBKind(),
		cassandra.Kind(),
		elasticsearch.Kind(),
	}
}

// Types returns what the pipeline file knows of every kind, for
// pipelines.Load, Parse and JSONSchema.
func Types() pipelines.SinkTypes {
	ks := Kinds()
	out := make(pipelines.SinkTypes, len(ks))
	for i, k := range ks {
		out[i] = k.SinkType
	}
	return out
}

// Open connects the target of spec by its type.
func Open(ctx context.Context, p *pipelines.Pipeline, spec *pipelines.Sink, logger *slog.Logger) (sinks.Target, error) {
	for _, k := range Kinds() {
		if k.Name == spec.Type {
			return k.Open(ctx, p, spec, logger)
		}
	}
	return nil, fmt.Errorf("sink %q: unknown type %q", spec.Name, spec.Type)
}
