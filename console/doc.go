// Package console owns the operator's surface of a running pipeline: the
// read API over the log (topics, consumer lag, the message browser), health
// and readiness (/healthz, /readyz), live numbers (GET /v1/stats), the
// Prometheus endpoint and the web console at /.
//
// It reads; it never appends to the log or changes a consumer's position.
// Each layer declares its own HTTP routes, readiness checks and live
// numbers (ingest, serving, batch, sinks, speed); this package serves only
// what belongs to no single layer, and runs the checks and gathers the
// numbers the layers report, without knowing them.
package console
