package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/prometheus/client_golang/prometheus"
)

// TestCompactionWhileReading merges the files of each hour (every
// partition's, from several flushes) into one while readers keep reading
// the lake through manifest snapshots: no reader ever sees a duplicate or a
// missing event. Replaced files leave the listing at once (hidden) and the
// storage after the grace period, not while a reader still holds a
// manifest that lists them.
func TestCompactionWhileReading(t *testing.T) {
	eachLake(t, testCompactionWhileReading)
}

func testCompactionWhileReading(t *testing.T, at lakeAt) {
	e := newEnvWith(t, func(p *pipelines.Pipeline) {
		at.apply(p)
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
	// How many files the flushes made depends on how the writer's reads
	// met the adds; compaction has work as long as some hour has several.
	if len(before.Files()) <= 3 {
		t.Fatalf("only %d files for 3 hours: nothing to compact", len(before.Files()))
	}
	if f, p, r := heldGauges(t, e.reg, "metrics"); f != float64(len(before.Files())) || p != 3 || r != 4000 {
		t.Fatalf("before compaction, /metrics says %v files, %v periods, %v rows held; the manifest %d files in 3 hours, 4000 rows", f, p, r, len(before.Files()))
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
	c := newCompactor(tl, testLogger(t), e.clk.Now, e.p.Lake.Compact, time.Minute, e.b.metrics)
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
	// One file per hour: the partitions and flushes merged.
	if n == 0 || len(after.Files()) != 3 {
		t.Fatalf("%d merges: %d files before, %d after", n, len(before.Files()), len(after.Files()))
	}
	if err := readSnapshot(tl, ids); err != nil {
		t.Fatal(err)
	}
	for _, f := range after.Files() {
		if len(f.Ranges) != 2 || !f.Compacted {
			t.Fatalf("merged file %s: ranges %+v", f.Path, f.Ranges)
		}
	}
	// The directory, as pyarrow and DuckDB see it, holds each event once.
	checkIndependent(t, at.topic(e.p, "metrics"), evs)

	// The pinned snapshot still reads, from the hidden replaced files.
	// (An hour on: e.add moved the clock back and forth.)
	e.clk.Add(time.Hour)
	ctx := context.Background()
	if err := c.purge(ctx); err != nil {
		t.Fatal(err)
	}
	if err := readFiles(tl, pinned, ids); err != nil {
		t.Fatalf("pinned snapshot after purge: %v", err)
	}
	unpin()
	if err := c.purge(ctx); err != nil {
		t.Fatal(err)
	}
	if m := tl.ms.snapshot(); len(m.Replaced) != 0 {
		t.Fatalf("%d replaced files left after the grace period", len(m.Replaced))
	}
	es, err := tl.st.List(ctx, "metrics/", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if strings.HasSuffix(e.Key, ".replaced") {
			t.Fatalf("replaced file %s still stored", e.Key)
		}
	}
	if got := counterValue(t, e.b.metrics.compactions.WithLabelValues("metrics")); got != float64(n) {
		t.Errorf("lambdaflow_lake_compactions_total = %v, want %d", got, n)
	}
	if f, p, r := heldGauges(t, e.reg, "metrics"); f != 3 || p != 3 || r != 4000 {
		t.Errorf("after compaction, /metrics says %v files, %v periods, %v rows held; want 3, 3, 4000", f, p, r)
	}
	st := &api.Stats{}
	e.b.AddStats(st)
	if l := st.Batch.Lake[0]; l.FilesHeld != 3 || l.PeriodsHeld != 3 || l.RowsHeld != 4000 {
		t.Errorf("after compaction, /v1/stats says %+v; want 3 files in 3 periods, 4000 rows", l)
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
	for _, fe := range m.Files() {
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

// TestRecovery: after a crash, unfinished writes and data files the
// manifest does not list are removed, files compaction replaced are hidden,
// listed files stay; only files of the partitions recovered are touched.
func TestRecovery(t *testing.T) { eachLake(t, testRecovery) }

func testRecovery(t *testing.T, at lakeAt) {
	e := newEnvWith(t, at.apply)
	e.add([]event.Event{testEvent("e", 0, t0, time.Second), testEvent("e", 1, t0, time.Second)})
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tl := e.b.lakes["metrics"]
	hour := "metrics/" + periodPath(t0.UnixMicro(), hourMicros) + "/"
	// c1: a merge cut off that read version 1 (a merge named after a
	// version past the manifest may be a later owner's, and stays).
	// A month's directory: left by the topic when it was partitioned by
	// month (files keep their layout; recovery tidies every layout's).
	month := "metrics/" + layout{}.path(t0.UnixMicro()) + "/"
	orphans := []string{hour + "p0-2-9.parquet", hour + "w1-2-9.parquet", hour + "c1.parquet", month + "p1-2-9.parquet"}
	other := hour + "p3-0-9.parquet" // a partition another process writes
	for _, k := range append(orphans, other) {
		if err := tl.st.WriteFile(ctx, k, []byte("PAR1"), true); err != nil {
			t.Fatal(err)
		}
	}
	unfinished, err := tl.st.Create(ctx, hour+"p1-10-19.parquet")
	if err != nil {
		t.Fatal(err)
	}
	unfinished.Write([]byte("PAR1"))
	if err := tl.recoverPartitions(ctx, testLogger(t), map[int]Fence{0: nil, 1: nil}); err != nil {
		t.Fatal(err)
	}
	unfinished.Abort()
	es, err := tl.st.List(ctx, "metrics/", "")
	if err != nil {
		t.Fatal(err)
	}
	es = slices.DeleteFunc(es, func(e lakestore.Entry) bool { return strings.HasPrefix(e.Key, "metrics/"+manifestDir+"/") })
	listed := map[string]bool{}
	for _, fe := range tl.ms.snapshot().Files() {
		listed["metrics/"+fe.Path] = true
	}
	var left []string
	for _, e := range es {
		if !listed[e.Key] {
			left = append(left, e.Key)
		}
		delete(listed, e.Key)
	}
	if fmt.Sprint(left) != fmt.Sprint([]string{other}) || len(listed) != 0 {
		t.Fatalf("after recovery: unlisted %v (want only %s), listed files missing: %v", left, other, listed)
	}
	if ps, _ := tl.st.Unfinished(ctx, "metrics/"); len(ps) != 0 {
		t.Fatalf("unfinished writes left: %+v", ps)
	}
}

// hideFailing is a lake store whose renames to a replaced file's hidden
// name fail while fail is set (a full disk, a lost S3 request).
type hideFailing struct {
	lakestore.Store
	fail   atomic.Bool
	failed atomic.Int64
}

func (s *hideFailing) Rename(ctx context.Context, from, to string) error {
	if s.fail.Load() && strings.HasSuffix(to, ".replaced") {
		s.failed.Add(1)
		return fmt.Errorf("hiding %s: injected failure", from)
	}
	return s.Store.Rename(ctx, from, to)
}

// TestSoftStopLeavesDirectoryExact forces the window in which a reader of
// the lake's directory (pyarrow, DuckDB) sees a merged file beside the
// files it replaced: the merge is committed but hiding its inputs fails,
// and no compaction pass follows to try again before the process stops.
// After the soft stop the directory holds every event exactly once: a
// writer giving a partition back tidies it as recovery would.
func TestSoftStopLeavesDirectoryExact(t *testing.T) { eachLake(t, testSoftStopLeavesDirectoryExact) }

func testSoftStopLeavesDirectoryExact(t *testing.T, at lakeAt) {
	dir := t.TempDir()
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 2)}, nil)
	p.Lake.Roll = pipelines.LakeRoll{MaxRows: 100, MaxAge: pipelines.Duration(time.Hour)}
	// Passes only after flushes: none comes between the last failed
	// hiding and the stop.
	p.Lake.Compact = pipelines.Compact{MinFiles: 2, Interval: pipelines.Duration(time.Hour)}
	at.apply(p)
	br := openBroker(t, p, nil)
	st := &hideFailing{Store: openStore(t, p)}
	st.fail.Store(true)
	b, err := New(p, br, nil, Options{Logger: testLogger(t), Poll: 10 * time.Millisecond, Store: st, Owner: join(t, br)})
	if err != nil {
		t.Fatal(err)
	}
	stop := startBatch(t, b)
	var evs []event.Event
	for round := range 2 {
		// 100 events of one hour: a flush (max_rows), a file in the hour.
		for i := range 100 {
			evs = append(evs, testEvent("s", round*100+i, t0, time.Second))
		}
		appendEvents(t, br, "metrics", 2, evs[round*100:])
		waitLake(t, b, nil, "metrics", logEnds(t, br, "metrics"))
	}
	var m *manifest
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		m = b.manifestOf("metrics")
		if compacted(m) == 0 || len(m.Replaced) == 0 || st.failed.Load() == 0 {
			return fmt.Errorf("no merge with a failed hiding yet: %d compacted, %d replaced, %d failures", compacted(m), len(m.Replaced), st.failed.Load())
		}
		return nil
	})
	if errs := lakeLeftovers(st, m); len(errs) == 0 {
		t.Fatal("the merge's inputs are hidden already: the window was not forced")
	}
	st.fail.Store(false)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, err := range lakeLeftovers(st, readManifestOf(t, st)) {
		t.Error(err)
	}
	checkIndependent(t, at.topic(p, "metrics"), evs)
}

func readManifestOf(t *testing.T, st lakestore.Store) *manifest {
	t.Helper()
	m, err := readManifest(context.Background(), st, "metrics")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPartitioningChanges changes a topic's lake.partitioning twice, from
// daily to hourly to monthly, with files of each layout in the lake. Files
// keep the period they were written with and are merged only with files
// of the same period (their offset ranges speak of their own period);
// every event stays in the lake once, in reads as in batch results.
func TestPartitioningChanges(t *testing.T) {
	e := newEnvWith(t, func(p *pipelines.Pipeline) {
		p.Topics[0].Lake.Partitioning = pipelines.LakeDaily
		p.Lake.Roll.MaxRows = 300
		p.Lake.Compact.MinFiles = 2
		p.Lake.Compact.Interval = 0 // compaction below is driven by hand
	})
	compact := func() int {
		t.Helper()
		c := newCompactor(e.b.lakes["metrics"], testLogger(t), e.clk.Now, e.p.Lake.Compact, 0, e.b.metrics)
		n, err := c.compact(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	all := map[string]bool{}
	add := func(evs []event.Event) {
		t.Helper()
		e.add(evs)
		for _, ev := range evs {
			all[ev.ID] = true
		}
		if err := readSnapshot(e.b.lakes["metrics"], all); err != nil {
			t.Fatal(err)
		}
	}
	relayout := func(partitioning string) {
		t.Helper()
		if err := e.stop(); err != nil {
			t.Fatal(err)
		}
		e.p.Topics[0].Lake.Partitioning = partitioning
		e.open()
	}
	events := func(prefix string, n int, at time.Time, step time.Duration) []event.Event {
		var evs []event.Event
		for i := range n {
			evs = append(evs, testEvent(prefix, i, at, step))
		}
		return evs
	}
	check := func(stage string, want ...string) {
		t.Helper()
		got := paths(e.b.manifestOf("metrics").Files())
		ok := len(got) == len(want)
		for i := range want {
			ok = ok && strings.HasPrefix(got[i], want[i])
		}
		if !ok {
			t.Fatalf("%s: files %v, want them to start with %v", stage, got, want)
		}
	}

	// 40 hours (two days), then a few events on the fifth: the first two
	// days are closed, so merged whole.
	day := slices.Concat(events("d", 1200, t0, 2*time.Minute), events("e", 10, t0.Add(4*24*time.Hour), time.Minute))
	add(day[:600])
	add(day[600:])
	compact()
	check("daily", "dt=2026-01-01/c", "dt=2026-01-02/c", "dt=2026-01-05/")

	// Hourly: new files go to an hour of the second day; the day's file
	// stays whole, the hour's files merge.
	relayout(pipelines.LakeHourly)
	hour := events("h", 900, t0.Add(30*time.Hour), 4*time.Second)
	add(hour[:450])
	add(hour[450:])
	if n := compact(); n != 1 {
		t.Errorf("hourly: %d merges, want 1 (the hour's files)", n)
	}
	check("hourly", "dt=2026-01-01/c", "dt=2026-01-02/c", "dt=2026-01-02/hour=06/c", "dt=2026-01-05/")

	// Monthly: January's new files merge into one; the older files stay.
	relayout(pipelines.LakeMonthly)
	month := events("m", 1000, t0.Add(9*24*time.Hour), 10*time.Minute)
	add(month[:500])
	add(month[500:])
	if n := compact(); n != 1 {
		t.Errorf("monthly: %d merges, want 1", n)
	}
	check("monthly", "dt=2026-01-01/c", "month=2026-01/c", "dt=2026-01-02/c", "dt=2026-01-02/hour=06/c", "dt=2026-01-05/")
	m := e.b.manifestOf("metrics")
	if f := m.Files()[1]; f.Start != t0.UnixMicro() || f.End != time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC).UnixMicro() || f.Rows != int64(len(month)) {
		t.Errorf("monthly: %s holds [%d, %d) and %d rows, want January and %d", f.Path, f.Start, f.End, f.Rows, len(month))
	}
	// A pass more merges nothing, and a recompute reads every layout.
	if n := compact(); n != 0 {
		t.Errorf("monthly: %d more merges, want 0", n)
	}
	e.run("cpu_by_region", time.Time{}, time.Time{})
	rows, h := e.batchRows("cpu_by_region")
	sameRows(t, "over the three layouts", rows, independent(slices.Concat(day, hour, month), h))
}

func paths(fs []fileEntry) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Path)
	}
	return out
}

