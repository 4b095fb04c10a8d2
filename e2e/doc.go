// Package e2e holds the end-to-end tests: they build the real lambdaflow
// binary, run it on a test pipeline with a temporary data directory, and
// check what users and operators see through the HTTP API, the web console
// (in headless Chromium), `lambdaflow top` and /metrics (against the Grafana
// dashboard), and what the sinks put in PostgreSQL, Cassandra, OpenSearch
// and DuckDB, read with each engine's own client and through the sink
// dashboards of deploy/. It has no code of its own; it must not import the
// layers, so the tests see only what a user sees.
package e2e
