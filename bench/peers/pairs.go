package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// Kafka's producer settings for the 32-client loads: the number of
// KafkaProducer instances the clients share, the best of 1, 2, 4, 8, 16
// and 32 on this machine class for each broker setting (with fsync on
// every append more connections let the broker fsync partitions in
// parallel; without, one producer batches best).
const (
	kafkaProducersFsync   = "producers=4"
	kafkaProducersNoFsync = "producers=1"
	kafkaSeconds          = "5" // measured, after 2 s of warm-up
	ingestBenchtime       = "3s"
)

// ingestPair: Lambdaflow's BenchmarkHTTPIngest (R1, fsync / no fsync) and
// BenchmarkHTTPIngestOne against a Kafka broker loaded by KafkaLoad.java
// with the same event bytes (the events file the Go benchmark writes).
// Without loads (the pair ingest-one) only the one-event rows are
// measured: they hold up on a loaded machine, where Kafka's 32-client
// loads may starve.
func ingestPair(ctx context.Context, env *peersEnv, loads bool) ([]*measure.Row, error) {
	events := filepath.Join(env.work, "ingest-events.ndjson")
	kafka := "Kafka " + env.kafka
	fsync := &measure.Row{Pair: "ingest", What: "durable (fsync before ack), 32 clients × 100-event bodies", Unit: "events/s",
		Peer: kafka + " `flush.messages=1`, acks=all, 4 producers",
		Commands: "ours `go test -run '^$' -bench 'BenchmarkHTTPIngest$/R1-fsync' -benchtime 3s ./ingest/`; " +
			"Kafka `KafkaLoad batches … fsync EVENTS 32 100 5 producers=4` (topic `flush.messages=1`)"}
	fsyncP99 := &measure.Row{Pair: "ingest", What: "durable, ack p99 of a 100-event body", Unit: "ms", Lower: true,
		Peer: fsync.Peer, Commands: "the same runs as the row above"}
	nofsync := &measure.Row{Pair: "ingest", What: "no fsync, 32 clients × 100-event bodies", Unit: "events/s",
		Peer: kafka + " defaults, acks=all, 1 producer",
		Commands: "ours `go test -run '^$' -bench 'BenchmarkHTTPIngest$/R1-nofsync' -benchtime 3s ./ingest/` (`broker.sync: interval`); " +
			"Kafka `KafkaLoad batches … nofsync EVENTS 32 100 5 producers=1`"}
	oneP50 := &measure.Row{Pair: "ingest", What: "one client, one event per request, default settings, p50", Unit: "ms", Lower: true,
		Peer:     kafka + " defaults (acks=all, linger.ms=5, no fsync)",
		Commands: "ours `go test -run '^$' -bench 'BenchmarkHTTPIngestOne/R1-fsync' ./ingest/` (fsync on); Kafka `KafkaLoad one … nofsync EVENTS 1000`"}
	oneP99 := &measure.Row{Pair: "ingest", What: "one client, one event per request, default settings, p99", Unit: "ms", Lower: true,
		Peer: oneP50.Peer, Commands: "the same runs as the row above"}
	oneLinger0 := &measure.Row{Pair: "ingest", What: "one client, one event per request, p50", Unit: "ms", Lower: true,
		Peer:     kafka + " with linger.ms=0 (no fsync)",
		Commands: "ours as above; Kafka `KafkaLoad one … nofsync EVENTS 1000 linger.ms=0`"}
	// Like for like with Kafka's default durability: neither fsyncs
	// before the acknowledgement.
	oneNoFsync := &measure.Row{Pair: "ingest", What: "one client, one event per request, no fsync (`broker.sync: interval`), p50", Unit: "ms", Lower: true,
		Peer:     kafka + " with linger.ms=0 (no fsync)",
		Commands: "ours `go test -run '^$' -bench 'BenchmarkHTTPIngestOne/R1-nofsync' ./ingest/`; Kafka as above"}
	rows := []*measure.Row{fsync, fsyncP99, nofsync, oneP50, oneP99, oneLinger0, oneNoFsync}
	if !loads {
		rows = rows[3:]
	}

	measure.Logf(os.Stderr, "ingest: starting Kafka %s", env.kafka)
	k, err := startKafka(ctx, env)
	if err != nil {
		return nil, err
	}
	defer k.stop()
	if _, err := kafkaLoad(ctx, env, "create", k.bootstrap, "fsync", "4", "flush.messages=1"); err != nil {
		return nil, err
	}
	if _, err := kafkaLoad(ctx, env, "create", k.bootstrap, "nofsync", "4"); err != nil {
		return nil, err
	}
	for r := 1; r <= env.rounds; r++ {
		logRound("ingest", r, env.rounds)
		if loads {
			if err := ingestLoads(ctx, env, k, events, fsync, fsyncP99, nofsync); err != nil {
				return nil, err
			}
		}
		// Ours first: the benchmark writes the events file Kafka reads.
		b, err := env.goBench(ctx, "ingest", "BenchmarkHTTPIngestOne/R1-fsync", "1000x", "LF_BENCH_BODIES="+events)
		if err != nil {
			return nil, err
		}
		if err := appendValues(b, sample{"p50-ms", &oneP50.Ours}, sample{"p99-ms", &oneP99.Ours}, sample{"p50-ms", &oneLinger0.Ours}); err != nil {
			return nil, err
		}
		f, err := kafkaLoad(ctx, env, "one", k.bootstrap, "nofsync", events, "1000")
		if err != nil {
			return nil, err
		}
		if err := appendFields(f, sample{"p50_ms", &oneP50.Theirs}, sample{"p99_ms", &oneP99.Theirs}); err != nil {
			return nil, err
		}
		if f, err = kafkaLoad(ctx, env, "one", k.bootstrap, "nofsync", events, "1000", "linger.ms=0"); err != nil {
			return nil, err
		}
		if err := appendFields(f, sample{"p50_ms", &oneLinger0.Theirs}, sample{"p50_ms", &oneNoFsync.Theirs}); err != nil {
			return nil, err
		}
		if b, err = env.goBench(ctx, "ingest", "BenchmarkHTTPIngestOne/R1-nofsync", "1000x"); err != nil {
			return nil, err
		}
		if err := appendValues(b, sample{"p50-ms", &oneNoFsync.Ours}); err != nil {
			return nil, err
		}
		measure.Logf(os.Stderr, "ingest: one event p50 %.2f ms (no fsync %.2f) vs Kafka %.2f, linger.ms=0 %.2f",
			last(oneP50.Ours), last(oneNoFsync.Ours), last(oneP50.Theirs), last(oneLinger0.Theirs))
	}
	return rows, nil
}

