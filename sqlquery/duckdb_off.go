//go:build noduckdb

package sqlquery

import "context"

// Compiled says whether this binary has the SQL engine: false in a build
// with -tags noduckdb.
const Compiled = false

// Query fails: this build has no DuckDB.
func (e *Engine) Query(context.Context, Request) (*Result, error) {
	return nil, &Error{Kind: NotCompiled, Msg: "SQL needs DuckDB, which this binary was built without (-tags noduckdb); use a build with DuckDB (make build)"}
}
