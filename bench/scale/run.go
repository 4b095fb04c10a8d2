package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lambdaflow/lambdaflow/bench/measure"
)

// partitions is the topic's partition count in bench/scale/scale.yaml:
// 6 shares evenly over 1, 2 and 3 workers.
const partitions = 6

// consumer is one consumer of the backlog and the role that runs it.
type consumer struct {
	name     string // -consumers name
	role     string // lambdaflow run --role
	consumer string // its name in /v1/lag
	// readDone: the catch-up ends when the consumer has read every event
	// rather than committed it. The speed layer commits at its checkpoints
	// only, so its committed lag falls in steps of the checkpoint interval;
	// what it has read is in its views. The lake writer and a sink commit
	// what is durable in files and tables, which is what counts for them.
	readDone bool
}

var allConsumers = []consumer{
	{"speed", "speed", "speed.by_region", true},
	{"lake", "batch", "lake", false},
	{"sink", "sinks", "sink.warehouse", false},
}

func parseConsumers(s string) ([]consumer, error) {
	var out []consumer
next:
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		for _, c := range allConsumers {
			if c.name == f {
				out = append(out, c)
				continue next
			}
		}
		return nil, fmt.Errorf("%q: want speed, lake or sink", f)
	}
	return out, nil
}

func hasConsumer(cs []consumer, name string) bool {
	for _, c := range cs {
		if c.name == name {
			return true
		}
	}
	return false
}

// bench holds what every measurement shares.
type bench struct {
	o      options
	log    io.Writer
	cgRoot string // "" when not pinning
	cgV2   bool
	seq    int // measurements so far, for unique names
	// natsBin is the nats-server binary, built once per run.
	natsBin string
}

// template is the NATS store holding the backlog.
func (b *bench) template() string { return filepath.Join(b.o.work, "backlog") }

// env is the environment of one lambdaflow process of a measurement.
func env(natsURL, dir, data, pgDSN string) []string {
	return []string{"LF_NATS=" + natsURL, "LF_LAKE=" + filepath.Join(dir, "lake"), "LF_DATA=" + data, "LF_PG_DSN=" + pgDSN}
}

// fill writes the backlog once, through an ingest process, into the
// template store, and checks the log holds every event.
func (b *bench) fill(ctx context.Context) (time.Duration, error) {
	ns, err := startNATS(ctx, b.natsBin, b.template())
	if err != nil {
		return 0, err
	}
	defer ns.stop()
	dir := filepath.Join(b.o.work, "fill")
	s, err := measure.StartServer(ctx, measure.ServerConfig{Bin: b.o.bin, Pipeline: b.o.pipeline, Dir: dir, Roles: "ingest",
		Env: env(ns.url, dir, filepath.Join(dir, "data"), b.o.pgDSN)})
	if err != nil {
		return 0, err
	}
	defer s.Stop()
	start := time.Now()
	if err := measure.Publish(ctx, s.URL+"/v1/topics/metrics/events", events(b.o.events, time.Now()), b.o.clients, b.o.body); err != nil {
		return 0, err
	}
	took := time.Since(start)
	var stats struct {
		Topics []struct {
			Name   string `json:"name"`
			Events int64  `json:"events"`
		} `json:"topics"`
	}
	if err := s.GetJSON(ctx, "/v1/stats", &stats); err != nil {
		return 0, err
	}
	for _, t := range stats.Topics {
		if t.Name == "metrics" && t.Events != int64(b.o.events) {
			return 0, fmt.Errorf("the log holds %d events of topic metrics, want %d", t.Events, b.o.events)
		}
	}
	return took, s.Stop()
}

// events are the backlog as NDJSON lines: event i has id e<i>, an event time
// spread evenly over the 40 minutes that ended 45 minutes before now, one of
// 1,000 hosts and 8 regions.
func events(n int, now time.Time) []string {
	base := now.Add(-45 * time.Minute)
	step := 40 * time.Minute / time.Duration(max(n, 1))
	regions := []string{"eu", "us", "ap", "sa", "af", "me", "oc", "an"}
	lines := make([]string, n)
	for i := range n {
		ts := base.Add(time.Duration(i) * step).UTC().Format(time.RFC3339Nano)
		lines[i] = fmt.Sprintf(`{"id":"e%d","ts":%q,"host":"h%d","region":%q,"cpu":%.3f,"bytes":%d}`,
			i, ts, i%1000, regions[i%len(regions)], float64(i%1000)/1000, i%10007)
	}
	return lines
}

