// Package speed is the streaming runtime of the Lambda architecture: it
// computes every view of a pipeline on the stream, fresh within
// milliseconds of ingest, by running the view's compiled plan
// (plan.Plan) over the log.
//
// Per view it reads every partition of the view's topic (consumer
// "speed.<view>"), assigns matched events to event-time windows and keeps
// each open window's aggregate state. The rows of open windows that changed
// are shown, paced by the view's emit.interval (pace.go: a row's first
// change at once, later ones at most once per interval), in the serving
// store and, with final: false, in the view's own log topic, where sinks
// pick them up. The watermark (watermark.go) decides when a window is
// final: its final row goes to the store and to the view's topic (final:
// true), overwriting the open one, and its state is dropped. A session that
// merges into another leaves a tombstone in the topic (_deleted: true),
// which removes its row from the store and the sinks. Final rows stay in the store for the
// view's retention, measured in event time: a final row goes once the
// watermark is retention past its end (in steps of retention/64), so the
// rows shown depend on the stream alone. An event for a window that is already final is late: it
// is counted (lambdaflow_speed_late_events_total) and left to the batch
// layer, which includes it when it recomputes the window.
//
// Exactness across crashes: each view checkpoints, at an interval and on a
// soft stop, its open windows' states together with the next offset and the
// newest event time of every partition, as one object written atomically
// (docs/checkpoint-format.md). A restarted view restores it, shows its
// retained final rows again from its log topic and replays from the
// checkpointed offsets. Because whether an event is late depends only on
// its own partition's events before it (see watermark.go), the replay makes
// the same decisions as the first run, and every window ends with exactly
// the events it would have had without the crash: none lost, none counted
// twice. A final row whose window closed after the checkpoint is appended
// again by the replay; sinks upsert, so that is harmless. A checkpoint is
// only taken once every row of the state it records is durable in the log
// and no tombstone waits. Open windows' rows appended after the checkpoint
// are removed by the restarted view (a tombstone each), since the replay
// may form its windows otherwise; it shows those that exist again.
//
// The engine is pure (no log, clock or goroutines) so that Speed, Local
// (pipeline tests) and the benchmarks all run the same code. Speed owns its
// goroutines: per view one that owns the engine, one reader per partition
// and at most one checkpoint upload, all waited for before Run returns.
//
// This package imports the pipeline packages (pipelines and those below it)
// and broker only. It does not serve HTTP and does not know the serving
// layer beyond the Store interface it declares, nor how sinks deliver views.
package speed
