package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// fakeLease is a partition lease (the broker's, in production) that
// records the positions committed through it.
type fakeLease struct {
	fakeFence
	commits []int64
}

func (l *fakeLease) Committed(string) (int64, string, bool) {
	if len(l.commits) == 0 {
		return 0, "", false
	}
	return l.commits[len(l.commits)-1], "", true
}

func (l *fakeLease) Commit(_ context.Context, _ string, offset, _ int64, _ string) error {
	if l.lost {
		return broker.ErrFenced
	}
	l.commits = append(l.commits, offset)
	return nil
}

// progressOnly is a lakeLog for writers fed by hand: only read positions.
type progressOnly struct{ lakeLog }

func (progressOnly) Progress(string, string, int, int64) {}

// TestFlushOfOwnedPartitions: a topic writer's flush commits only the
// partitions whose lease still holds, each under its epoch; the rows of a
// partition whose lease was lost are dropped, not committed, and the
// partition's position is not committed through the lost lease. A writer
// whose lease is still valid but whose partition a higher epoch took over
// cannot commit it.
func TestFlushOfOwnedPartitions(t *testing.T) {
	ctx := context.Background()
	_, st, open := ownedWriterSetup(t)
	tw := open()
	l0, l1 := &fakeLease{fakeFence: fakeFence{epoch: 3}}, &fakeLease{fakeFence: fakeFence{epoch: 1}}
	for part, l := range []*fakeLease{l0, l1} {
		if err := tw.takeOver(ctx, part, l); err != nil {
			t.Fatal(err)
		}
		tw.parts[part] = &partWriter{lease: l, committed: -1}
	}
	feed := func(tw *topicWriter, part int, from int64, n int) {
		evs := make([]event.Event, n)
		for i := range evs {
			evs[i] = testEvent("p", int(from)+i, t0, time.Second)
		}
		if err := tw.add(part, tw.gen, &broker.Entry{Offset: from, Events: evs, Ingest: 1}); err != nil {
			t.Fatal(err)
		}
	}
	feed(tw, 0, 0, 10)
	feed(tw, 1, 0, 7)
	l1.lost = true
	if err := tw.flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	man := tw.tl.ms.snapshot()
	if ps := man.partition(0); ps.Next != 10 || ps.Rows != 10 || ps.Epoch != 3 {
		t.Errorf("partition 0: %+v, want next 10, rows 10, epoch 3", ps)
	}
	if ps := man.partition(1); ps.Next != 0 || ps.Rows != 0 || ps.Epoch != 1 {
		t.Errorf("partition 1 (lease lost): %+v, want next 0, rows 0, epoch 1", ps)
	}
	var rows int64
	for _, f := range man.Files() {
		for _, r := range f.Ranges {
			if r.Partition != 0 {
				t.Errorf("file %s holds a range of partition %d", f.Path, r.Partition)
			}
		}
		rows += f.Rows
	}
	if rows != 10 {
		t.Errorf("the lake holds %d rows, want 10", rows)
	}
	if len(l0.commits) != 1 || l0.commits[0] != 10 || len(l1.commits) != 0 {
		t.Errorf("log commits: partition 0 %v, want [10]; partition 1 %v, want none", l0.commits, l1.commits)
	}

	// Partition 0 moves to another process (epoch 4), which writes and
	// commits offsets [10, 15), while this one still believes its lease
	// holds: its flush of the same offsets (the same file name) is
	// refused, and leaves the new owner's file alone.
	other := open()
	l4 := &fakeLease{fakeFence: fakeFence{epoch: 4}}
	if err := other.takeOver(ctx, 0, l4); err != nil {
		t.Fatal(err)
	}
	other.parts[0] = &partWriter{lease: l4, first: 10, end: 10, committed: -1}
	feed(other, 0, 10, 5)
	if err := other.flush(ctx); err != nil {
		t.Fatal(err)
	}
	feed(tw, 0, 10, 5)
	if err := tw.flush(ctx); !errors.Is(err, errLost) {
		t.Fatalf("flush of a partition taken over: %v, want errLost", err)
	}
	man = tw.tl.ms.snapshot()
	if ps := man.partition(0); ps.Next != 15 || ps.Epoch != 4 {
		t.Errorf("partition 0 after the refused flush: %+v, want next 15, epoch 4", ps)
	}
	es, err := st.List(ctx, "metrics/", "")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, e := range es {
		stored[e.Key] = true
	}
	for _, f := range man.Files() {
		if !stored[tw.tl.key(f.Path)] {
			t.Errorf("file %s is in the manifest but not in storage", f.Path)
		}
	}
}

