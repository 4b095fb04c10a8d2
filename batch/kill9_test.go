package batch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Environment of the re-executed test binary that runs the lake writer.
const (
	childEnv    = "LF_TEST_LAKE_CHILD_DIR" // data dir
	childURLEnv = "LF_TEST_LAKE_CHILD_URL" // broker URL
)

func killPipeline(dir string) *pipelines.Pipeline {
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 2)}, nil)
	p.Lake.Roll = pipelines.LakeRoll{MaxRows: 300, MaxAge: pipelines.Duration(time.Second)}
	p.Lake.Compact.Interval = 0
	return p
}

// lakeChild runs the lake writer against the broker at childURLEnv until
// killed, or until SIGTERM (soft stop).
func lakeChild() int {
	p := killPipeline(os.Getenv(childEnv))
	p.Broker.URL = os.Getenv(childURLEnv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // if nobody stops us
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
	b, err := New(p, br, nil, Options{Poll: 20 * time.Millisecond, Owner: node})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	if err := b.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// TestLakeKill9 appends events while a lake writer in another process is
// killed with SIGKILL again and again, mid-write, and restarted. In the
// end the lake holds every appended event exactly once, as the lake
// reader and an independent reader (pyarrow, DuckDB) see it.
func TestLakeKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	p := killPipeline(dir)
	p.Broker.Listen = testenv.FreeAddr(t)
	br := openBroker(t, p, nil)
	_ = prometheus.NewRegistry
	lakeDir := filepath.Join(dir, "lake", "metrics")

	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, childURLEnv+"=nats://"+p.Broker.Listen)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	version := func() int64 {
		m, err := readManifest(lakeDir, "metrics")
		if err != nil {
			t.Fatal(err)
		}
		return m.Version
	}

	const n = 12000
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = testEvent("k", i, t0, 700*time.Millisecond) // spans 2h20m
	}
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
		kills++
		t.Logf("kill %d at manifest version %d, %d events appended", kills, version(), appended.Load())
	}
	<-appendDone
	t.Logf("%d kills; %d events appended", kills, appended.Load())

	cmd := start()
	want := logEnds(t, br, "metrics")
	testenv.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		m, err := readManifest(lakeDir, "metrics")
		if err != nil {
			return err
		}
		for part, end := range want {
			if got := m.partition(part).Next; got != end {
				return fmt.Errorf("partition %d: lake at %d, log at %d", part, got, end)
			}
		}
		return nil
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}

	// The lake through its manifest.
	b, err := New(p, br, nil, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
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
	checkIndependent(t, lakeDir, evs)
}