// ingestLoads is one round of the 32-client loads of ingestPair: ours with
// and without fsync, each followed by Kafka's with the same events.
func ingestLoads(ctx context.Context, env *peersEnv, k *kafkaBroker, events string, fsync, fsyncP99, nofsync *measure.Row) error {
	// Ours first: the benchmark writes the events file Kafka reads.
	b, err := env.goBench(ctx, "ingest", "BenchmarkHTTPIngest/R1-fsync", ingestBenchtime, "LF_BENCH_BODIES="+events)
	if err != nil {
		return err
	}
	if err := appendValues(b, sample{"events/s", &fsync.Ours}, sample{"p99-ms", &fsyncP99.Ours}); err != nil {
		return err
	}
	f, err := kafkaLoad(ctx, env, "batches", k.bootstrap, "fsync", events, "32", "100", kafkaSeconds, kafkaProducersFsync)
	if err != nil {
		return err
	}
	if err := appendFields(f, sample{"events_per_s", &fsync.Theirs}, sample{"p99_ms", &fsyncP99.Theirs}); err != nil {
		return err
	}
	if b, err = env.goBench(ctx, "ingest", "BenchmarkHTTPIngest/R1-nofsync", ingestBenchtime); err != nil {
		return err
	}
	if err := appendValues(b, sample{"events/s", &nofsync.Ours}); err != nil {
		return err
	}
	if f, err = kafkaLoad(ctx, env, "batches", k.bootstrap, "nofsync", events, "32", "100", kafkaSeconds, kafkaProducersNoFsync); err != nil {
		return err
	}
	if err := appendFields(f, sample{"events_per_s", &nofsync.Theirs}); err != nil {
		return err
	}
	measure.Logf(os.Stderr, "ingest: fsync %s vs %s ev/s; no fsync %s vs %s", measure.Human(last(fsync.Ours)),
		measure.Human(last(fsync.Theirs)), measure.Human(last(nofsync.Ours)), measure.Human(last(nofsync.Theirs)))
	return nil
}

