// Command scale measures how the consumers of the log scale out: the
// catch-up throughput of a pre-filled backlog with 1, 2 and 3 worker
// processes per role, each worker capped at a share of a CPU by a cgroup so
// that the scaling shows on a small machine.
//
// One nats-server (a child process, not capped) holds the backlog, written
// once through HTTP ingest; every measurement starts from a copy of that
// store, so each one catches up the same events from the same state. Per
// round and consumer (the speed layer of a view, the lake writer, a
// PostgreSQL sink), the worker counts run interleaved (the order rotates
// with the round), the 1-worker baseline among them. A measurement starts N
// `lambdaflow run --role R` processes at once and polls the lag until the
// consumer has committed every partition's end; then it checks the result
// exactly (the view's counts, the lake's rows and ids, the sink table's rows
// and ids, each equal to the backlog). See docs/benchmarks.md.
//
//	go run ./bench/scale -bin bin/lambdaflow -rounds 3 -o artifacts/bench-scale.md
//
// Pinning needs root (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us); -cpu 0
// runs the workers unpinned.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

type options struct {
	bin, pipeline, work, pgDSN string
	rounds, moveRounds         int
	workers                    []int
	consumers                  []consumer
	events                     int
	clients, body              int
	share                      float64
	weight                     int
	timeout                    time.Duration
	keep                       bool
}

