package batch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// mergeCut is a lake store that cuts a merge short at one step, as a
// kill -9 or a lapsing lease would: once a merged file (c….parquet) is
// linked, once the commit record is written, or once the first input is
// hidden. at is called right after that step; the goroutine that took it
// then goes on or ends (runtime.Goexit: nothing after the step runs, as
// after a kill, while what is stored stays).
type mergeCut struct {
	lakestore.Store
	step string // "linked", "committed" or "hidden"; "" cuts nothing
	at   func()
}

func (s *mergeCut) Create(ctx context.Context, key string) (lakestore.Writer, error) {
	w, err := s.Store.Create(ctx, key)
	if err != nil || s.step != "linked" || !strings.HasPrefix(key[strings.LastIndexByte(key, '/')+1:], "c") {
		return w, err
	}
	return &cutWriter{Writer: w, s: s}, nil
}

type cutWriter struct {
	lakestore.Writer
	s *mergeCut
}

func (w *cutWriter) Commit(ctx context.Context, exclusive bool) (int64, error) {
	n, err := w.Writer.Commit(ctx, exclusive)
	if err == nil {
		w.s.cut()
	}
	return n, err
}

func (s *mergeCut) WriteFile(ctx context.Context, key string, data []byte, exclusive bool) error {
	err := s.Store.WriteFile(ctx, key, data, exclusive)
	if err == nil && s.step == "committed" && strings.Contains(key, "/"+manifestDir+"/") && strings.Contains(string(data), `"compacted":true`) {
		s.cut()
	}
	return err
}

func (s *mergeCut) Rename(ctx context.Context, from, to string) error {
	err := s.Store.Rename(ctx, from, to)
	if err == nil && s.step == "hidden" {
		s.cut()
	}
	return err
}

func (s *mergeCut) cut() {
	s.step = "" // once
	if s.at != nil {
		s.at()
		return
	}
	runtime.Goexit()
}

// killLake is a two-partition topic on a local lake seen through a
// mergeCut, with a topic writer and a compactor as a process has them
// (open again for a restart).
type killLake struct {
	t  *testing.T
	p  *pipelines.Pipeline
	st *mergeCut
	m  *metrics
}

func newKillLake(t *testing.T) *killLake {
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 2)}, nil)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return &killLake{t: t, p: p, st: &mergeCut{Store: openStore(t, p)}, m: m}
}