// stage is one measurement's own copy of the backlog: a NATS server on a
// copy of the template store, the sink's schema, and the observer, a
// `serve` process (not pinned, running none of the measured consumers)
// that answers the polls of GET /v1/lag and /v1/cluster.
type stage struct {
	dir     string
	ns      *natsServer
	pgDSN   string
	obs     *measure.Server
	closers []func()
}

func (b *bench) newStage(ctx context.Context, c consumer, tag string) (st *stage, err error) {
	b.seq++
	st = &stage{dir: filepath.Join(b.o.work, tag), pgDSN: b.o.pgDSN}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	if !b.o.keep {
		st.closers = append(st.closers, func() { os.RemoveAll(st.dir) })
	}
	store := filepath.Join(st.dir, "nats")
	if err := copyDir(ctx, b.template(), store); err != nil {
		return st, err
	}
	if st.ns, err = startNATS(ctx, b.natsBin, store); err != nil {
		return st, err
	}
	st.closers = append(st.closers, st.ns.stop)
	if c.name == "sink" {
		schema := fmt.Sprintf("sf_scale_%d_%d", os.Getpid(), b.seq)
		if st.pgDSN, err = b.schema(ctx, schema); err != nil {
			return st, err
		}
		if !b.o.keep {
			st.closers = append(st.closers, func() { b.dropSchema(schema) })
		}
	}
	if st.obs, err = measure.StartServer(ctx, measure.ServerConfig{Bin: b.o.bin, Pipeline: b.o.pipeline, Dir: filepath.Join(st.dir, "observer"),
		Roles: "serve", Env: st.env("observer")}); err != nil {
		return st, fmt.Errorf("observer: %w", err)
	}
	st.closers = append(st.closers, func() { st.obs.Stop() })
	return st, nil
}

// env is the environment of the stage's process name.
func (st *stage) env(name string) []string {
	return env(st.ns.url, st.dir, filepath.Join(st.dir, name, "data"), st.pgDSN)
}

// close undoes newStage, last step first.
func (st *stage) close() {
	for i := len(st.closers) - 1; i >= 0; i-- {
		st.closers[i]()
	}
}

// measure starts n workers of consumer c on a copy of the backlog, times
// their catch-up and checks the result.
func (b *bench) measure(ctx context.Context, c consumer, n, round int) (res result, err error) {
	st, err := b.newStage(ctx, c, fmt.Sprintf("r%d-%s-%d", round+1, c.name, n))
	if err != nil {
		return res, err
	}
	defer st.close()
	dir, obs, penv, pgDSN := st.dir, st.obs, st.env, st.pgDSN

	obsCPU0, err := obs.CPUSeconds()
	if err != nil {
		return res, err
	}
	natsCPU0, err := st.ns.cpuSeconds()
	if err != nil {
		return res, err
	}
	workers, groups, start, err := b.startWorkers(ctx, c, n, 0, dir, penv)
	defer func() {
		for _, g := range groups {
			if rerr := g.remove(); err == nil && rerr != nil {
				err = rerr
			}
		}
	}()
	defer stopAll(workers)
	if err != nil {
		return res, err
	}
	samples, took, err := waitCaughtUp(ctx, obs, c, start, int64(b.o.events), b.o.timeout)
	if err != nil {
		return res, fmt.Errorf("%w (logs under %s)", err, dir)
	}
	res = result{events: b.o.events, took: took, steady: steadyRate(samples, int64(b.o.events)), load: measure.LoadAverage()}
	for _, w := range workers {
		cpu, err := w.CPUSeconds()
		if err != nil {
			return res, err
		}
		res.cpu += cpu
	}
	obsCPU, err := obs.CPUSeconds()
	if err != nil {
		return res, err
	}
	natsCPU, err := st.ns.cpuSeconds()
	if err != nil {
		return res, err
	}
	res.infraCPU = obsCPU - obsCPU0 + natsCPU - natsCPU0
	var periods, throttled int64
	for _, g := range groups {
		p, t, err := g.throttled()
		if err != nil {
			return res, err
		}
		periods += p
		throttled += t
	}
	if periods > 0 {
		res.throttled = float64(throttled) / float64(periods)
	}
	// A soft stop: the last checkpoint, flush and commit, as a rolling
	// restart would; then the check reads what the consumer left.
	if err := stopAll(workers); err != nil {
		return res, fmt.Errorf("stopping the workers: %w", err)
	}
	if err := b.check(ctx, c, dir, penv("checker"), pgDSN); err != nil {
		return res, fmt.Errorf("%s, %d workers: %w", c.name, n, err)
	}
	return res, nil
}

