package batch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// These tests put a writer to sleep where a lapsed lease hurts most: after
// it wrote a flush's or a merge's files and before its manifest record
// reaches the store (a GC pause, a starved CPU, a slow link to object
// storage). Meanwhile another process takes its partition over and works;
// then the sleeper's record write goes on. The lake must end up exact: every
// file the manifest lists readable, every event once.

// pausedStore runs pause (once, when set) just before a manifest record
// write reaches the store, and pauseList (once, when set) just before a
// listing of the topic's files (recovery's): the caller sleeps there while they
// run. onDelete tells when a deletion is done.
type pausedStore struct {
	lakestore.Store
	mu        sync.Mutex
	pause     func(key string)
	pauseList func()
	onDelete  func()           // once, after a deletion
	landed    func(key string) // once, after a record write succeeded
	// detached makes listings, renames and deletions ignore their
	// context's end: a process frozen as a whole resumes with the calls
	// it had in hand before its lease's end (a canceled context) reaches
	// them.
	detached bool
}

func (s *pausedStore) ctx(ctx context.Context) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (s *pausedStore) Delete(ctx context.Context, keys ...string) error {
	err := s.Store.Delete(s.ctx(ctx), keys...)
	s.mu.Lock()
	f := s.onDelete
	s.onDelete = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return err
}

func (s *pausedStore) Rename(ctx context.Context, from, to string) error {
	return s.Store.Rename(s.ctx(ctx), from, to)
}

func (s *pausedStore) List(ctx context.Context, prefix, after string) ([]lakestore.Entry, error) {
	if prefix == "metrics/" {
		s.mu.Lock()
		f := s.pauseList
		s.pauseList = nil
		s.mu.Unlock()
		if f != nil {
			f()
		}
	}
	return s.Store.List(s.ctx(ctx), prefix, after)
}

