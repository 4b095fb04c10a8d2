package batch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Environment of the re-executed test binary that runs the lake writer.
const (
	childEnv     = "LF_TEST_LAKE_CHILD_DIR" // data dir
	childURLEnv  = "LF_TEST_LAKE_CHILD_URL" // broker URL
	childLakeEnv = "LF_TEST_LAKE_CHILD_S3"  // s3:// URL of the lake, if on the S3 server
)

// killPipeline writes small flushes (300 rows) and compacts every 50 ms,
// so that kills land in the middle of both.
func killPipeline(dir string) *pipelines.Pipeline {
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 2)}, nil)
	p.Lake.Roll = pipelines.LakeRoll{MaxRows: 300, MaxAge: pipelines.Duration(time.Second)}
	p.Lake.Compact = pipelines.Compact{MinFiles: 2, Interval: pipelines.Duration(50 * time.Millisecond)}
	return p
}

// lakeChild runs the lake writer against the broker at childURLEnv until
// killed, or until SIGTERM (soft stop).
func lakeChild() int {
	p := killPipeline(os.Getenv(childEnv))
	p.Broker.URL = os.Getenv(childURLEnv)
	if u := os.Getenv(childLakeEnv); u != "" {
		lakeAt{s3: &s3test.Server{Endpoint: os.Getenv("LF_TEST_S3_ENDPOINT"), Region: os.Getenv("LF_TEST_S3_REGION"),
			AccessKey: os.Getenv("LF_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("LF_TEST_S3_SECRET_KEY")}, url: u}.apply(p)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	// If nobody stops us (the parent kills its child when it ends, also
	// on a failure; this bounds a child whose parent died first).
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	br, err := broker.Open(ctx, p, broker.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer br.Close()
	// One name for every run of the child: a restarted one takes its
	// partitions back at once.
	node, err := br.Join(ctx, broker.NodeOptions{Name: "lake-child"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer node.Close()
	b, err := New(p, br, nil, Options{Poll: 20 * time.Millisecond, Owner: node, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	// From here on SIGTERM is a soft stop of a running lake writer: the
	// parent waits for this line before it may send one (a stop while the
	// broker opens or the node joins is not what the test is about).
	fmt.Println("ready")
	if err := b.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// TestLakeKill9 appends a backfill (events of some forty hours, in a
// shuffled order, so every flush writes many hours) while a lake writer in
// another process, compacting as it goes, is killed with SIGKILL again and
// again, mid-flush or mid-merge, and restarted. In the end the lake holds
// every appended event exactly once, as the lake reader and an independent
// reader (pyarrow, DuckDB) see it, and no file no manifest lists is left.
func TestLakeKill9(t *testing.T) { eachLake(t, testLakeKill9) }

func testLakeKill9(t *testing.T, at lakeAt) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	p := killPipeline(dir)
	p.Broker.Listen = testenv.FreeAddr(t)
	at.apply(p)
	br := openBroker(t, p, nil)
	st := openStore(t, p)

	// The running child, killed when the test ends whatever happens: a
	// failure (t.Fatal) must not leave a writer running while t.TempDir's
	// cleanup deletes its lake (it then reports the files it lists as
	// gone, and the removal fails on what it writes meanwhile).
	var running *exec.Cmd
	t.Cleanup(func() {
		if running != nil {
			running.Process.Kill()
			running.Wait()
		}
	})
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, childURLEnv+"=nats://"+p.Broker.Listen, childLakeEnv+"="+at.url)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		running = cmd
		if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
			t.Fatalf("lake writer process: %q %v", line, err)
		}
		return cmd
	}
	manifest := func() *manifest {
		m, err := readManifest(context.Background(), st, "metrics")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	version := func() int64 { return manifest().Version }

	const n = 12000
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = testEvent("k", i, t0, 12*time.Second) // spans 40 hours
	}
	rand.New(rand.NewPCG(9, 9)).Shuffle(n, func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	var appended atomic.Int64
	appendDone := make(chan struct{})
	go func() {
		defer close(appendDone)
		for off := 0; off < n; off += 40 {
			appendEvents(t, br, "metrics", 2, evs[off:min(off+40, n)])
			appended.Store(int64(off + 40))
		}
	}()

	kills := 0
	for round := range 5 {
		cmd := start()
		v := version()
		// Let it commit a few files, then kill it wherever it is.
		testenv.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
			if version() < v+int64(2+round) {
				return fmt.Errorf("manifest still at version %d", version())
			}
			return nil
		})
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		running = nil
		kills++
		t.Logf("kill %d at manifest version %d, %d events appended", kills, version(), appended.Load())
	}
	<-appendDone
	t.Logf("%d kills; %d events appended", kills, appended.Load())

	// The last writer takes the lake over (recovery) and catches up; the
	// lake may be at the log's end already, so what shows the take-over
	// is a clean lake: nothing in sight that no manifest lists, no
	// replaced file in sight, no unfinished write.
	//
	// How long that takes is the writer's to say, not the test's: under a
	// loaded machine a node whose heartbeats stall for fenceAfter (7 s)
	// finds its lease invalid, drops what it read of the partition and
	// runs it again after the broker's backoff, and compaction then
	// merges every hour again. A clean lake is one the writer reached;
	// while it is still making progress (its manifest version moves) the
	// test waits, and it fails when the writer stops moving without
	// getting there. The poll's error names everything in the way.
	cmd := start()
	want := logEnds(t, br, "metrics")
	const quiet = 45 * time.Second // no commit for this long: stuck
	lastVersion, movedAt := int64(-1), time.Now()
	testenv.CheckFor(t, 4*time.Minute, 10*time.Millisecond, func() error {
		m := manifest()
		if m.Version != lastVersion {
			lastVersion, movedAt = m.Version, time.Now()
		}
		var errs []error
		for part, end := range want {
			if got := m.partition(part).Next; got != end {
				errs = append(errs, fmt.Errorf("partition %d: lake at %d, log at %d", part, got, end))
			}
		}
		errs = append(errs, lakeLeftovers(st, m)...)
		if err := errors.Join(errs...); err != nil && time.Since(movedAt) > quiet {
			t.Fatalf("the lake writer committed nothing for %s (manifest version %d) short of a clean lake: %v", quiet, m.Version, err)
		} else if err != nil {
			return fmt.Errorf("manifest version %d: %w", m.Version, err)
		}
		return nil
	})
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	running = nil
	if err != nil {
		t.Fatalf("child: %v", err)
	}

	// The lake through its manifest, after the soft stop.
	b, err := New(p, br, nil, Options{Logger: testLogger(t), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	m := manifest()
	for _, err := range lakeLeftovers(st, m) {
		t.Error(err)
	}
	t.Logf("manifest version %d: %d live files, %d replaced, %d compactions", m.Version, len(m.Files()), len(m.Replaced), compacted(m))
	got := readLake(t, b, "metrics")
	if len(got) != n {
		t.Fatalf("lake holds %d events, want %d", len(got), n)
	}
	for _, e := range evs {
		if _, ok := got[e.ID]; !ok {
			t.Fatalf("event %s missing", e.ID)
		}
	}
	// The lake as a directory of Parquet files.
	checkIndependent(t, at.topic(p, "metrics"), evs)
}

// lakeLeftovers lists what the lake in st holds beside what manifest m
// says: data files no manifest lists, files compaction replaced still in
// sight of directory readers, unfinished writes.
func lakeLeftovers(st lakestore.Store, m *manifest) []error {
	listed, replaced := map[string]bool{}, map[string]bool{}
	for _, f := range m.Files() {
		listed["metrics/"+f.Path] = true
	}
	for _, r := range m.Replaced {
		listed["metrics/"+replacedName(r.Path)] = true
		replaced["metrics/"+r.Path] = true
	}
	es, err := st.List(context.Background(), "metrics/dt=", "")
	if err != nil {
		return []error{err}
	}
	var out []error
	for _, e := range es {
		switch {
		case replaced[e.Key]:
			out = append(out, fmt.Errorf("%s: replaced by compaction, but still in sight", e.Key))
		case !listed[e.Key]:
			out = append(out, fmt.Errorf("%s: no manifest lists it", e.Key))
		}
	}
	ps, err := st.Unfinished(context.Background(), "metrics/")
	if err != nil {
		return append(out, err)
	}
	for _, p := range ps {
		out = append(out, fmt.Errorf("%s: unfinished write left", p.Key))
	}
	return out
}

func compacted(m *manifest) int {
	n := 0
	for _, f := range m.Files() {
		if f.Compacted {
			n++
		}
	}
	return n
}
