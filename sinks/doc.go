// Package sinks delivers topics and views from the log to external stores.
//
// It owns the one sink runner every target shares: a durable consumer per
// sink (consumer "sink.<name>", so each sink has its own offsets and lag),
// batching by size and time, retries with exponential backoff and full jitter,
// the dead-letter topic "<sink>_dlq" with its listing and replay, the sink's
// health and its metrics. A target (sinks/cassandra, sinks/elasticsearch,
// sinks/warehouse) is a thin adapter to one database behind the Target
// interface and must not batch, retry or dead-letter on its own.
//
// Delivery is at least once: offsets are committed only after a batch is
// written or dead-lettered, so a crash redelivers the uncommitted rows, and
// targets upsert by key (sinks.Table: _id for a topic, the group-by fields and
// window_start for a view) so that a redelivery changes nothing.
//
// A view's topic holds rows of open windows (final false), final rows and
// batch corrections, which overwrite each other by key in log order, and
// tombstones, which the runner hands the target as rows to delete
// (Row.Delete); the view's table has the column final (viewrow.Columns).
//
// # Dead letters
//
// A row the target rejects for good (it returns RowErrors for it, or
// ErrPermanent for its batch) is appended to the sink's dead-letter topic,
// partition 0, as an event with the fields
//
//	source     the topic or view the row came from
//	partition  its partition there
//	offset     its offset there
//	record     the row as a JSON object keyed by column name, in column
//	           order, in the exact JSON form of package event (strings as
//	           strings or {"base64": "…"} when not valid UTF-8, long and int
//	           as numbers, doubles as numbers or "NaN", "+Inf", "-Inf",
//	           bools as true/false, timestamps as RFC 3339 UTC strings with
//	           microseconds, nulls as null); null when the log entry itself
//	           could not be decoded
//	error      why it was rejected
//	time       when it was dead-lettered (UTC µs; also the event time)
//
// and the offsets are committed past it: one bad record never stops a sink.
// Consumer "sink.<name>.replay" records how far the topic has been
// replayed; Runner.DeadLetters lists what lies after it and Runner.Replay
// writes it again, appending what fails again with its new error.
//
// Each target folder declares its Kind: the keys its sinks take in the
// pipeline file (a config struct with docs, defaults, enums and checks,
// which drive loading, validation and the JSON Schema) and how to open its
// Target. sinks/all lists every kind; a new sink is a folder and one line
// there. This package must not import the targets nor know any database;
// sinks/sinktest is the conformance suite every target passes.
package sinks