// TestLakeSharedCompaction: two processes write one lake, each the
// partitions it owns, and compact it: each the periods whose shard
// partition it owns, merging files of every partition (flushed by either
// process) into one file per period. Every event is in the lake once
// throughout, and both processes compact.
func TestLakeSharedCompaction(t *testing.T) {
	natsURL := startNATS(t)
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 4)}, nil)
	p.Broker.URL = natsURL
	p.Lake.Roll = pipelines.LakeRoll{MaxRows: 150, MaxAge: pipelines.Duration(50 * time.Millisecond)}
	p.Lake.Compact = pipelines.Compact{MinFiles: 2, Interval: pipelines.Duration(20 * time.Millisecond)}
	var procs []*Batch
	for _, name := range []string{"c1", "c2"} {
		br := openBroker(t, p, nil)
		n, err := br.Join(context.Background(), broker.NodeOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		b, err := New(p, br, nil, Options{Logger: testLogger(t), Poll: 10 * time.Millisecond, Owner: n, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		startBatch(t, b)
		procs = append(procs, b)
	}
	br := openBroker(t, p, nil)
	testenv.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		cl, err := br.Cluster(context.Background())
		if err != nil {
			return err
		}
		owning := 0
		for _, n := range cl.Nodes {
			if len(n.Owns[lakeConsumer]) == 2 {
				owning++
			}
		}
		if owning != 2 {
			return fmt.Errorf("%d processes write two partitions each", owning)
		}
		return nil
	})
	// Six hours: periods of every shard.
	var evs []event.Event
	for i := range 3000 {
		evs = append(evs, testEvent("c", i, t0, 7200*time.Millisecond))
	}
	appendEvents(t, br, "metrics", 4, evs)
	waitLake(t, procs[0], nil, "metrics", logEnds(t, br, "metrics"))
	testenv.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		m := procs[0].manifestOf("metrics")
		per := map[int64]int{}
		for _, f := range m.Files() {
			per[f.Start]++
		}
		for start, n := range per {
			if n != 1 {
				return fmt.Errorf("period %s has %d files", time.UnixMicro(start).UTC(), n)
			}
		}
		if len(per) != 6 {
			return fmt.Errorf("%d periods, want 6", len(per))
		}
		return nil
	})
	for _, b := range procs {
		got := readLake(t, b, "metrics")
		if len(got) != len(evs) {
			t.Fatalf("lake holds %d events, want %d", len(got), len(evs))
		}
		if n := counterValue(t, b.metrics.compactions.WithLabelValues("metrics")); n == 0 {
			t.Errorf("a process compacted nothing")
		}
	}
	multi := 0
	for _, f := range procs[1].manifestOf("metrics").Files() {
		parts := map[int]bool{}
		for _, r := range f.Ranges {
			parts[r.Partition] = true
		}
		if len(parts) > 1 {
			multi++
		}
	}
	if multi == 0 {
		t.Errorf("no compacted file holds more than one partition")
	}
}

