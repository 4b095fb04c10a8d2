package batch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// opsStore notes, in order, the data files a process starts writing and
// the keys it deletes.
type opsStore struct {
	*pausedStore
	mu  sync.Mutex
	ops []string
}

func (s *opsStore) note(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, op)
}

func (s *opsStore) noted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ops)
}

func (s *opsStore) Create(ctx context.Context, key string) (lakestore.Writer, error) {
	if strings.HasSuffix(key, ".parquet") {
		s.note("create " + key)
	}
	return s.pausedStore.Create(ctx, key)
}

func (s *opsStore) Delete(ctx context.Context, keys ...string) error {
	err := s.pausedStore.Delete(ctx, keys...)
	for _, k := range keys {
		s.note("delete " + k)
	}
	return err
}

// TestTakeOverReadsWhileRecovering: a process taking a partition over
// reads it from the log while its recovery lists the lake (held here
// until the test lets it go), instead of after. Nothing of the partition
// is flushed before the recovery has removed what a predecessor left
// (readers of the directory would see those events twice); a file of a
// later owner's epoch stays; the lake then holds every event once.
func TestTakeOverReadsWhileRecovering(t *testing.T) { eachLake(t, testTakeOverReadsWhileRecovering) }

// takeOverLake is a topic of one partition whose log holds 50 events, in a
// lake at at that holds two files no manifest lists: a predecessor's
// flush cut off before its commit (orphan, named without an epoch: older
// than any take), and a file of an epoch past any a test takes (later: a
// later owner's, as far as recovery can tell). The roll flushes at 10 rows
// or 20 ms.
func takeOverLake(t *testing.T, at lakeAt) (p *pipelines.Pipeline, br *broker.Broker, st lakestore.Store, evs []event.Event, orphan, later string) {
	t.Helper()
	p = testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 1)}, nil)
	p.Lake.Roll = pipelines.LakeRoll{MaxRows: 10, MaxAge: pipelines.Duration(20 * time.Millisecond)}
	at.apply(p)
	br = openBroker(t, p, nil)
	st = openStore(t, p)
	hour := "metrics/" + periodPath(t0.UnixMicro(), hourMicros) + "/"
	orphan, later = hour+"p0-0-49.parquet", hour+"p0-0-49-e99.parquet"
	for _, k := range []string{orphan, later} {
		if err := st.WriteFile(context.Background(), k, []byte("PAR1"), true); err != nil {
			t.Fatal(err)
		}
	}
	evs = events("a", 50)
	appendEvents(t, br, "metrics", 1, evs)
	return p, br, st, evs, orphan, later
}

func testTakeOverReadsWhileRecovering(t *testing.T, at lakeAt) {
	p, br, base, evs, orphan, later := takeOverLake(t, at)
	st := &opsStore{pausedStore: &pausedStore{Store: base}}
	ctx := context.Background()
	listing, release := make(chan struct{}), make(chan struct{})
	st.pauseList = func() {
		close(listing)
		<-release
	}
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	b, err := New(p, br, nil, Options{Logger: testLogger(t), Poll: 10 * time.Millisecond, Store: st, Owner: join(t, br)})
	if err != nil {
		t.Fatal(err)
	}
	startBatch(t, b)
	t.Cleanup(free) // before the process stops: its recovery may be held
	select {
	case <-listing:
	case <-time.After(60 * time.Second):
		t.Fatal("no recovery listed the lake within 60 s")
	}
	// The recovery is held in its listing: the partition's reader reads
	// the log all the same, and the roll (10 rows, 20 ms) asks for
	// flushes that wait.
	tw := b.writers["metrics"]
	testenv.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		tw.mu.Lock()
		defer tw.mu.Unlock()
		if pw := tw.parts[0]; pw == nil || pw.end < 50 || !pw.tidy.pending() {
			return fmt.Errorf("partition 0 not read to 50 while its recovery is held (%+v)", pw)
		}
		return nil
	})
	if fe := b.manifestOf("metrics").Files(); len(fe) != 0 {
		t.Fatalf("files committed while the recovery was held: %+v", fe)
	}
	free()
	waitLake(t, b, nil, "metrics", map[int]int64{0: 50})
	checkLakeHolds(t, b, evs)
	ops := st.noted()
	gone := slices.Index(ops, "delete "+orphan)
	first := slices.IndexFunc(ops, func(op string) bool { return strings.HasPrefix(op, "create ") })
	if gone < 0 || first < 0 || gone > first || slices.Contains(ops, "delete "+later) {
		t.Fatalf("store operations %q: want %s deleted before any data file is written, and %s kept", ops, orphan, later)
	}
	if _, err := st.ReadFile(ctx, later); err != nil {
		t.Fatalf("the later owner's file: %v", err)
	}
	if _, err := st.ReadFile(ctx, orphan); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the predecessor's file: %v, want it gone", err)
	}
}