// speedPair: Lambdaflow's BenchmarkWindowJob against FlinkWindowJob.java on
// the same events, per CPU-second, with the results' checksums compared.
func speedPair(ctx context.Context, env *peersEnv) ([]*measure.Row, error) {
	var rows []*measure.Row
	cp := filepath.Join(env.peers, "classes", "flink") + ":" + filepath.Join(env.peers, "flink", "lib", "*")
	for _, keys := range []string{"8", "100000"} {
		row := &measure.Row{Pair: "speed", What: "tumbling 1 min, group by key, count/sum/max, " + keys + " keys, per CPU-second",
			Unit: "events/cpu-s", Peer: "Flink " + env.flink + " (MiniCluster, parallelism 1, heap state, object reuse)",
			Commands: "ours `go test -run '^$' -bench 'BenchmarkWindowJob/keys=" + keys + "$' -benchtime 1x ./speed/`; " +
				"Flink `java FlinkWindowJob EVENTS " + keys + " WARMUP`"}
		// The same job with every change of an open window shown at every
		// flush (keys=N-unpaced), against the same Flink runs: the figure
		// the pair gave before it paced open windows as a view does.
		unpaced := &measure.Row{Pair: "speed", What: "the same, every change of an open window shown at every flush, " + keys + " keys",
			Unit: row.Unit, Peer: row.Peer,
			Commands: "ours `go test -run '^$' -bench 'BenchmarkWindowJob/keys=" + keys + "-unpaced$' -benchtime 1x ./speed/`; Flink as above"}
		rows = append(rows, row, unpaced)
		for r := 1; r <= env.rounds; r++ {
			logRound("speed keys="+keys, r, env.rounds)
			b, err := env.goBench(ctx, "speed", "BenchmarkWindowJob/keys="+keys, "1x")
			if err != nil {
				return nil, err
			}
			if err := appendValues(b, sample{"events/cpu-s", &row.Ours}); err != nil {
				return nil, err
			}
			bu, err := env.goBench(ctx, "speed", "BenchmarkWindowJob/keys="+keys+"-unpaced", "1x")
			if err != nil {
				return nil, err
			}
			if err := appendValues(bu, sample{"events/cpu-s", &unpaced.Ours}); err != nil {
				return nil, err
			}
			ours, err := checksum(b.Logs)
			if err != nil {
				return nil, err
			}
			if u, err := checksum(bu.Logs); err != nil {
				return nil, err
			} else if !maps.Equal(u, ours) {
				return nil, fmt.Errorf("speed, %s keys: paced %v, unpaced %v: the two did not compute the same windows", keys, ours, u)
			}
			events := ours["count"]
			n, _ := strconv.ParseInt(events, 10, 64)
			out, err := measure.Command(ctx, "", nil, env.java, "-Xms1g", "-Xmx1g",
				"--add-opens=java.base/java.util=ALL-UNNAMED", "--add-opens=java.base/java.lang=ALL-UNNAMED",
				"-cp", cp, "FlinkWindowJob", events, keys, strconv.FormatInt(n/5, 10))
			if err != nil {
				return nil, err
			}
			f, err := measure.Fields(out, "result")
			if err != nil {
				return nil, err
			}
			for _, k := range []string{"windows", "count", "sum", "max"} {
				if f[k] != ours[k] {
					return nil, fmt.Errorf("speed, %s keys: Flink's %s=%s, Lambdaflow's %s: the two did not compute the same windows", keys, k, f[k], ours[k])
				}
			}
			cpu, err := measure.Float(f, "cpu_s")
			if err != nil {
				return nil, err
			}
			row.Theirs = append(row.Theirs, float64(n)/cpu)
			unpaced.Theirs = append(unpaced.Theirs, float64(n)/cpu)
			measure.Logf(os.Stderr, "speed keys=%s: %s (unpaced %s) vs %s events/cpu-s (checksums equal)", keys,
				measure.Human(last(row.Ours)), measure.Human(last(unpaced.Ours)), measure.Human(last(row.Theirs)))
		}
	}
	return rows, nil
}

// checksum finds the "file.go:N: checksum k=v …" line BenchmarkWindowJob
// logs.
func checksum(logs []string) (map[string]string, error) {
	for _, l := range logs {
		if _, rest, ok := strings.Cut(l, ": checksum "); ok {
			return measure.Fields("checksum "+rest, "checksum")
		}
	}
	return nil, fmt.Errorf("BenchmarkWindowJob logged no checksum (got %q)", logs)
}

