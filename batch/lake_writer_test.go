package batch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/fakeclock"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/serving"
)

// TestLakeWriter writes events spread over three hours and two partitions
// and reads them back: every event once, with its values, in the hour
// directory of its event time, in files named by offset range.
func TestLakeWriter(t *testing.T) {
	dir := t.TempDir()
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 2)}, nil)
	clk := fakeclock.New(t0.Add(4 * time.Hour))
	br := openBroker(t, p, clk.Now)
	reg := prometheus.NewRegistry()
	b, err := New(p, br, nil, Options{Logger: testLogger(t), Now: clk.Now, Registerer: reg, Poll: 10 * time.Millisecond, Owner: join(t, br)})
	if err != nil {
		t.Fatal(err)
	}
	stop := startBatch(t, b)
	var evs []event.Event
	for i := range 3000 {
		evs = append(evs, testEvent("e", i, t0, 3*time.Second)) // 2.5 hours
	}
	appendEvents(t, br, "metrics", 2, evs)
	// Rolling by rows makes files; the tail waits for max_age.
	waitLake(t, b, clk, "metrics", logEnds(t, br, "metrics"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := readLake(t, b, "metrics")
	if len(got) != len(evs) {
		t.Fatalf("lake holds %d events, want %d", len(got), len(evs))
	}
	for _, e := range evs {
		g, ok := got[e.ID]
		if !ok {
			t.Fatalf("event %s missing", e.ID)
		}
		if g.Time != e.Time || len(g.Values) != len(e.Values) {
			t.Fatalf("event %s: got %+v, want %+v", e.ID, g, e)
		}
		for i := range e.Values {
			if g.Values[i] != e.Values[i] {
				t.Fatalf("event %s field %d: got %+v, want %+v", e.ID, i, g.Values[i], e.Values[i])
			}
		}
	}
	m := b.manifestOf("metrics")
	for _, f := range m.Files {
		if !strings.HasPrefix(f.Path, hourPath(f.Hour)+"/p") || f.MinTime < f.Hour || f.MaxTime >= f.Hour+hourMicros {
			t.Errorf("file %+v is not in its hour", f)
		}
		if _, err := os.Stat(filepath.Join(dir, "lake", "metrics", f.Path)); err != nil {
			t.Error(err)
		}
	}
	if hs := m.Hours(); len(hs) != 3 {
		t.Errorf("hours %v, want 3", hs)
	}
	if n := counterValue(t, b.metrics.lakeRows.WithLabelValues("metrics")); n != float64(len(evs)) {
		t.Errorf("lambdaflow_lake_rows_total = %v, want %d", n, len(evs))
	}
	// The consumer's position is the manifest's.
	for part, end := range logEnds(t, br, "metrics") {
		off, ok, err := br.Committed(context.Background(), lakeConsumer, "metrics", part)
		if err != nil || !ok || off != end {
			t.Errorf("partition %d: committed %d %v %v, want %d", part, off, ok, err, end)
		}
	}
	checkIndependent(t, filepath.Join(dir, "lake", "metrics"), evs)
}

// TestLakeSharedByTwoProcesses: two processes write one lake (a shared
// directory here; object storage in production), each the partitions it
// owns; when one stops, the other takes its partitions over from the
// manifest. Every event is in the lake once, and each partition's commits
// carry the epoch of the writer that made them.
func TestLakeSharedByTwoProcesses(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	dir := t.TempDir()
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 4)}, nil)
	p.Broker.URL = ns.ClientURL()
	p.Lake.Roll = pipelines.LakeRoll{MaxRows: 200, MaxAge: pipelines.Duration(50 * time.Millisecond)}
	p.Lake.Compact.Interval = 0
	br1, br2 := openBroker(t, p, nil), openBroker(t, p, nil)
	open := func(br *broker.Broker, name string) (*Batch, func() error) {
		n, err := br.Join(context.Background(), broker.NodeOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		b, err := New(p, br, nil, Options{Logger: testLogger(t), Poll: 10 * time.Millisecond, Owner: n})
		if err != nil {
			t.Fatal(err)
		}
		return b, startBatch(t, b)
	}
	b1, stop1 := open(br1, "w1")
	b2, _ := open(br2, "w2")
	testenv.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		cl, err := br1.Cluster(context.Background())
		if err != nil {
			return err
		}
		owning := 0
		for _, n := range cl.Nodes {
			if len(n.Owns[lakeConsumer]) > 0 {
				owning++
			}
		}
		if owning != 2 {
			return fmt.Errorf("%d processes write the lake", owning)
		}
		return nil
	})
	var evs []event.Event
	for i := range 2000 {
		evs = append(evs, testEvent("a", i, t0, time.Second))
	}
	appendEvents(t, br1, "metrics", 4, evs)
	waitLake(t, b2, nil, "metrics", logEnds(t, br1, "metrics"))
	epochs := map[int]uint64{}
	for _, ps := range b2.manifestOf("metrics").Partitions {
		epochs[ps.Partition] = ps.Epoch
	}

	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		evs = append(evs, testEvent("b", i, t0, time.Second))
	}
	appendEvents(t, br2, "metrics", 4, evs[2000:])
	waitLake(t, b2, nil, "metrics", logEnds(t, br2, "metrics"))
	got := readLake(t, b2, "metrics")
	if len(got) != len(evs) {
		t.Fatalf("lake holds %d events, want %d", len(got), len(evs))
	}
	for _, e := range evs {
		if _, ok := got[e.ID]; !ok {
			t.Fatalf("event %s missing", e.ID)
		}
	}
	moved := 0
	for _, ps := range b2.manifestOf("metrics").Partitions {
		if ps.Epoch > epochs[ps.Partition] {
			moved++
		}
	}
	if moved == 0 {
		t.Fatalf("no partition moved to the remaining process: epochs %v then %+v", epochs, b2.manifestOf("metrics").Partitions)
	}
	_ = b1
}

