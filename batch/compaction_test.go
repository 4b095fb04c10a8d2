package batch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestCompactionWhileReading merges the small files of each hour and
// partition while readers keep reading the lake through manifest
// snapshots: no reader ever sees a duplicate or a missing event. Replaced
// files leave the directory at once (hidden) and the disk after the grace
// period, not while a reader still holds a manifest that lists them.
func TestCompactionWhileReading(t *testing.T) {
	e := newEnvWith(t, func(p *pipelines.Pipeline) {
		p.Lake.Roll.MaxRows = 200
		p.Lake.Compact.MinFiles = 2
		p.Lake.Compact.Interval = 0 // compaction below is driven by hand
	})
	var evs []event.Event
	for i := range 4000 {
		evs = append(evs, testEvent("e", i, t0, 2*time.Second)) // 2h13m: 3 hours
	}
	for off := 0; off < len(evs); off += 500 {
		e.add(evs[off : off+500])
	}
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	tl := e.b.lakes["metrics"]
	before := tl.ms.snapshot()
	if len(before.Files) < 20 {
		t.Fatalf("only %d files to compact", len(before.Files))
	}

	// Readers read whole-lake snapshots in a loop until compaction is done.
	ids := map[string]bool{}
	for _, ev := range evs {
		ids[ev.ID] = true
	}
	var stop atomic.Bool
	var reads atomic.Int64
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				if err := readSnapshot(tl, ids); err != nil {
					errc <- err
					return
				}
				reads.Add(1)
			}
		})
	}
	c := &compactor{tl: tl, logger: testLogger(t), now: e.clk.Now, cfg: e.p.Lake.Compact, grace: time.Minute, metrics: e.b.metrics}
	// A reader pins the manifest from before compaction for the whole time.
	pinned, unpin := tl.ms.pin()
	n, err := c.compact(context.Background())
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d merges, %d snapshot reads during compaction", n, reads.Load())
	after := tl.ms.snapshot()
	if n == 0 || len(after.Files) != 3*2 {
		t.Fatalf("%d merges: %d files before, %d after", n, len(before.Files), len(after.Files))
	}
	if err := readSnapshot(tl, ids); err != nil {
		t.Fatal(err)
	}
	// The directory, as pyarrow and DuckDB see it, holds each event once.
	checkIndependent(t, tl.dir, evs)

	// The pinned snapshot still reads, from the hidden replaced files.
	// (An hour on: e.add moved the clock back and forth.)
	e.clk.Add(time.Hour)
	if err := c.purge(); err != nil {
		t.Fatal(err)
	}
	if err := readFiles(tl, pinned, ids); err != nil {
		t.Fatalf("pinned snapshot after purge: %v", err)
	}
	unpin()
	if err := c.purge(); err != nil {
		t.Fatal(err)
	}
	if m := tl.ms.snapshot(); len(m.Replaced) != 0 {
		t.Fatalf("%d replaced files left after the grace period", len(m.Replaced))
	}
	hidden := 0
	filepath.WalkDir(tl.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".replaced") {
			hidden++
		}
		return nil
	})
	if hidden != 0 {
		t.Fatalf("%d replaced files still on disk", hidden)
	}
	if got := counterValue(t, e.b.metrics.compactions.WithLabelValues("metrics")); got != float64(n) {
		t.Errorf("lambdaflow_lake_compactions_total = %v, want %d", got, n)
	}

	// A run over the compacted lake gives the same view, and compaction
	// alone does not make hours dirty.
	e.open()
	s := e.run("cpu_by_region", time.Time{}, time.Time{})
	got, h := e.batchRows("cpu_by_region")
	sameRows(t, "over the compacted lake", got, independent(evs, h))
	if s.Rows != int64(len(evs)) {
		t.Errorf("first run read %d rows", s.Rows)
	}
}

// readSnapshot reads the lake through the current manifest and checks it
// holds exactly ids.
func readSnapshot(tl *topicLake, ids map[string]bool) error {
	m, unpin := tl.ms.pin()
	defer unpin()
	return readFiles(tl, m, ids)
}

func readFiles(tl *topicLake, m *manifest, ids map[string]bool) error {
	seen := make(map[string]bool, len(ids))
	for _, fe := range m.Files {
		err := tl.scanFile(context.Background(), fe, scanOptions{IDs: true, Fields: make([]bool, len(tl.topic.Schema))}, func(b *scanBatch) error {
			for _, e := range b.Events {
				if seen[e.ID] {
					return fmt.Errorf("manifest v%d: duplicate %s", m.Version, e.ID)
				}
				seen[e.ID] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(seen) != len(ids) {
		return fmt.Errorf("manifest v%d: %d events, want %d", m.Version, len(seen), len(ids))
	}
	return nil
}

// stoppedLake writes two events into a lake and stops its writer; it
// returns the topic's lake and the directory of their hour.
func stoppedLake(t *testing.T) (*topicLake, string) {
	t.Helper()
	e := newEnv(t)
	e.add([]event.Event{testEvent("e", 0, t0, time.Second), testEvent("e", 1, t0, time.Second)})
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	tl := e.b.lakes["metrics"]
	return tl, filepath.Join(tl.dir, hourPath(t0.UnixMicro()))
}

// TestRecovery: after a crash, unfinished temporary files and data files
// the manifest does not list are removed, listed files stay.
func TestRecovery(t *testing.T) {
	tl, hour := stoppedLake(t)
	orphan := filepath.Join(hour, "p0-2-9.parquet")
	tmp := filepath.Join(hour, ".p1-2-open.parquet.tmp")
	for _, f := range []string{orphan, tmp} {
		if err := os.WriteFile(f, []byte("PAR1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := tl.recover(testLogger(t)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{orphan, tmp} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s survived recovery: %v", f, err)
		}
	}
	for _, fe := range tl.ms.snapshot().Files {
		if _, err := os.Stat(tl.filePath(fe.Path)); err != nil {
			t.Errorf("listed file lost: %v", err)
		}
	}
}

// TestRecoveryOfATakenPartition: the process that takes a partition over
// records its epoch in the manifest while it removes the partition's
// unlisted files, under the manifest's lock, so that the writer the
// partition moved away from cannot commit afterwards a file that was
// removed; a process with an older epoch cannot recover it any more.
func TestRecoveryOfATakenPartition(t *testing.T) {
	tl, hour := stoppedLake(t)
	mine, other := filepath.Join(hour, "p0-2-9.parquet"), filepath.Join(hour, "p1-2-9.parquet")
	for _, f := range []string{mine, other} {
		if err := os.WriteFile(f, []byte("PAR1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := tl.ms.snapshot()
	if err := tl.recoverPartition(testLogger(t), 0, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mine); !os.IsNotExist(err) {
		t.Errorf("%s survived recovery: %v", mine, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another partition's file was touched: %v", err)
	}
	after := tl.ms.snapshot()
	if got := after.partition(0); got.Epoch != 7 || got.Next != before.partition(0).Next {
		t.Errorf("partition 0 after recovery: %+v, want epoch 7 and next %d", got, before.partition(0).Next)
	}
	if len(after.Files) != len(before.Files) {
		t.Errorf("recovery changed the files: %d, want %d", len(after.Files), len(before.Files))
	}
	if err := tl.recoverPartition(testLogger(t), 0, 6); !errors.Is(err, errLost) {
		t.Errorf("recovery by an older epoch: %v, want errLost", err)
	}
}
