package batch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
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
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 2)}, nil)
	st := openStore(t, p)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	open := func() *topicWriter {
		tl, err := openTopicLake(ctx, st, &p.Topics[0], time.Now, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return newTopicWriter(tl, progressOnly{}, testLogger(t), time.Now, pipelines.LakeRoll{MaxRows: 1 << 20, MaxAge: pipelines.Duration(time.Hour)},
			10*time.Millisecond, m, newMemBudget(1<<24))
	}
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
	for _, f := range man.Files {
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

	// Partition 0 moves to another process (epoch 4) while this one still
	// believes its lease holds: its next flush is refused.
	other := open()
	if err := other.takeOver(ctx, 0, &fakeLease{fakeFence: fakeFence{epoch: 4}}); err != nil {
		t.Fatal(err)
	}
	feed(tw, 0, 10, 5)
	if err := tw.flush(ctx); !errors.Is(err, errLost) {
		t.Fatalf("flush of a partition taken over: %v, want errLost", err)
	}
	if ps := tw.tl.ms.snapshot().partition(0); ps.Next != 10 || ps.Epoch != 4 {
		t.Errorf("partition 0 after the refused flush: %+v, want next 10, epoch 4", ps)
	}
}