// TestViewBatchSharedByProcesses: a view's batch runs in one process at a
// time; a process that only serves shows its result, another running the
// batch role refuses to recompute it (409) until the owner stops, then
// takes the view over from the shared result.
func TestViewBatchSharedByProcesses(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 2)}, []pipelines.View{testView("cpu_by_region", "metrics")})
	p.Broker.URL = ns.ClientURL()
	p.Lake.Roll = pipelines.LakeRoll{MaxRows: 100, MaxAge: pipelines.Duration(50 * time.Millisecond)}
	clk := fakeclock.New(t0.Add(3 * time.Hour))
	type proc struct {
		b     *Batch
		stop  func() error
		store *serving.Store
	}
	open := func(name string, own bool, dataDir string) proc {
		br := openBroker(t, p, clk.Now)
		q := *p
		q.DataDir = dataDir // each process its own views directory
		q.Lake.Dir = filepath.Join(p.DataDir, "lake")
		opts := Options{Logger: testLogger(t), Now: clk.Now, Poll: 10 * time.Millisecond, Serve: true, Registerer: prometheus.NewRegistry()}
		if own {
			n, err := br.Join(context.Background(), broker.NodeOptions{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { n.Close() })
			opts.Owner = n
		}
		store := serving.NewStore(&q)
		b, err := New(&q, br, store, opts)
		if err != nil {
			t.Fatal(err)
		}
		return proc{b: b, stop: startBatch(t, b), store: store}
	}
	a := open("a", true, t.TempDir())
	var evs []event.Event
	for i := range 600 {
		evs = append(evs, testEvent("e", i, t0, 2*time.Second))
	}
	appendEvents(t, a.b.log.(*broker.Broker), "metrics", 2, evs)
	waitLake(t, a.b, clk, "metrics", logEnds(t, a.b.log.(*broker.Broker), "metrics"))
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !a.b.views["cpu_by_region"].owned.Load() {
			return errors.New("a does not own the view's batch yet")
		}
		return nil
	})
	b := open("b", true, t.TempDir())
	c := open("c", false, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := a.b.recomputeWait(ctx, "cpu_by_region", time.Time{}, time.Time{}, nil)
	if err != nil || st.State != api.JobSucceeded {
		t.Fatalf("run in the owner: %+v %v", st, err)
	}
	want, _, _, _ := a.store.Query("cpu_by_region", serving.Filter{})
	if len(want) == 0 {
		t.Fatal("no rows")
	}
	ha, _ := a.store.Horizon("cpu_by_region")
	// The serving process shows the owner's result.
	for _, pr := range []proc{b, c} {
		testenv.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			got, _, _, _ := pr.store.Query("cpu_by_region", serving.Filter{})
			if h, ok := pr.store.Horizon("cpu_by_region"); !ok || h != ha || len(got) != len(want) {
				return fmt.Errorf("horizon %d %v, %d rows; want %d and %d rows", h, ok, len(got), ha, len(want))
			}
			return nil
		})
	}
	if _, err := b.b.Recompute("cpu_by_region", time.Time{}, time.Time{}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("recompute in a process that does not own the view: %v", err)
	}
	// The owner stops; b takes the view over and goes on from the shared
	// result (its own view file is empty).
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	st, err = b.b.recomputeWait(ctx, "cpu_by_region", time.Time{}, time.Time{}, nil)
	if err != nil || st.State != api.JobSucceeded {
		t.Fatalf("run after the move: %+v %v", st, err)
	}
	if hb, _ := b.store.Horizon("cpu_by_region"); hb < ha {
		t.Fatalf("horizon moved back from %d to %d", ha, hb)
	}
}