// batchPair: Lambdaflow's BenchmarkRecompute against DuckDB running the
// same GROUP BY over the lake files the benchmark wrote, and the size of
// those files against DuckDB's zstd Parquet of the same rows.
func batchPair(ctx context.Context, env *peersEnv, batch, lake bool) ([]*measure.Row, error) {
	duck := "DuckDB " + duckdbVersion(ctx)
	cmd := "ours `go test -run '^$' -bench 'BenchmarkRecompute/VIEW' -benchtime 3x ./batch/`; DuckDB `bench/peers/duckdb_batch.py query LAKE`"
	mk := func(view, what, unit, peer string) *measure.Row {
		return &measure.Row{Pair: "batch", What: view + " view: " + what, Unit: unit, Peer: duck + " " + peer,
			Commands: strings.ReplaceAll(cmd, "VIEW", view)}
	}
	var rows []*measure.Row
	type side struct {
		row         *measure.Row
		view, unit  string // ours: sub-benchmark and unit
		duckdbField string // theirs: field of duckdb_batch.py's output
	}
	var sides []side
	for _, view := range []string{"lean", "design"} {
		cpu := mk(view, "recompute over 2M rows, per CPU-second", "rows/cpu-s", "1 thread, `time_bucket`")
		wall := mk(view, "recompute over 2M rows, wall clock", "rows/s", "2 threads, `time_bucket`")
		epoch := mk(view, "recompute over 2M rows, per CPU-second", "rows/cpu-s", "1 thread, integer bucket `epoch_us(ts) // 60000000`")
		sides = append(sides,
			side{cpu, view, "rows/cpu-s", view + "_t1_cpu"},
			side{wall, view, "rows/s", view + "_t2_wall"},
			side{epoch, view, "rows/cpu-s", view + "_epoch_t1_cpu"})
	}
	size := &measure.Row{Pair: "lake", What: "bytes per row, 2M rows of the example schema (5 fields + 5 lake columns)", Unit: "B/row", Lower: true,
		Peer:     duck + " `COPY … (FORMAT parquet, COMPRESSION zstd)` of the same rows",
		Commands: "ours: the files BenchmarkRecompute writes (the lake writer's format); DuckDB `bench/peers/duckdb_batch.py copy LAKE OUT`"}
	if batch {
		for _, s := range sides {
			rows = append(rows, s.row)
		}
	}
	if lake {
		rows = append(rows, size)
	}
	for r := 1; r <= env.rounds; r++ {
		logRound("batch", r, env.rounds)
		dir := filepath.Join(env.work, "batch-lake")
		res, err := measure.GoBench(ctx, filepath.Join(env.bins, "batch.test"), filepath.Join(env.repo, "batch"),
			"^BenchmarkRecompute$", "3x", []string{"LF_BENCH_LAKE=" + dir})
		if err != nil {
			return nil, err
		}
		glob := filepath.Join(dir, "lake", "metrics", "**", "*.parquet")
		if batch {
			for _, s := range sides {
				b, err := measure.Find(res, "BenchmarkRecompute/"+s.view)
				if err != nil {
					return nil, err
				}
				if err := appendValues(b, sample{s.unit, &s.row.Ours}); err != nil {
					return nil, err
				}
			}
			out, err := measure.Command(ctx, "", nil, "python3", filepath.Join(env.repo, "bench", "peers", "duckdb_batch.py"), "query", glob)
			if err != nil {
				return nil, err
			}
			f, err := measure.Fields(out, "result")
			if err != nil {
				return nil, err
			}
			for _, s := range sides {
				if err := appendFields(f, sample{s.duckdbField, &s.row.Theirs}); err != nil {
					return nil, err
				}
			}
			measure.Logf(os.Stderr, "batch: lean %s vs %s rows/cpu-s; design %s vs %s", measure.Human(last(sides[0].row.Ours)),
				measure.Human(last(sides[0].row.Theirs)), measure.Human(last(sides[3].row.Ours)), measure.Human(last(sides[3].row.Theirs)))
		}
		if lake {
			out, err := measure.Command(ctx, "", nil, "python3", filepath.Join(env.repo, "bench", "peers", "duckdb_batch.py"),
				"copy", glob, filepath.Join(env.work, "duckdb-copy.parquet"))
			if err != nil {
				return nil, err
			}
			f, err := measure.Fields(out, "result")
			if err != nil {
				return nil, err
			}
			if err := appendFields(f, sample{"ours_b_per_row", &size.Ours}, sample{"duckdb_b_per_row", &size.Theirs}); err != nil {
				return nil, err
			}
		}
	}
	return rows, nil
}

// duckdbVersion is the version of the duckdb Python package.
func duckdbVersion(ctx context.Context) string {
	out, err := measure.Command(ctx, "", nil, "python3", "-c", "import duckdb; print(duckdb.__version__)")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(out)
}

// sample is one figure to take from a run's output: the unit (or field)
// and the slice of samples it goes to.
type sample struct {
	key string
	dst *[]float64
}

// appendValues appends a benchmark's value in each sample's unit.
func appendValues(b measure.Bench, samples ...sample) error {
	for _, s := range samples {
		v, err := b.Value(s.key)
		if err != nil {
			return err
		}
		*s.dst = append(*s.dst, v)
	}
	return nil
}

// appendFields appends a result line's field for each sample.
func appendFields(f map[string]string, samples ...sample) error {
	for _, s := range samples {
		v, err := measure.Float(f, s.key)
		if err != nil {
			return err
		}
		*s.dst = append(*s.dst, v)
	}
	return nil
}

func last(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)-1]
}