// listFailing is a lake store whose first listing of the topic's files
// (a recovery's) fails.
type listFailing struct {
	lakestore.Store
	once sync.Once
}

func (s *listFailing) List(ctx context.Context, prefix, after string) ([]lakestore.Entry, error) {
	failed := false
	if prefix == "metrics/" {
		s.once.Do(func() { failed = true })
	}
	if failed {
		return nil, errors.New("listing metrics/: injected failure")
	}
	return s.Store.List(ctx, prefix, after)
}

// TestTakeOverRecoveryFails: the recovery that runs beside a partition's
// reader fails. What the reader read is not flushed; the partition is run
// again (taken, recovered, read from the manifest) and the lake holds
// every event once, without what the predecessor left.
func TestTakeOverRecoveryFails(t *testing.T) { eachLake(t, testTakeOverRecoveryFails) }

func testTakeOverRecoveryFails(t *testing.T, at lakeAt) {
	p, br, base, evs, orphan, later := takeOverLake(t, at)
	st := &listFailing{Store: base}
	ctx := context.Background()
	logs := &logLines{next: testLogger(t).Handler()}
	b, err := New(p, br, nil, Options{Logger: slog.New(logs), Poll: 10 * time.Millisecond, Store: st, Owner: join(t, br)})
	if err != nil {
		t.Fatal(err)
	}
	startBatch(t, b)
	waitLake(t, b, nil, "metrics", map[int]int64{0: 50})
	checkLakeHolds(t, b, evs)
	if n := logs.count("lake: writer of a partition stopped"); n != 1 {
		t.Fatalf("%d partition runs stopped, want the one whose recovery failed", n)
	}
	if _, err := st.ReadFile(ctx, orphan); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the predecessor's file: %v, want it gone", err)
	}
	if _, err := st.ReadFile(ctx, later); err != nil {
		t.Fatalf("the later owner's file: %v", err)
	}
}

// TestRecoveryBesideReader: a recovery that runs beside its partition's
// reader leaves alone a file named with the reader's own epoch (one the
// reader may be about to commit) and removes a predecessor's; the
// recovery of a partition given back, with no reader left, removes both.
func TestRecoveryBesideReader(t *testing.T) { eachLake(t, testRecoveryBesideReader) }

func testRecoveryBesideReader(t *testing.T, at lakeAt) {
	ctx := context.Background()
	st, _, open := lapseLake(t, at, 1)
	tw := open(st)
	l := &fakeLease{fakeFence: fakeFence{epoch: 3}}
	if err := tw.takeOver(ctx, 0, l); err != nil {
		t.Fatal(err)
	}
	hour := "metrics/" + periodPath(t0.UnixMicro(), hourMicros) + "/"
	own, old := hour+"p0-0-9-e3.parquet", hour+"p0-0-9-e2.parquet"
	for _, k := range []string{own, old} {
		if err := st.WriteFile(ctx, k, []byte("PAR1"), true); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(k string) bool {
		_, err := st.ReadFile(ctx, k)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	}
	fences := map[int]Fence{0: l}
	if lost, err := tw.tl.recoverOwned(ctx, testLogger(t), fences, map[int]bool{0: true}); err != nil || len(lost) != 0 {
		t.Fatalf("recovery beside the reader: lost %v, %v", lost, err)
	}
	if !exists(own) || exists(old) {
		t.Fatalf("beside the reader: own file kept %v (want true), predecessor's kept %v (want false)", exists(own), exists(old))
	}
	if lost, err := tw.tl.recoverOwned(ctx, testLogger(t), fences, nil); err != nil || len(lost) != 0 {
		t.Fatalf("recovery of the partition given back: lost %v, %v", lost, err)
	}
	if exists(own) {
		t.Fatal("given back: the file no manifest lists is still there")
	}
}