// TestLakeWriterLag checks the lake writer's two positions: what it read
// shows at once, what is durable only when its file rolls. A healthy
// writer waiting for its roll has no read lag; a stopped one falls behind
// in both.
func TestLakeWriterLag(t *testing.T) {
	dir := t.TempDir()
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 1)}, nil)
	// Ahead of the log's append times, so ages are positive.
	clk := fakeclock.New(time.Now().Add(time.Hour))
	br := openBroker(t, p, clk.Now)
	b, err := New(p, br, nil, Options{Logger: testLogger(t), Now: clk.Now, Poll: 10 * time.Millisecond, Owner: join(t, br)})
	if err != nil {
		t.Fatal(err)
	}
	stop := startBatch(t, b)
	lake := func() api.Lag {
		t.Helper()
		lag, err := br.Lag(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lag {
			if l.Consumer == lakeConsumer {
				return l
			}
		}
		t.Fatalf("no lake consumer in %+v", lag)
		return api.Lag{}
	}
	var evs []event.Event
	for i := range 150 {
		evs = append(evs, testEvent("e", i, t0, time.Second))
	}
	appendEvents(t, br, "metrics", 1, evs[:100])

	// Read at once (reports are written every second), durable not yet:
	// the file waits for max_age.
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if l := lake(); l.ReadOffset != 100 {
			return fmt.Errorf("lake read offset %d, want 100", l.ReadOffset)
		}
		return nil
	})
	if l := lake(); l.Offset != 0 || l.Lag != 100 || l.LagSeconds <= 0 || l.ReadLag != 0 || l.ReadLagSeconds != 0 {
		t.Fatalf("a writer waiting for its roll: %+v, want committed 0 (lag 100, aged), read 100 (no read lag)", l)
	}

	// The roll makes it durable.
	clk.Add(p.Lake.Roll.MaxAge.D())
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if l := lake(); l.Offset != 100 {
			return fmt.Errorf("lake committed offset %d, want 100", l.Offset)
		}
		return nil
	})
	if l := lake(); l.Lag != 0 || l.LagSeconds != 0 || l.ReadOffset != 100 || l.ReadLag != 0 {
		t.Fatalf("after the roll: %+v, want everything at 100", l)
	}

	// A writer that stopped reading falls behind in both.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, br, "metrics", 1, evs[100:])
	if l := lake(); l.Offset != 100 || l.Lag != 50 || l.ReadOffset != 100 || l.ReadLag != 50 || l.ReadLagSeconds <= 0 || l.ReadLagSeconds != l.LagSeconds {
		t.Fatalf("a stopped writer: %+v, want 50 events behind, read and committed, aged", l)
	}
}
