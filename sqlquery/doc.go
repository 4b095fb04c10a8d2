// Package sqlquery answers read-only SQL (POST /v1/sql, `lambdaflow sql`)
// over what a pipeline holds: each topic's lake as a table (schema lake),
// each view as a table with both layers merged as GET /v1/views merges them
// (schema views), and the tables of the DuckDB sinks this process runs
// (schema named after the sink). Unqualified names look in lake, then
// views.
//
// Every query gets its own in-memory DuckDB: the tables it names are
// attached there (lake files as read_parquet views over the committed
// manifest's files, view rows and sink rows copied in; a lake on object
// storage is read from local copies of its files, batch.LakeCopies, held
// until the query ends), then file access is switched off
// (enable_external_access=false, only the lake files named stay readable)
// and the configuration locked, and only then does the query run. A lake
// table named once is attached with only the files whose period its
// SELECT's WHERE leaves (tableBounds): bounds on the event time read from
// DuckDB's own parse of the query, widened by a day, so that the answer
// is the one every file would give. The DuckDB sink keeps its file locked while the pipeline runs;
// its rows are read on its own database handle, beside its writer, so a
// query sees the sink's last committed state and can never write to it.
//
// It must not write anything: a statement other than one SELECT is refused
// before anything is attached. Limits (sql.timeout, sql.max_rows,
// sql.max_bytes, sql.memory_limit, and sql.lake_cache for a lake on object
// storage) bound each query; a request may ask for less. A binary built with -tags noduckdb has no engine: Query returns an
// Error of kind NotCompiled, which the HTTP API answers 501. The HTTP
// handler counts each request by the result its status says (metrics.go),
// refusals before the engine ran included.
package sqlquery
