//go:build noduckdb

package warehouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// This file replaces duckdb.go in a build with -tags noduckdb. DuckDB is the
// one dependency that needs cgo (its engine is C++), so leaving it out gives
// a binary that builds with CGO_ENABLED=0, e.g. for ingest-only nodes; every
// other sink type works the same.

// DuckDBCompiled says whether this binary has the DuckDB target.
const DuckDBCompiled = false

// ErrDuckDBNotCompiled is returned (wrapped) by NewDuckDB in a binary built
// without DuckDB.
var ErrDuckDBNotCompiled = errors.New(duckDBNotCompiled)

// NewDuckDB fails: this build has no DuckDB. (It returns an untyped nil
// target, so the caller never holds a nil pointer in a non-nil interface.)
func NewDuckDB(_ context.Context, spec *pipelines.Sink, _ string, _ *slog.Logger) (sinks.Target, error) {
	return nil, fmt.Errorf("sink %q: %w", spec.Name, ErrDuckDBNotCompiled)
}