// TestFlushLeavesOutMovedPartition: when a flush of a topic's shared
// buffer is refused because one of its partitions was taken over (a higher
// epoch committed it) while this writer still believed it owned it, that
// partition's reader is stopped and its rows are never flushed again,
// while the other partitions are read again from the manifest and the
// next flush commits them: one moved partition does not hold the topic's
// other partitions back.
func TestFlushLeavesOutMovedPartition(t *testing.T) {
	ctx := context.Background()
	_, _, open := ownedWriterSetup(t)
	tw := open()
	stopped := map[int]bool{}
	for part := range 2 {
		l := &fakeLease{fakeFence: fakeFence{epoch: 1}}
		if err := tw.takeOver(ctx, part, l); err != nil {
			t.Fatal(err)
		}
		tw.parts[part] = &partWriter{lease: l, committed: -1, stop: func() { stopped[part] = true }}
	}
	feed := func(part int, n int) error {
		evs := make([]event.Event, n)
		for i := range evs {
			evs[i] = testEvent("p", i, t0, time.Second)
		}
		return tw.add(part, tw.gen, &broker.Entry{Offset: 0, Events: evs, Ingest: 1})
	}
	// Partition 1 moves to another process (epoch 2), which has not
	// written anything yet; this writer does not know.
	other := open()
	if err := other.takeOver(ctx, 1, &fakeLease{fakeFence: fakeFence{epoch: 2}}); err != nil {
		t.Fatal(err)
	}
	for part, n := range []int{10, 7} {
		if err := feed(part, n); err != nil {
			t.Fatal(err)
		}
	}
	err := tw.flush(ctx)
	if !errors.Is(err, errLost) || !slices.Equal(lostPartitions(err), []int{1}) {
		t.Fatalf("flush with a moved partition: %v (partitions %v), want errLost for partition 1", err, lostPartitions(err))
	}
	if !stopped[1] || stopped[0] || !tw.parts[1].gone || tw.parts[0].gone {
		t.Fatalf("readers stopped %v, gone: 0 %v, 1 %v; want partition 1's only", stopped, tw.parts[0].gone, tw.parts[1].gone)
	}
	if err := feed(1, 7); !errors.Is(err, errLost) {
		t.Fatalf("reading a moved partition on: %v, want errLost", err)
	}
	// Partition 0's reader reads again from the manifest (offset 0).
	if pw := tw.parts[0]; pw.first != 0 || pw.end != 0 {
		t.Fatalf("partition 0 after the refused flush: [%d, %d), want [0, 0)", pw.first, pw.end)
	}
	if err := feed(0, 10); err != nil {
		t.Fatal(err)
	}
	if err := tw.flush(ctx); err != nil {
		t.Fatalf("flush of the partitions still owned: %v", err)
	}
	man := tw.tl.ms.snapshot()
	if ps := man.partition(0); ps.Next != 10 || ps.Rows != 10 || ps.Epoch != 1 {
		t.Errorf("partition 0: %+v, want next 10, rows 10, epoch 1", ps)
	}
	if ps := man.partition(1); ps.Next != 0 || ps.Rows != 0 || ps.Epoch != 2 {
		t.Errorf("partition 1: %+v, want next 0, rows 0, epoch 2 (the new owner's)", ps)
	}
}

// ownedWriterSetup gives a two-partition topic on a local lake, its store,
// and a function that opens a topic writer on it (again after a restart),
// with a roll that never flushes by itself.
func ownedWriterSetup(t *testing.T) (*pipelines.Pipeline, lakestore.Store, func() *topicWriter) {
	t.Helper()
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 2)}, nil)
	st := openStore(t, p)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return p, st, func() *topicWriter {
		tl, err := openTopicLake(context.Background(), st, &p.Topics[0], time.Now, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return newTopicWriter(tl, progressOnly{}, testLogger(t), time.Now, pipelines.LakeRoll{MaxRows: 1 << 20, MaxAge: pipelines.Duration(time.Hour)},
			10*time.Millisecond, m, newMemBudget(1<<24))
	}
}
