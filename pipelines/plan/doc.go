// Package plan compiles a view of the pipeline file into a Plan: pure
// functions over events that the speed layer runs on the stream and the
// batch layer over the lake, so that both compute the same values for a
// closed window. A Plan filters (Match, through package expr), keys (Key,
// DecodeKey), assigns windows (Windows for tumbling and hopping windows,
// AddSession and Sessions for session windows) and aggregates (NewState,
// Update, Merge, Finalize, through package aggregate, whose States have a
// versioned binary encoding for checkpoints, pinned by
// testdata/agg_state_v1.txt). The
// watermark rule that decides when a window is closed (watermark.go) lives
// here too, so that the speed layer (over the log) and the batch layer (over
// the lake, for its horizon) apply the same one.
//
// It imports the pipelines spec, event, expr and aggregate, never a runtime package
// (broker, ingest, speed, batch, serving, sinks). It does no I/O and keeps
// no global state.
package plan