// TestCompactionTiers feeds one hour 60 flushes while it still gets events
// (a busy hour, or a month of a monthly topic; files of 50 rows stand for
// large ones) and compacts after each.
// Merging every flush's file into the hour's largest would rewrite each row
// about eleven times here (and ~1,400 times over a month's 8,640 flushes);
// leaving the much larger files out of the open hour's merges keeps it to a
// few, with no more than a few files in the hour meanwhile. Once the hour
// is closed it is one file, and every event is in the lake once.
func TestCompactionTiers(t *testing.T) {
	e := newEnvWith(t, func(p *pipelines.Pipeline) {
		p.Lake.Roll.MaxRows = 1_000_000
		p.Lake.Compact.MinFiles = 4
		p.Lake.Compact.Interval = 0 // compaction below is driven by hand
	})
	tl := e.b.lakes["metrics"]
	compact := func() {
		t.Helper()
		c := newCompactor(tl, testLogger(t), e.clk.Now, e.p.Lake.Compact, 0, e.b.metrics)
		c.settle = 0 // files of 50 rows stand for large ones
		if _, err := c.compact(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	const flushes, per = 60, 50
	var evs []event.Event
	for i := range flushes * per {
		evs = append(evs, testEvent("t", i, t0, time.Second)) // 50 minutes of hour 00
	}
	made := map[string]bool{}
	var rewritten int64
	most := 0
	for k := range flushes {
		e.add(evs[k*per : (k+1)*per])
		compact()
		m := e.b.manifestOf("metrics")
		for _, f := range m.Files() {
			if f.Compacted && !made[f.Path] {
				made[f.Path] = true
				rewritten += f.Rows
			}
		}
		if u := unsettled(m.Files(), 0); len(u) >= e.p.Lake.Compact.MinFiles {
			t.Fatalf("after flush %d: %d files the next merge would take, want fewer than %d", k+1, len(u), e.p.Lake.Compact.MinFiles)
		}
		most = max(most, len(m.Files()))
	}
	if got := float64(rewritten) / float64(len(evs)); got > 6 {
		t.Errorf("merges rewrote each row %.1f times on average, want at most 6", got)
	}
	if most > 8 {
		t.Errorf("the open hour held %d files at once, want at most 8", most)
	}
	t.Logf("%d flushes: rows rewritten %.2f times on average, at most %d files", flushes, float64(rewritten)/float64(len(evs)), most)

	// Closed (the events moved two hours on): all of it in one file.
	late := testEvent("u", 0, t0.Add(2*time.Hour), 0)
	e.add([]event.Event{late})
	compact()
	var hour []string
	for _, f := range e.b.manifestOf("metrics").Files() {
		if f.Start == t0.UnixMicro() {
			hour = append(hour, f.Path)
		}
	}
	if len(hour) != 1 {
		t.Fatalf("the closed hour holds %v, want one file", hour)
	}
	ids := map[string]bool{late.ID: true}
	for _, ev := range evs {
		ids[ev.ID] = true
	}
	if err := readSnapshot(tl, ids); err != nil {
		t.Fatal(err)
	}
}

// TestUnsettled: which files of an open period its next merge takes.
func TestUnsettled(t *testing.T) {
	cases := []struct {
		rows    []int64
		minRows int64
		want    []int64
	}{
		{nil, 0, nil},
		{[]int64{500}, 0, []int64{500}},
		{[]int64{300, 10, 80, 25}, 0, []int64{10}},              // each more than twice the smaller ones
		{[]int64{300, 10, 80, 25}, 100, []int64{10, 25, 80}},    // under 100 rows nothing waits
		{[]int64{150, 10, 30, 60}, 0, []int64{10, 30, 60, 150}}, // 150 <= 2 × 100: all of them
		{[]int64{70, 10, 10, 10}, 0, []int64{10, 10, 10}},       // 70 > 2 × 30 waits
		{[]int64{20, 10, 10}, 0, []int64{10, 10, 20}},
	}
	for _, c := range cases {
		var fs []fileEntry
		for i, r := range c.rows {
			fs = append(fs, fileEntry{Path: fmt.Sprintf("f%d", i), Rows: r})
		}
		var got []int64
		for _, f := range unsettled(fs, c.minRows) {
			got = append(got, f.Rows)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("unsettled(%v, %d) = %v, want %v", c.rows, c.minRows, got, c.want)
		}
	}
}

// listCounting is a lake store that counts its listings of the whole
// topic (recovery's).
type listCounting struct {
	lakestore.Store
	lists atomic.Int64
}

func (s *listCounting) List(ctx context.Context, prefix, delim string) ([]lakestore.Entry, error) {
	if delim == "" {
		s.lists.Add(1)
	}
	return s.Store.List(ctx, prefix, delim)
}

// TestRecoverPartitionsTogether: partitions whose recovery is asked for
// while one runs are recovered together, in one listing of the lake, and
// each gets its own outcome: a partition a later owner holds gets errLost
// and keeps its files, the others are tidied; an ask whose context ends
// while it waits returns at once with the context's error.
func TestRecoverPartitionsTogether(t *testing.T) {
	e := newEnvWith(t, func(p *pipelines.Pipeline) { p.Topics[0].Partitions = 4 })
	e.add([]event.Event{testEvent("e", 0, t0, time.Second)})
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tl := e.b.lakes["metrics"]
	st := &listCounting{Store: tl.st}
	tl.st = st
	hour := "metrics/" + periodPath(t0.UnixMicro(), hourMicros) + "/"
	for p := range 4 {
		if err := tl.st.WriteFile(ctx, hour+fmt.Sprintf("p%d-5-9.parquet", p), []byte("PAR1"), true); err != nil {
			t.Fatal(err)
		}
	}
	// The first recovery waits for the lake (held by a compaction pass,
	// say) while the others are asked for.
	tl.work.Lock()
	res := make([]chan error, 5)
	ask := func(i, part int, ctx context.Context, fence Fence) {
		res[i] = make(chan error, 1)
		go func() { res[i] <- tl.recoverPartition(ctx, testLogger(t), part, fence, false) }()
	}
	queued := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			tl.recoveries.mu.Lock()
			got, running := len(tl.recoveries.asks), tl.recoveries.running
			tl.recoveries.mu.Unlock()
			if running && got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d recoveries waiting (running %t), want %d", got, running, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	ask(0, 0, ctx, nil)
	queued(0)
	ask(1, 1, ctx, nil)
	ask(2, 2, ctx, nil)
	ask(3, 3, ctx, &fakeFence{lost: true})
	gone, cancel := context.WithCancel(ctx)
	ask(4, 0, gone, nil)
	queued(4)
	cancel()
	outcome := func(i int) error {
		t.Helper()
		select {
		case err := <-res[i]:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("recovery %d never returned", i)
			return nil
		}
	}
	// While the recovery under way still waits.
	if err := outcome(4); !errors.Is(err, context.Canceled) {
		t.Fatalf("ask with its context ended: %v, want context.Canceled", err)
	}
	tl.work.Unlock()
	errs := make([]error, 4)
	for i := range errs {
		errs[i] = outcome(i)
	}
	for i, err := range errs[:3] {
		if err != nil {
			t.Fatalf("partition %d: %v", i, err)
		}
	}
	if !errors.Is(errs[3], errLost) {
		t.Fatalf("partition 3, held by a later owner: %v, want errLost", errs[3])
	}
	if n := st.lists.Load(); n != 2 {
		t.Fatalf("%d listings of the lake for 4 partitions asked for while one ran, want 2", n)
	}
	es, err := tl.st.List(ctx, hour, "")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range es {
		left = append(left, strings.TrimPrefix(e.Key, hour))
	}
	listed := map[string]bool{}
	for _, fe := range tl.ms.snapshot().Files() {
		listed[path.Base(fe.Path)] = true
	}
	left = slices.DeleteFunc(left, func(name string) bool { return listed[name] })
	if fmt.Sprint(left) != "[p3-5-9.parquet]" {
		t.Fatalf("files no manifest lists after recovery: %v, want only partition 3's", left)
	}
}

// recoverPartitions is recoverOwned with its outcomes joined: what failed
// the recovery, then each partition found taken, in partition order.
func (tl *topicLake) recoverPartitions(ctx context.Context, log *slog.Logger, fences map[int]Fence) error {
	lost, err := tl.recoverOwned(ctx, log, fences, nil)
	errs := []error{err}
	for _, p := range slices.Sorted(maps.Keys(lost)) {
		errs = append(errs, lost[p])
	}
	return errors.Join(errs...)
}

// BenchmarkCompactionPass is the pass compaction makes after every flush,
// over a lake of 1,000 files and one of 100,000 (a closed period of one
// file each, so nothing is due), the two alternated. It reports each
// one's wall clock per pass and their ratio.
func BenchmarkCompactionPass(b *testing.B) {
	ctx := context.Background()
	h := t0.UnixMicro()
	open := func(n int) *compactor {
		p := testPipeline(b.TempDir(), []pipelines.Topic{testTopic("metrics", 1)}, nil)
		tl, err := openTopicLake(ctx, openStore(b, p), &p.Topics[0], time.Now, testLogger(b))
		if err != nil {
			b.Fatal(err)
		}
		adds := make([]fileEntry, n)
		for i := range adds {
			adds[i] = testFile(h+int64(i)*hourMicros, 0, int64(i), int64(i))
		}
		newest := h + int64(n+2)*hourMicros
		if _, err := tl.ms.commit(ctx, func(*manifest) (*delta, error) {
			return &delta{Add: adds, Partitions: []partitionState{{Partition: 0, Next: int64(n), Rows: int64(n), MaxTime: newest}}}, nil
		}); err != nil {
			b.Fatal(err)
		}
		m, err := newMetrics(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		return newCompactor(tl, testLogger(b), time.Now, pipelines.Compact{MinFiles: 2, Interval: pipelines.Duration(time.Hour)}, time.Hour, m)
	}
	lakes := [2]*compactor{open(1000), open(100_000)}
	alternateLakes(b, "pass", func(k int) {
		if merged, err := lakes[k].compact(ctx); err != nil || merged != 0 {
			b.Fatalf("%d merges, %v: nothing is due", merged, err)
		}
	})
}