// startWorkers starts n workers of c at once, numbered from first, each in
// a cgroup of its own when pinning, and returns when all are ready, with
// the time they were started.
func (b *bench) startWorkers(ctx context.Context, c consumer, n, first int, dir string, penv func(string) []string) ([]*measure.Server, []*cgroup, time.Time, error) {
	var groups []*cgroup
	wraps := make([][]string, n)
	for i := range n {
		i := first + i
		if b.cgRoot == "" {
			continue
		}
		g, err := newCgroup(b.cgRoot, b.cgV2, fmt.Sprintf("sf-scale-%d-%d-w%d", os.Getpid(), b.seq, i), b.o.share, b.o.weight)
		if err != nil {
			return nil, groups, time.Time{}, err
		}
		groups = append(groups, g)
		wraps[i-first] = g.wrap()
	}
	workers := make([]*measure.Server, n)
	errs := make([]error, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("w%d", first+i)
			workers[i], errs[i] = measure.StartServer(ctx, measure.ServerConfig{Bin: b.o.bin, Pipeline: b.o.pipeline,
				Dir: filepath.Join(dir, name), Roles: c.role, Env: penv(name), Wrap: wraps[i]})
		})
	}
	wg.Wait()
	var started []*measure.Server
	for _, w := range workers {
		if w != nil {
			started = append(started, w)
		}
	}
	return started, groups, start, errors.Join(errs...)
}

// stopAll stops the servers softly, together.
func stopAll(ss []*measure.Server) error {
	errs := make([]error, len(ss))
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() { errs[i] = s.Stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// lagRow is the part of a GET /v1/lag row the harness reads.
type lagRow struct {
	Consumer  string `json:"consumer"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Lag       int64  `json:"lag"`
	ReadLag   int64  `json:"read_lag"`
	EndOffset int64  `json:"end_offset"`
}

// waitCaughtUp polls the lag every 200 ms until the consumer has committed
// (or read, c.readDone) the end of every partition of metrics, and returns
// the samples and the time from start.
func waitCaughtUp(ctx context.Context, obs *measure.Server, c consumer, start time.Time, backlog int64, timeout time.Duration) ([]sample, time.Duration, error) {
	name := c.consumer
	deadline := start.Add(timeout)
	var samples []sample
	for {
		var lag struct {
			Consumers []lagRow `json:"consumers"`
		}
		if err := obs.GetJSON(ctx, "/v1/lag", &lag); err != nil {
			return samples, 0, err
		}
		at := time.Since(start)
		var rows int
		var committed, read, end int64
		for _, l := range lag.Consumers {
			if l.Consumer == name && l.Topic == "metrics" {
				rows++
				committed += l.Lag
				read += l.ReadLag
				end += l.EndOffset
			}
		}
		if rows < partitions {
			// Before a worker registered on a partition, all of it is unread.
			read += backlog - end
		}
		samples = append(samples, sample{at: at, readLag: read})
		if rows == partitions && (committed == 0 || c.readDone && read == 0) {
			return samples, at, nil
		}
		if time.Now().After(deadline) {
			return samples, 0, fmt.Errorf("%s not caught up after %s: %d partitions reported, committed lag %d, read lag %d", name, timeout, rows, committed, read)
		}
		select {
		case <-ctx.Done():
			return samples, 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// copyDir copies a directory tree (the NATS store) with cp -a.
func copyDir(ctx context.Context, from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", from, to).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %w: %s", from, to, err, out)
	}
	return nil
}

// schema creates a PostgreSQL schema for one measurement's sink and returns
// the DSN that writes there.
func (b *bench) schema(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, b.o.pgDSN)
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", fmt.Errorf("postgres: create schema %s: %w", name, err)
	}
	u, err := url.Parse(b.o.pgDSN)
	if err != nil {
		return "", fmt.Errorf("-pg: %w", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (b *bench) dropSchema(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.o.pgDSN)
	if err != nil {
		measure.Logf(b.log, "postgres: drop schema %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
		measure.Logf(b.log, "postgres: drop schema %s: %v", name, err)
	}
}