func (s *pausedStore) arm(f func(key string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pause = f
}

func (s *pausedStore) WriteFile(ctx context.Context, key string, data []byte, exclusive bool) error {
	if _, kind, ok := parseLogKey(key); ok && kind == logRecord {
		s.mu.Lock()
		f := s.pause
		s.pause = nil
		s.mu.Unlock()
		if f != nil {
			f(key)
		}
	}
	err := s.Store.WriteFile(ctx, key, data, exclusive)
	if _, kind, ok := parseLogKey(key); ok && kind == logRecord && err == nil {
		s.mu.Lock()
		f := s.landed
		s.landed = nil
		s.mu.Unlock()
		if f != nil {
			f(key)
		}
	}
	return err
}

// lapseLake is a topic of parts partitions in a lake at at: its store, the
// store paused at will (pausedStore), and a function that opens a
// process's topic writer on it through either (each call a process of its
// own, with its own manifest), with a roll that never flushes by itself.
func lapseLake(t *testing.T, at lakeAt, parts int) (lakestore.Store, *pausedStore, func(st lakestore.Store) *topicWriter) {
	t.Helper()
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", parts)}, nil)
	at.apply(p)
	st := openStore(t, p)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return st, &pausedStore{Store: st}, func(st lakestore.Store) *topicWriter {
		tl, err := openTopicLake(context.Background(), st, &p.Topics[0], time.Now, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return newTopicWriter(tl, progressOnly{}, testLogger(t), time.Now, pipelines.LakeRoll{MaxRows: 1 << 20, MaxAge: pipelines.Duration(time.Hour)},
			10*time.Millisecond, m, newMemBudget(1<<24))
	}
}

// own makes tw the owner of part under a lease of epoch, as writeLake
// does: the take-over committed, the partition recovered, its reader at
// the manifest's next.
func own(t *testing.T, tw *topicWriter, part int, epoch uint64) *fakeLease {
	t.Helper()
	ctx := context.Background()
	l := &fakeLease{fakeFence: fakeFence{epoch: epoch}}
	if err := tw.takeOver(ctx, part, l); err != nil {
		t.Fatalf("take-over of partition %d under epoch %d: %v", part, epoch, err)
	}
	if err := tw.tl.recoverPartitions(ctx, testLogger(t), map[int]Fence{part: l}); err != nil {
		t.Fatal(err)
	}
	next := tw.tl.ms.snapshot().partition(part).Next
	tw.parts[part] = &partWriter{lease: l, first: next, end: next, committed: -1}
	return l
}

// feed reads offsets [from, from+n) of part into tw's buffer: events
// "e-<offset>", a second apart from t0 (one hour's period).
func feed(t *testing.T, tw *topicWriter, part int, from int64, n int) {
	t.Helper()
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = testEvent(fmt.Sprintf("e%d", part), int(from)+i, t0, time.Second)
	}
	if err := tw.add(part, tw.gen, &broker.Entry{Offset: from, Events: evs, Ingest: 1}); err != nil {
		t.Fatal(err)
	}
}

// lakeIDs reads the lake as a process that just started would: a fresh
// manifest, every live file read through the lake reader (which checks
// it against its entry). It fails on a file missing or damaged and on an
// event found twice, and returns the events' ids.
func lakeIDs(t *testing.T, st lakestore.Store, open func(lakestore.Store) *topicWriter) map[string]bool {
	t.Helper()
	tl := open(st).tl
	m := tl.ms.snapshot()
	ids := map[string]bool{}
	for _, fe := range m.Files() {
		err := tl.scanFile(context.Background(), fe, scanOptions{}, func(b *scanBatch) error {
			for _, e := range b.Events {
				if ids[e.ID] {
					return fmt.Errorf("event %s twice (file %s)", e.ID, fe.Path)
				}
				ids[e.ID] = true
			}
			return nil
		})
		if err != nil {
			t.Fatalf("reading the lake at version %d: %v", m.Version, err)
		}
	}
	return ids
}

// wantIDs fails unless ids are exactly events [0, n) of each partition in
// parts.
func wantIDs(t *testing.T, ids map[string]bool, n int, parts ...int) {
	t.Helper()
	if len(ids) != n*len(parts) {
		t.Fatalf("the lake holds %d events, want %d", len(ids), n*len(parts))
	}
	for _, p := range parts {
		for i := range n {
			if id := fmt.Sprintf("e%d-%d", p, i); !ids[id] {
				t.Fatalf("event %s is not in the lake", id)
			}
		}
	}
}

// TestRefusedFlushSparesNewOwnersFile: the old owner of a partition wrote
// its flush's file and sleeps before its record; the new owner takes the
// partition over, recovers it (removing that file, which no record lists),
// reads the same offsets and commits them in a file for the same range.
// The sleeper's record is then refused (the new owner's take-over holds
// the version it was written for), and the file it removes as its own
// failed flush's must not be the new owner's.
func TestRefusedFlushSparesNewOwnersFile(t *testing.T) {
	eachLake(t, testRefusedFlushSparesNewOwnersFile)
}

func testRefusedFlushSparesNewOwnersFile(t *testing.T, at lakeAt) {
	ctx := context.Background()
	st, ps, open := lapseLake(t, at, 1)
	old, newer := open(ps), open(st)
	own(t, old, 0, 1)
	feed(t, old, 0, 0, 100)
	ps.arm(func(string) {
		own(t, newer, 0, 2)
		feed(t, newer, 0, 0, 100)
		if err := newer.flush(ctx); err != nil {
			t.Errorf("the new owner's flush: %v", err)
		}
	})
	if err := old.flush(ctx); !errors.Is(err, errLost) {
		t.Fatalf("the sleeper's flush: %v, want errLost", err)
	}
	wantIDs(t, lakeIDs(t, st, open), 100, 0)
	if m := open(st).tl.ms.snapshot(); m.partition(0).Next != 100 || m.partition(0).Epoch != 2 {
		t.Fatalf("partition 0: %+v, want next 100 under epoch 2", m.partition(0))
	}
}

// TestMergeRefusedAfterTakeOver: a merge's output is written and its
// writer sleeps before its record; the period's shard is taken over and
// recovered (the output, listed nowhere, is removed). The sleeper's record
// is then refused, so the manifest never lists the removed output, and the
// merge's inputs stay live and readable.
func TestMergeRefusedAfterTakeOver(t *testing.T) { eachLake(t, testMergeRefusedAfterTakeOver) }

func testMergeRefusedAfterTakeOver(t *testing.T, at lakeAt) {
	ctx := context.Background()
	st, ps, open := lapseLake(t, at, 1)
	old, newer := open(ps), open(st)
	c := mergeDue(t, old, 1)
	ps.arm(func(string) { own(t, newer, 0, 2) })
	if n, err := c.compact(ctx); !errors.Is(err, errLost) {
		t.Fatalf("the sleeper's merge: %d merged, %v; want errLost", n, err)
	}
	m := open(st).tl.ms.snapshot()
	if len(m.Files()) != 2 || m.partition(0).Epoch != 2 {
		t.Fatalf("after the refused merge: %d files under epoch %d, want the 2 inputs under epoch 2", len(m.Files()), m.partition(0).Epoch)
	}
	wantIDs(t, lakeIDs(t, st, open), 100, 0)
}

// mergeDue makes tw the owner of partition 0 under epoch, writes events
// [0, 100) of it in two files of one period, and returns a compactor of
// tw's process, fenced by that lease, for which they are due.
func mergeDue(t *testing.T, tw *topicWriter, epoch uint64) *compactor {
	t.Helper()
	l := own(t, tw, 0, epoch)
	for from := int64(0); from < 100; from += 50 {
		feed(t, tw, 0, from, 50)
		if err := tw.flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	c := newCompactor(tw.tl, testLogger(t), time.Now, pipelines.Compact{MinFiles: 2, Interval: pipelines.Duration(time.Hour)}, time.Hour, tw.metrics)
	c.fence = func(int) Fence { return l }
	return c
}

// freeSlot makes tw commit (take-overs of part under growing epochs) until
// the manifest record at key is gone: checkpoints made it redundant and
// deleted it, so that the name is free again for a create-only write.
func freeSlot(t *testing.T, tw *topicWriter, st lakestore.Store, part int, epoch uint64, key string) uint64 {
	t.Helper()
	ctx := context.Background()
	for range 4 * checkpointEvery {
		if _, err := st.ReadFile(ctx, key); errors.Is(err, fs.ErrNotExist) {
			return epoch
		}
		epoch++
		if err := tw.takeOver(ctx, part, &fakeFence{epoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("%s is still there after %d commits", key, 4*checkpointEvery)
	return 0
}

// TestTakeOverOnStaleManifest: a process that has not read the manifest
// for a while (its partitions were idle) takes a partition over. Since its
// last read, other processes committed enough for checkpoints to delete the
// record of the version after the one it knows. Its take-over must still
// land in the manifest: from then on the previous owner cannot commit.
func TestTakeOverOnStaleManifest(t *testing.T) { eachLake(t, testTakeOverOnStaleManifest) }

func testTakeOverOnStaleManifest(t *testing.T, at lakeAt) {
	ctx := context.Background()
	st, _, open := lapseLake(t, at, 2)
	idle, busy := open(st), open(st)
	own(t, idle, 1, 1)
	lb := own(t, busy, 0, 1)
	slot := busy.tl.ms.dir + versionName(idle.tl.ms.local().Version+1) + recordExt
	freeSlot(t, busy, st, 1, 1, slot)
	_ = lb
	feed(t, busy, 0, 0, 10)

	// The idle process takes partition 0 from the busy one.
	if err := idle.takeOver(ctx, 0, &fakeFence{epoch: 2}); err != nil {
		t.Fatal(err)
	}
	if ps := open(st).tl.ms.snapshot().partition(0); ps.Epoch != 2 {
		t.Fatalf("after the take-over (epoch 2) the manifest records epoch %d for partition 0", ps.Epoch)
	}
	if err := busy.flush(ctx); !errors.Is(err, errLost) {
		t.Fatalf("the previous owner's flush after the take-over: %v, want errLost", err)
	}
}

// TestLateRecordInFreedSlot: a process sleeps just before its record
// write, long enough for others to commit so much that checkpoints delete
// the record of the version it writes. When it wakes, its create-only
// write finds the name free. It must not take that for a commit: readers
// never see a record below a checkpoint. Here the sleeper is a merge whose
// shard was taken over meanwhile; a merge it believed committed would hide
// its inputs, which the manifest still lists.
func TestLateRecordInFreedSlot(t *testing.T) { eachLake(t, testLateRecordInFreedSlot) }

func testLateRecordInFreedSlot(t *testing.T, at lakeAt) {
	ctx := context.Background()
	st, ps, open := lapseLake(t, at, 1)
	old, newer := open(ps), open(st)
	c := mergeDue(t, old, 1)
	var epoch uint64
	ps.arm(func(key string) {
		own(t, newer, 0, 2)
		epoch = freeSlot(t, newer, st, 0, 2, key)
	})
	n, err := c.compact(ctx)
	if err == nil {
		t.Errorf("the sleeper's merge into a freed record: %d merged and no error", n)
	}
	// The new owner tidies the partition as on a take-over or give-back.
	if err := newer.tl.recoverPartitions(ctx, testLogger(t), map[int]Fence{0: &fakeFence{epoch: epoch}}); err != nil {
		t.Fatal(err)
	}
	m := open(st).tl.ms.snapshot()
	if len(m.Files()) != 2 {
		t.Fatalf("after the sleeper's merge: %d files live, want its 2 inputs", len(m.Files()))
	}
	wantIDs(t, lakeIDs(t, st, open), 100, 0)
}

// TestStaleRecoverySparesLaterOwner: a process takes a partition over and
// sleeps in its recovery, between reading the manifest and removing what
// it lists nowhere. Meanwhile the partition moves on to a later owner,
// which recovers it too, flushes, merges (hiding the merge's inputs) and
// flushes again. When the sleeper wakes, the later owner's files are all
// in its listing and none in the manifest it read: it must leave them
// alone (by the epoch in a flush file's name, the version in a merged
// file's).
func TestStaleRecoverySparesLaterOwner(t *testing.T) { eachLake(t, testStaleRecoverySparesLaterOwner) }

func testStaleRecoverySparesLaterOwner(t *testing.T, at lakeAt) {
	ctx := context.Background()
	st, ps, open := lapseLake(t, at, 1)
	sleeper, later := open(ps), open(st)
	l1 := &fakeLease{fakeFence: fakeFence{epoch: 1}}
	if err := sleeper.takeOver(ctx, 0, l1); err != nil {
		t.Fatal(err)
	}
	ps.mu.Lock()
	ps.pauseList = func() {
		c := mergeDue(t, later, 2)
		if n, err := c.compact(ctx); n != 1 || err != nil {
			t.Errorf("the later owner's merge: %d, %v", n, err)
		}
		feed(t, later, 0, 100, 50)
		if err := later.flush(ctx); err != nil {
			t.Error(err)
		}
	}
	ps.mu.Unlock()
	if err := sleeper.tl.recoverPartitions(ctx, testLogger(t), map[int]Fence{0: l1}); err != nil {
		t.Fatalf("the sleeper's recovery: %v", err)
	}
	if m := open(st).tl.ms.snapshot(); len(m.Files()) != 2 || len(m.Replaced) != 2 {
		t.Fatalf("%d files live and %d replaced, want the merged file and the last flush's, and the 2 merged", len(m.Files()), len(m.Replaced))
	}
	wantIDs(t, lakeIDs(t, st, open), 150, 0)
	// The merged inputs stay readable (hidden) for readers of the
	// manifest before the merge.
	for _, r := range open(st).tl.ms.snapshot().Replaced {
		if _, err := st.ReadFile(ctx, replacedName("metrics/"+r.Path)); err != nil {
			t.Errorf("a merged input, hidden for its grace period: %v", err)
		}
	}
}

// checkpointOnTop is a pausedStore hook: once a record has landed, the
// process of other (which owns partition 1 under epoch 1) commits on top
// of it until it has checkpointed at or past its version.
func checkpointOnTop(t *testing.T, other *topicWriter) func(key string) {
	return func(key string) {
		v, _, _ := parseLogKey(key)
		for e := uint64(2); e < 3*checkpointEvery; e++ {
			if err := other.takeOver(context.Background(), 1, &fakeFence{epoch: e}); err != nil {
				t.Error(err)
				return
			}
			if other.tl.ms.ckpt >= v {
				return
			}
		}
		t.Errorf("no checkpoint past version %d after %d commits", v, 3*checkpointEvery)
	}
}

// TestFlushConfirmedByManifest: as TestMergeConfirmedByManifest, for a
// flush: it goes on as committed (its position is committed through its
// lease) when its files are live.
func TestFlushConfirmedByManifest(t *testing.T) { eachLake(t, testFlushConfirmedByManifest) }

func testFlushConfirmedByManifest(t *testing.T, at lakeAt) {
	st, ps, open := lapseLake(t, at, 2)
	w, other := open(ps), open(st)
	l := own(t, w, 0, 1)
	own(t, other, 1, 1)
	feed(t, w, 0, 0, 100)
	ps.mu.Lock()
	ps.landed = checkpointOnTop(t, other)
	ps.mu.Unlock()
	if err := w.flush(context.Background()); err != nil {
		t.Fatalf("the flush: %v", err)
	}
	if len(l.commits) != 1 || l.commits[0] != 100 {
		t.Fatalf("positions committed through the lease: %v, want [100]", l.commits)
	}
	wantIDs(t, lakeIDs(t, st, open), 100, 0)
}

// TestMergeConfirmedByManifest: a merge's record lands, and before its
// writer confirms it another process has committed on top of it and
// checkpointed. Confirming cannot tell that from a freed name; the
// manifest then settles it (the merged file is live), and the merge goes
// on as committed: its inputs are hidden.
func TestMergeConfirmedByManifest(t *testing.T) { eachLake(t, testMergeConfirmedByManifest) }

func testMergeConfirmedByManifest(t *testing.T, at lakeAt) {
	ctx := context.Background()
	st, ps, open := lapseLake(t, at, 2)
	merger, other := open(ps), open(st)
	c := mergeDue(t, merger, 1)
	own(t, other, 1, 1)
	ps.mu.Lock()
	ps.landed = checkpointOnTop(t, other)
	ps.mu.Unlock()
	if n, err := c.compact(ctx); n != 1 || err != nil {
		t.Fatalf("the merge: %d merged, %v; want 1 and no error", n, err)
	}
	m := open(st).tl.ms.snapshot()
	if len(m.Files()) != 1 || !m.Files()[0].Compacted || len(m.Replaced) != 2 {
		t.Fatalf("%d files live, %d replaced; want the merged file and its 2 inputs", len(m.Files()), len(m.Replaced))
	}
	for _, r := range m.Replaced {
		key := "metrics/" + r.Path
		if _, err := st.ReadFile(ctx, key); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still in sight: %v", key, err)
		}
		if _, err := st.ReadFile(ctx, replacedName(key)); err != nil {
			t.Errorf("%s is not hidden: %v", key, err)
		}
	}
	wantIDs(t, lakeIDs(t, st, open), 100, 0)
}