func main() {
	var o options
	var workers, consumers, out string
	flag.StringVar(&o.bin, "bin", "bin/lambdaflow", "the lambdaflow binary")
	flag.StringVar(&o.pipeline, "pipeline", "bench/scale/scale.yaml", "the pipeline file")
	flag.StringVar(&o.work, "dir", "", "working directory (default: a new one under the system's temp dir)")
	flag.StringVar(&o.pgDSN, "pg", os.Getenv("LF_TEST_POSTGRES_DSN"), "PostgreSQL DSN for the sink (a schema sf_scale_* is made per measurement)")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds of throughput (0: none)")
	flag.IntVar(&o.moveRounds, "moves", 3, "rounds of partition moves: a worker of three killed, one joining, one stopped (0: none)")
	flag.StringVar(&workers, "workers", "1,2,3", "worker counts per consumer")
	flag.StringVar(&consumers, "consumers", "speed,lake,sink", "consumers to measure: speed, lake, sink")
	flag.IntVar(&o.events, "events", 2_000_000, "events in the backlog")
	flag.IntVar(&o.clients, "clients", 8, "HTTP clients filling the backlog")
	flag.IntVar(&o.body, "body", 1000, "events per request when filling the backlog")
	flag.Float64Var(&o.share, "cpu", 0.25, "CPU share of each worker process (0: not pinned)")
	flag.IntVar(&o.weight, "weight", 32, "CPU weight of each worker and of the harness (NATS, observer), in default processes, when pinning")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "longest one catch-up may take")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory and the sink schemas")
	flag.StringVar(&out, "o", "", "also write the report to this file")
	flag.Parse()

	var err error
	if o.workers, err = parseInts(workers); err != nil {
		fatal(fmt.Errorf("-workers: %w", err))
	}
	if o.consumers, err = parseConsumers(consumers); err != nil {
		fatal(fmt.Errorf("-consumers: %w", err))
	}
	if o.pgDSN == "" && hasConsumer(o.consumers, "sink") {
		fatal(fmt.Errorf("-pg (or LF_TEST_POSTGRES_DSN) is empty: the sink consumer needs PostgreSQL (deploy/dev/services.sh up)"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var report strings.Builder
	w := io.MultiWriter(os.Stdout, &report)
	if err := run(ctx, o, w); err != nil {
		fatal(err)
	}
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			fatal(err)
		}
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a worker count (1 or more)", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// rotate returns xs started at index r (mod len): round r runs the worker
// counts in this order, so that none is always first or last.
func rotate(xs []int, r int) []int {
	if len(xs) == 0 {
		return nil
	}
	r %= len(xs)
	return append(append([]int(nil), xs[r:]...), xs[:r]...)
}

// run fills the backlog, then measures every consumer and worker count
// per round and prints the table.
func run(ctx context.Context, o options, w io.Writer) error {
	if o.work == "" {
		dir, err := os.MkdirTemp("", "sf-scale-")
		if err != nil {
			return err
		}
		o.work = dir
	}
	if !o.keep {
		defer os.RemoveAll(o.work)
	}
	b := &bench{o: o, log: w}
	if o.share > 0 {
		root, v2, err := cgroupRoot()
		if err != nil {
			return err
		}
		b.cgRoot, b.cgV2 = root, v2
		// The harness runs NATS and starts the observer and checker: they
		// get the same weight as a worker, uncapped, so that on a busy
		// machine the workers' caps, not a starved broker, bound the rates.
		infra, err := newCgroup(root, v2, fmt.Sprintf("sf-scale-%d-infra", os.Getpid()), 0, o.weight)
		if err != nil {
			return err
		}
		if err := infra.join(); err != nil {
			infra.remove()
			return err
		}
		defer func() {
			if err := leave(root); err != nil {
				measure.Logf(w, "%v", err)
				return
			}
			if err := infra.remove(); err != nil {
				measure.Logf(w, "%v", err)
			}
		}()
	}
	measure.Logf(w, "building nats-server (%s, the version in go.mod)", natsModule)
	var err error
	if b.natsBin, err = buildNATS(ctx, o.work); err != nil {
		return err
	}
	measure.Logf(w, "filling the backlog: %d events through HTTP ingest (load %.1f)", o.events, measure.LoadAverage())
	took, err := b.fill(ctx)
	if err != nil {
		return fmt.Errorf("filling the backlog: %w", err)
	}
	measure.Logf(w, "backlog filled in %s", took.Round(time.Millisecond))
	results := map[string]map[int][]result{}
	for r := range o.rounds {
		for _, c := range o.consumers {
			for _, n := range rotate(o.workers, r) {
				res, err := b.measure(ctx, c, n, r)
				if err != nil {
					return fmt.Errorf("round %d, %s, %d workers: %w", r+1, c.name, n, err)
				}
				measure.Logf(w, "result round=%d consumer=%s workers=%d events=%d seconds=%.2f rate=%.0f steady=%.0f cpu_s=%.2f throttled=%.2f infra_cpu_s=%.2f load=%.1f",
					r+1, c.name, n, o.events, res.took.Seconds(), res.rate(), res.steady, res.cpu, res.throttled, res.infraCPU, res.load)
				if results[c.name] == nil {
					results[c.name] = map[int][]result{}
				}
				results[c.name][n] = append(results[c.name][n], res)
			}
		}
	}
	allMoves := map[string][]moves{}
	for r := range o.moveRounds {
		for _, c := range o.consumers {
			m, err := b.measureMoves(ctx, c, r)
			if err != nil {
				return fmt.Errorf("moves round %d, %s: %w", r+1, c.name, err)
			}
			measure.Logf(w, "moves round=%d consumer=%s kill=%.2fs join=%.2fs stop=%.2fs load=%.1f",
				r+1, c.name, m.kill.Seconds(), m.join.Seconds(), m.stop.Seconds(), measure.LoadAverage())
			allMoves[c.name] = append(allMoves[c.name], m)
		}
	}
	fmt.Fprintln(w)
	how := "not pinned"
	if o.share > 0 {
		v := "v1 cpu.cfs_quota_us"
		if b.cgV2 {
			v = "v2 cpu.max"
		}
		how = fmt.Sprintf("each worker capped at %.2g CPU (cgroup %s, period %d ms), weight %d× a default process, as is the harness's NATS server", o.share, v, cpuPeriodMicros/1000, o.weight)
	}
	fmt.Fprintf(w, "Backlog %d events in 6 partitions; %s; %d rounds.\n\n", o.events, how, o.rounds)
	if o.rounds > 0 {
		table(w, o, results)
	}
	if o.moveRounds > 0 {
		fmt.Fprintf(w, "\nPartition moves, 3 workers, %d rounds (median, then each round):\n\n", o.moveRounds)
		movesTable(w, o, allMoves)
	}
	return nil
}