// open starts a process on the lake: it takes both partitions over under
// leases of epoch (recording it, then recovering the partitions' files)
// and returns its writer and compactor.
func (k *killLake) open(epoch uint64) (*topicWriter, *compactor, []*fakeLease) {
	t := k.t
	ctx := context.Background()
	tl, err := openTopicLake(ctx, k.st, &k.p.Topics[0], time.Now, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tw := newTopicWriter(tl, progressOnly{}, testLogger(t), time.Now, pipelines.LakeRoll{MaxRows: 1 << 20, MaxAge: pipelines.Duration(time.Hour)},
		10*time.Millisecond, k.m, newMemBudget(1<<24))
	var leases []*fakeLease
	for part := range 2 {
		l := &fakeLease{fakeFence: fakeFence{epoch: epoch}}
		if err := tw.takeOver(ctx, part, l); err != nil {
			t.Fatal(err)
		}
		if err := tl.recoverPartitions(ctx, testLogger(t), map[int]Fence{part: l}); err != nil {
			t.Fatal(err)
		}
		next := tl.ms.snapshot().partition(part).Next
		tw.parts[part] = &partWriter{lease: l, first: next, end: next, committed: -1}
		leases = append(leases, l)
	}
	c := newCompactor(tl, testLogger(t), time.Now, pipelines.Compact{MinFiles: 2, Interval: pipelines.Duration(time.Hour)}, time.Hour, k.m)
	c.fence = tw.fenceOf
	return tw, c, leases
}

// flush writes n events of one hour (t0's) of each partition, from
// offset from, in one flush: one file.
func (k *killLake) flush(tw *topicWriter, from, n int) {
	for part := range 2 {
		evs := make([]event.Event, n)
		for i := range evs {
			evs[i] = testEvent(fmt.Sprintf("k%d", part), from+i, t0, time.Second)
		}
		if err := tw.add(part, tw.gen, &broker.Entry{Offset: int64(from), Events: evs, Ingest: 1}); err != nil {
			k.t.Fatal(err)
		}
	}
	if err := tw.flush(context.Background()); err != nil {
		k.t.Fatal(err)
	}
}

// check fails t unless the lake is exactly what its manifest says: every
// listed file there and whole, nothing unlisted in sight, rows in all.
func (k *killLake) check(tl *topicLake, files, rows int) *manifest {
	t := k.t
	t.Helper()
	m, err := readManifest(context.Background(), k.st, "metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range lakeLeftovers(k.st, m) {
		t.Error(err)
	}
	got := 0
	for _, fe := range m.Files() {
		if err := tl.scanFile(context.Background(), fe, scanOptions{}, func(b *scanBatch) error {
			got += len(b.Events)
			return nil
		}); err != nil {
			t.Errorf("reading %s: %v", fe.Path, err)
		}
	}
	if len(m.Files()) != files || got != rows {
		t.Errorf("manifest version %d: %d files holding %d rows, want %d files, %d rows", m.Version, len(m.Files()), got, files, rows)
	}
	return m
}

// TestMergeKilled cuts a merge short at each of its steps, as kill -9
// does (the merged file linked, the commit record written, an input
// hidden), restarts the process with the same lease epoch (the broker
// gives a restarted node's partitions back under the epoch it had, so the
// take-over commits nothing and the manifest stays at the version the
// merged file was named after), and lets the restarted process compact
// again. Each time the lake ends exactly as its manifest says: recovery
// removed the unlisted merged file before the retried merge took its name
// again (c<version>), or hid the inputs of the committed one; no listed
// file is gone and no file is left that no manifest lists.
func TestMergeKilled(t *testing.T) {
	for _, step := range []string{"linked", "committed", "hidden"} {
		t.Run(step, func(t *testing.T) {
			k := newKillLake(t)
			tw, c, _ := k.open(1)
			k.flush(tw, 0, 10)
			k.flush(tw, 10, 7)
			version := tw.tl.ms.snapshot().Version
			name := periodPath(t0.UnixMicro(), hourMicros) + "/c" + fmt.Sprint(version) + ".parquet"

			k.st.step = step
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.compact(context.Background())
			}()
			<-done
			if k.st.step != "" {
				t.Fatalf("the merge never reached step %q", step)
			}
			if o, err := k.st.Open(context.Background(), "metrics/"+name); err != nil {
				t.Fatalf("the merged file %s is not where the cut left it: %v", name, err)
			} else {
				o.Close()
			}

			tw, c, _ = k.open(1)
			m := tw.tl.ms.snapshot()
			if step == "linked" && m.Version != version {
				t.Fatalf("after the restart the manifest is at version %d, want %d (the merged file's name again)", m.Version, version)
			}
			if _, err := c.compact(context.Background()); err != nil {
				t.Fatalf("compaction after the restart: %v", err)
			}
			m = k.check(tw.tl, 1, 34)
			if f := m.Files()[0]; f.Path != name || !f.Compacted {
				t.Errorf("the lake's file is %s (compacted %v), want %s", f.Path, f.Compacted, name)
			}
		})
	}
}

// TestMergeFenceLapses: the lease of the shard a merge commits under
// lapses after the merged file is written and before its commit (a node
// whose heartbeats stall under load finds its lease invalid for a while),
// then holds again. The refused merge removes its file; the next pass
// merges; no file is left that no manifest lists and none is gone.
func TestMergeFenceLapses(t *testing.T) {
	k := newKillLake(t)
	tw, c, leases := k.open(1)
	k.flush(tw, 0, 10)
	k.flush(tw, 10, 7)
	shard := tw.tl.shard(periodOf(t0.UnixMicro(), hourMicros))
	k.st.step, k.st.at = "linked", func() { leases[shard].lost = true }
	if n, err := c.compact(context.Background()); !errors.Is(err, errLost) || n != 0 {
		t.Fatalf("merge under a lapsed lease: %d merges, %v; want none, errLost", n, err)
	}
	k.check(tw.tl, 2, 34)
	leases[shard].lost = false
	if n, err := c.compact(context.Background()); err != nil || n != 1 {
		t.Fatalf("merge once the lease holds again: %d merges, %v; want 1", n, err)
	}
	k.check(tw.tl, 1, 34)
}
