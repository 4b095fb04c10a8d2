// Package speed is the streaming runtime of the Lambda architecture: it
// computes every view of a pipeline on the stream, fresh within
// milliseconds of ingest, by running the view's compiled plan
// (plan.Plan) over the log.
//
// A view is computed in partitions, so that any number of processes can
// share it (consumer "speed.<view>", partition p owned by one of them at a
// time, see docs/cluster.md). The owner of partition p runs two stages
// (merge.go): stage 1 reads source partition p alone, assigns matched events
// to event-time windows and keeps each open window's aggregate state for
// that partition, finalising a window when the partition's own watermark
// passes it; every state that changed goes, with the partition's progress,
// to the view's partials topic, in the partition of its group. Stage 2
// reads partition p of that topic, merges the states of every source
// partition per (group, window), takes the view's watermark over all source
// partitions (watermark.go) and shows the merged rows. The rows of open
// windows that changed are shown, paced by the view's emit.interval
// (pace.go: a row's first change at once, later ones at most once per
// interval), in the serving store and, with final: false, in the view's own
// log topic, where sinks pick them up. When the watermark passes a window
// its final row goes to the store and to the view's topic (final: true),
// overwriting the open one. A session that merges into another leaves a
// tombstone in the topic (_deleted: true), which removes its row from the
// store and the sinks. Aggregate states merge exactly, so the rows are
// those of one computation over every partition.
// Final rows stay in the store for the view's retention, measured in event
// time: a final row goes once the watermark is retention past its end (in
// steps of retention/64), so the rows shown depend on the stream alone. An
// event for a window that is already final is late: it is counted
// (lambdaflow_speed_late_events_total) and left to the batch layer, which
// includes it when it recomputes the window.
//
// A process that serves queries (Options.Serve) shows every view whole: the
// partitions it owns as it computes them, the others through replicas of
// their owners' stage 2 (replica.go), which start from the owner's last
// checkpoint and apply the same partials. The stages 2 that show a
// partition in a process's store, one after the other, take turns and hand
// each other the open session rows they leave there (handover.go), so that
// a session that merged away while the partition moved is deleted from that
// store too.
//
// Exactness across crashes and moves: each partition run checkpoints, at an
// interval and on a soft stop, both stages' states with its positions in
// the source, the partials and the view's topic, as one object written
// atomically and named by the fenced commit of its lease
// (docs/checkpoint-format.md). On a soft stop stage 2 first applies the
// partials topic to its end, after its own stage 1's last records (and,
// when the whole process stops, those of every stage 1 of the view here)
// are durable, so that the stopping process's last rows and checkpoint
// include every event it read (stop.go); a flush that was waiting for the
// log when the stop came is kept for it, not dropped. Whoever runs the
// partition next restores it, shows its retained final rows again from the
// view's topic and replays from the checkpointed offsets. Because whether an event is late depends only on
// its own partition's events before it, the replay makes the same decisions
// as the first run, and sends the same states; stage 2 keeps only the
// newest state of each source partition, so a state sent twice counts once.
// Every window ends with exactly the events it would have had without the
// crash: none lost, none counted twice. A final row whose window closed after
// the checkpoint is appended again by the replay; sinks upsert, so that is
// harmless. A checkpoint is only committed once every state and row it
// depends on is durable in the log and no row waits for its interval. Open
// windows' rows appended after the checkpoint are removed by the next run
// of the partition (a tombstone each), since the replay may form its
// windows otherwise; it shows those that exist again.
//
// The engine and the merger are pure (no log, clock or goroutines) so that
// Speed, Local (pipeline tests, one engine over every partition) and the
// benchmarks run the same code. Speed owns its goroutines: per owned
// partition of a view one that owns the engine and the merger, a reader per
// topic, an appender and at most one checkpoint upload; per replica one;
// all waited for before Run returns. A reader holds a bounded number of
// entries ahead of the goroutine it feeds (readAhead and entryQueue,
// run_state.go), so that a partition far behind the log, as in a backfill,
// costs no more memory than one that keeps up.
//
// This package imports the pipeline packages (pipelines and those below it)
// and broker only. It does not serve HTTP and does not know the serving
// layer beyond the Store interface it declares, nor how sinks deliver views.
package speed
