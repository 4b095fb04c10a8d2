// Package batch is the batch layer: the lake writer, which copies every
// topic from the log into an immutable Parquet lake exactly once
// (docs/lake-format.md), compaction of the lake's small files (whose
// passes also take out the periods past a topic's lake.retention,
// lake_retention.go), and the
// jobs, scheduled by cron or requested over HTTP, that recompute each view
// from the lake with the view's compiled plan — the same code as the speed
// layer — and hand the result to the serving store, advancing the view's
// batch horizon, and to the view's log topic, so that sinks get the
// corrections. Tumbling and hopping views run on a columnar engine
// (engine.go: typed vectors, dense group ids, aggregates a column at a
// time, one worker per CPU); session views event by event. Reads of a
// lake on object storage (jobs and compaction's merges) fetch their files
// ahead of their readers, up to 64 at once (prefetch.go), and keep the
// files they fetched for later reads in lake.cache (lake_cache.go).
//
// It reads the log and appends to it through the small Log interface and
// writes results through the Store interface; it never serves queries nor
// touches the speed layer's state. Any number of processes may run the
// batch role on one lake: partition p of every topic is read by the
// process that owns partition p of consumer "lake" (Options.Owner) into its
// buffer of the topic, whose flushes commit only partitions it owns, each
// fenced by its lease's epoch; the periods of shard p (period number mod
// partitions) are compacted by the same process. A partition taken over is
// read from the log while what its predecessor left is removed (a listing
// of the topic's lake, lake_recover.go); its first flush waits for that.
// Any number may read it.
// A lapsed owner that wakes mid-commit cannot harm the new one: its
// manifest record is refused (the new owner's take-over holds the version
// it was for), a record that finds its name freed by checkpoints is not
// taken for a commit (manifestStore.confirm), and the files it removes
// carry its own epoch in their names.
//
// The manifest (manifest.go, manifest_log.go) is a log of commit records
// with checkpoints; in memory each version shares copy-on-write trees of
// its files with the version it was made from (manifest_files.go), so a
// commit costs what it changes, not what the lake holds, and a large
// lake's checkpoint is written in parts, those in which nothing changed
// copied from the previous checkpoint (manifest_parts.go).
package batch
