// Package console owns the operator's surface of a running pipeline: the
// read API over the log (topics, consumer lag, the message browser), health
// and readiness, the Prometheus endpoint and the web console at /.
//
// It reads; it never appends to the log or changes a consumer's position.
// Each layer keeps its own HTTP routes (ingest, serving, batch jobs, sinks);
// this package mounts only what belongs to no single layer.
package console
