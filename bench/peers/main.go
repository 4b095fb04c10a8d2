// Command peers runs Lambdaflow side by side with the systems users would
// pick instead, on the same machine, the same data and the same job, and
// prints medians and ratios:
//
//	ingest  HTTP NDJSON ingest vs an Apache Kafka broker (KRaft) and a
//	        kafka-clients producer: durable (fsync before ack), without
//	        fsync, and one event at a time
//	speed   the speed layer vs an Apache Flink job (MiniCluster,
//	        parallelism 1), per CPU-second, 8 and 100,000 keys
//	batch   batch recompute over the lake vs DuckDB over the same files,
//	        1 thread per CPU-second and 2 threads wall clock
//	lake    lake bytes per row vs DuckDB's zstd Parquet of the same rows
//
// Lambdaflow's side is always one of its Go benchmarks (the test binaries
// of ./ingest, ./speed, ./batch), so its figures are those `make bench`
// reports. The two sides of a pair run one after the other, round after
// round (ours, theirs, ours, theirs …), never at the same time.
//
// Usage (make bench-peers fetches the peers first; see docs/benchmarks.md):
//
//	deploy/bench/peers.sh fetch && deploy/bench/peers.sh build
//	eval "$(deploy/bench/peers.sh env)"
//	go run ./bench/peers [-rounds 3] [-pairs ingest,speed,batch,lake]
//
// The pair ingest-one is ingest's one-event rows alone (no 32-client
// loads): quick, and meaningful on a loaded machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// peersEnv is what every pair needs: where things are and how to run them.
type peersEnv struct {
	repo   string // the repository root
	peers  string // LF_PEERS_DIR: the peers' jars, classes, and scratch space
	work   string // scratch directory of this run
	bins   string // the Go test binaries
	java   string
	rounds int
	// kafkaLib: Kafka's jars (deploy/bench/kafka-broker.sh fetches them)
	kafkaLib string
	flink    string // Flink version, for labels
	kafka    string // Kafka version, for labels
}

func main() {
	rounds := flag.Int("rounds", 3, "rounds per pair (the median of the rounds is reported)")
	pairs := flag.String("pairs", "ingest,speed,batch,lake", "comma-separated pairs to run: ingest, ingest-one, speed, batch, lake")
	out := flag.String("o", "", "also write the table to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *rounds, strings.Split(*pairs, ","), *out); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, rounds int, pairs []string, out string) error {
	for _, p := range pairs {
		if !slices.Contains([]string{"ingest", "ingest-one", "speed", "batch", "lake"}, p) {
			return fmt.Errorf("-pairs: unknown pair %q (known: ingest, ingest-one, speed, batch, lake)", p)
		}
	}
	if rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	// batch and lake share the lake files: they run as one pair.
	want := map[string]bool{}
	for _, p := range pairs {
		want[p] = true
	}
	env, err := newEnv(rounds, want["ingest"] || want["ingest-one"], want["speed"])
	if err != nil {
		return err
	}
	measure.Logf(os.Stderr, "building the Go test binaries into %s", env.bins)
	for _, pkg := range []string{"./ingest", "./speed", "./batch"} {
		if _, err := measure.GoTestBinary(ctx, env.repo, pkg, env.bins); err != nil {
			return err
		}
	}
	var rows []*measure.Row
	steps := []struct {
		on  bool
		run func(context.Context, *peersEnv) ([]*measure.Row, error)
	}{
		{want["ingest"] || want["ingest-one"], func(ctx context.Context, env *peersEnv) ([]*measure.Row, error) {
			return ingestPair(ctx, env, want["ingest"])
		}},
		{want["speed"], speedPair},
		{want["batch"] || want["lake"], func(ctx context.Context, env *peersEnv) ([]*measure.Row, error) {
			return batchPair(ctx, env, want["batch"], want["lake"])
		}},
	}
	start := time.Now()
	for _, s := range steps {
		if !s.on {
			continue
		}
		r, err := s.run(ctx, env)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	var b strings.Builder
	var peers []string
	if want["ingest"] || want["ingest-one"] {
		peers = append(peers, "Kafka "+env.kafka)
	}
	if want["speed"] {
		peers = append(peers, "Flink "+env.flink)
	}
	if want["batch"] || want["lake"] {
		peers = append(peers, "DuckDB "+duckdbVersion(ctx))
	}
	fmt.Fprintf(&b, "\nLambdaflow vs peers: medians of %d interleaved rounds (%s; load average now %.1f; %s)\n\n",
		rounds, time.Since(start).Round(time.Second), measure.LoadAverage(), strings.Join(peers, ", "))
	measure.Table(&b, rows)
	fmt.Fprintln(&b)
	for _, r := range rows {
		fmt.Fprintf(&b, "- %s, %s: %s\n", r.Pair, r.What, r.Commands)
	}
	fmt.Print(b.String())
	if out != "" {
		return os.WriteFile(out, []byte(b.String()), 0o644)
	}
	return nil
}

func newEnv(rounds int, kafka, flink bool) (*peersEnv, error) {
	repo, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		return nil, fmt.Errorf("run from the repository root (no go.mod in %s)", repo)
	}
	env := &peersEnv{
		repo: repo, rounds: rounds,
		peers: os.Getenv("LF_PEERS_DIR"), java: os.Getenv("LF_PEERS_JAVA"), kafkaLib: os.Getenv("LF_PEERS_KAFKA_LIB"),
		kafka: os.Getenv("LF_PEERS_KAFKA_VERSION"), flink: os.Getenv("LF_PEERS_FLINK_VERSION"),
	}
	// Only the pairs asked for need their peer: DuckDB (batch, lake) comes
	// from PyPI, Kafka (ingest) and Flink (speed) from Maven Central.
	if env.peers == "" || (kafka || flink) && env.java == "" || kafka && env.kafkaLib == "" {
		return nil, errors.New(`LF_PEERS_DIR, LF_PEERS_JAVA and LF_PEERS_KAFKA_LIB are not set: run deploy/bench/peers.sh fetch && deploy/bench/peers.sh build, then eval "$(deploy/bench/peers.sh env)" (make bench-peers does all of it)`)
	}
	var need []string
	if kafka {
		need = append(need, env.kafkaLib, filepath.Join(env.peers, "classes/kafka"))
	}
	if flink {
		need = append(need, filepath.Join(env.peers, "flink/lib"), filepath.Join(env.peers, "classes/flink"))
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s missing: run deploy/bench/peers.sh fetch && deploy/bench/peers.sh build", p)
		}
	}
	env.work = filepath.Join(env.peers, "run")
	env.bins = filepath.Join(env.work, "bin")
	if err := os.RemoveAll(env.work); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(env.bins, 0o755); err != nil {
		return nil, err
	}
	return env, nil
}

// goBench runs one benchmark of a package's test binary and returns it.
func (env *peersEnv) goBench(ctx context.Context, pkg, name, benchtime string, extraEnv ...string) (measure.Bench, error) {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + p + "$"
	}
	res, err := measure.GoBench(ctx, filepath.Join(env.bins, pkg+".test"), filepath.Join(env.repo, pkg),
		strings.Join(parts, "/"), benchtime, extraEnv)
	if err != nil {
		return measure.Bench{}, err
	}
	return measure.Find(res, name)
}

func logRound(pair string, round, rounds int) {
	measure.Logf(os.Stderr, "%s: round %d of %d (load average %.1f)", pair, round, rounds, measure.LoadAverage())
}
