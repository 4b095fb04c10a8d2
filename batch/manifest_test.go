package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// eachStore runs f with a lake store in a directory and one on the
// development S3 server.
func eachStore(t *testing.T, f func(t *testing.T, st lakestore.Store)) {
	eachLake(t, func(t *testing.T, at lakeAt) {
		p := testPipeline(t.TempDir(), nil, nil)
		at.apply(p)
		f(t, openStore(t, p))
	})
}

func openMS(t testing.TB, st lakestore.Store) *manifestStore {
	t.Helper()
	ms, err := openManifestStore(context.Background(), st, "metrics", time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// testFile is a file of partition part holding [first, last] in the hour
// at h.
func testFile(h int64, part int, first, last int64) fileEntry {
	return fileEntry{Path: fmt.Sprintf("%s/p%d-%d-%d.parquet", periodPath(h, hourMicros), part, first, last), Start: h, End: h + hourMicros,
		Ranges: []offsetRange{{Partition: part, First: first, Last: last, Rows: 1}}, Rows: 1}
}

// addFile is a change adding a file of partition part for [next, next+n).
func addFile(h int64, part int, n int64) change {
	return func(m *manifest) (*delta, error) {
		ps := m.partition(part)
		f := testFile(h, part, ps.Next, ps.Next+n-1)
		ps.Next += n
		return &delta{Add: []fileEntry{f}, Partitions: []partitionState{ps}}, nil
	}
}

func TestManifestInvariants(t *testing.T) {
	eachStore(t, func(t *testing.T, st lakestore.Store) {
		ctx := context.Background()
		ms := openMS(t, st)
		h := t0.UnixMicro()
		if _, err := ms.commit(ctx, addFile(h, 0, 10)); err != nil {
			t.Fatal(err)
		}
		for name, ch := range map[string]change{
			"overlap": func(m *manifest) (*delta, error) {
				return &delta{Add: []fileEntry{testFile(h, 0, 5, 12)}, Partitions: []partitionState{{Partition: 0, Next: 13}}}, nil
			},
			"past next": func(m *manifest) (*delta, error) {
				return &delta{Add: []fileEntry{testFile(h+hourMicros, 0, 10, 19)}}, nil
			},
			"next going back": func(m *manifest) (*delta, error) {
				return &delta{Partitions: []partitionState{{Partition: 0, Next: 5}}}, nil
			},
			"removing a file that is not live": func(m *manifest) (*delta, error) {
				return &delta{Remove: []string{"dt=2026-01-01/hour=00/nothing.parquet"}}, nil
			},
			"a period longer than a month": func(m *manifest) (*delta, error) {
				f := testFile(h+hourMicros, 0, 10, 19)
				f.End = f.Start + longestPeriod + 1
				return &delta{Add: []fileEntry{f}, Partitions: []partitionState{{Partition: 0, Next: 20}}}, nil
			},
			"the same path twice": func(m *manifest) (*delta, error) {
				f := m.Files()[0]
				f.Ranges = []offsetRange{{Partition: 1, First: 0, Last: 0, Rows: 1}}
				return &delta{Add: []fileEntry{f}, Partitions: []partitionState{{Partition: 1, Next: 1}}}, nil
			},
		} {
			if _, err := ms.commit(ctx, ch); !errors.Is(err, errConflict) {
				t.Errorf("%s: %v", name, err)
			}
		}
		m, err := readManifest(ctx, st, "metrics")
		if err != nil || m.Version != 1 || len(m.Files()) != 1 || m.partition(0).Next != 10 {
			t.Fatalf("after refused commits: %+v %v", m, err)
		}
		// A damaged record is refused with its name.
		st.WriteFile(ctx, "metrics/_manifest/"+versionName(2)+".json", []byte(`{"format":2,"topic":"metrics","version":2,"add":[{"path":"x","start":0,"end":1,"ranges":[{"partition":0,"first":10,"last":15,"rows":1}],"rows":1}]}`), true)
		if _, err := readManifest(ctx, st, "metrics"); !errors.Is(err, ErrCorruptManifest) || !strings.Contains(err.Error(), versionName(2)) {
			t.Errorf("corrupt record: %v", err)
		}
	})
}

// TestManifestLog: a commit writes one record the size of its change,
// whatever the lake holds; checkpoints come every checkpointEvery commits
// (or when the records outgrow the checkpoint), and the records and
// checkpoints they make redundant go. Reading the log from scratch gives
// the manifest the writer holds.
func TestManifestLog(t *testing.T) {
	eachStore(t, func(t *testing.T, st lakestore.Store) {
		ctx := context.Background()
		ms := openMS(t, st)
		h := t0.UnixMicro()
		sizes := map[int64]int64{}
		const commits = 2*checkpointEvery + 30
		for i := range commits {
			m, err := ms.commit(ctx, addFile(h+int64(i%500)*hourMicros, i%4, 7))
			if err != nil {
				t.Fatal(err)
			}
			b, err := st.ReadFile(ctx, "metrics/_manifest/"+versionName(m.Version)+".json")
			if err != nil && m.Version > commits-checkpointEvery {
				t.Fatal(err)
			}
			sizes[m.Version] = int64(len(b))
		}
		// Records stay the size of one change while the lake grows.
		if first, last := sizes[commits-checkpointEvery+1], sizes[commits]; last > first+64 {
			t.Errorf("record of commit %d is %d bytes, of commit %d %d: commits grow with the lake", commits-checkpointEvery+1, first, commits, last)
		}
		es, err := st.List(ctx, "metrics/_manifest/", "")
		if err != nil {
			t.Fatal(err)
		}
		var ckpts []int64
		records := 0
		for _, e := range es {
			v, kind, ok := parseLogKey(e.Key)
			switch {
			case ok && kind == logCheckpoint:
				ckpts = append(ckpts, v)
			case ok:
				records++
			}
		}
		// Checkpoints at 100 and 200 (the older kept for readers part way
		// through it), and the records after 100.
		if fmt.Sprint(ckpts) != fmt.Sprint([]int64{checkpointEvery, 2 * checkpointEvery}) || records != commits-checkpointEvery {
			t.Errorf("log holds checkpoints %v and %d records", ckpts, records)
		}
		fresh, err := readManifest(ctx, st, "metrics")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(ms.local())
		got, _ := json.Marshal(fresh)
		if string(got) != string(want) {
			t.Errorf("manifest read from the log differs from the writer's:\n%s\n%s", got, want)
		}
		// Without the hint, the newest checkpoint is found by listing.
		st.Delete(ctx, "metrics/_manifest/"+lastCheckpoint)
		if again, err := readManifest(ctx, st, "metrics"); err != nil || again.Version != commits {
			t.Errorf("without the hint: version %v, %v", again, err)
		}
	})
}

// TestManifestWritersRace: several writers, each its own process's view
// of one lake (its own manifest store), commit to different partitions at
// once. Create-only records make every commit land exactly once, on top of
// all earlier ones: versions follow each other, nothing is lost.
func TestManifestWritersRace(t *testing.T) {
	eachStore(t, func(t *testing.T, st lakestore.Store) {
		ctx := context.Background()
		const writers, commits = 4, 15
		h := t0.UnixMicro()
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for w := range writers {
			ms := openMS(t, st)
			wg.Go(func() {
				for range commits {
					if _, err := ms.commit(ctx, addFile(h, w, 3)); err != nil {
						errs[w] = err
						return
					}
				}
			})
		}
		wg.Wait()
		for w, err := range errs {
			if err != nil {
				t.Fatalf("writer %d: %v", w, err)
			}
		}
		m, err := readManifest(ctx, st, "metrics")
		if err != nil {
			t.Fatal(err)
		}
		if m.Version != writers*commits || len(m.Files()) != writers*commits {
			t.Fatalf("version %d with %d files, want %d", m.Version, len(m.Files()), writers*commits)
		}
		for w := range writers {
			if n := m.partition(w).Next; n != 3*commits {
				t.Errorf("partition %d at %d, want %d", w, n, 3*commits)
			}
		}
	})
}

// fakeFence is a lease held at an epoch, valid until lost.
type fakeFence struct {
	epoch uint64
	lost  bool
}

func (f *fakeFence) Epoch() uint64 { return f.epoch }
func (f *fakeFence) Valid() bool   { return !f.lost }

// TestManifestFencing: once a writer of a higher epoch committed a
// partition, a writer of a lower one (which does not know yet that it
// lost the partition) cannot commit it, on whichever version it tries.
func TestManifestFencing(t *testing.T) {
	eachStore(t, func(t *testing.T, st lakestore.Store) {
		ctx := context.Background()
		old, cur := openMS(t, st), openMS(t, st)
		h := t0.UnixMicro()
		fenced := func(f Fence, ms *manifestStore) change {
			return func(m *manifest) (*delta, error) {
				ps := m.partition(0)
				if err := fenced(ps, f, "metrics"); err != nil {
					return nil, err
				}
				d, err := addFile(h, 0, 5)(m)
				if err == nil {
					d.Partitions[0].Epoch = f.Epoch()
				}
				return d, err
			}
		}
		e1, e2 := &fakeFence{epoch: 1}, &fakeFence{epoch: 2}
		if _, err := old.commit(ctx, fenced(e1, old)); err != nil {
			t.Fatal(err)
		}
		if _, err := cur.commit(ctx, fenced(e2, cur)); err != nil {
			t.Fatal(err)
		}
		if _, err := old.commit(ctx, fenced(e1, old)); !errors.Is(err, errLost) {
			t.Fatalf("stale writer's commit: %v", err)
		}
		e2.lost = true
		if _, err := cur.commit(ctx, fenced(e2, cur)); !errors.Is(err, errLost) {
			t.Fatalf("commit after the lease was lost: %v", err)
		}
		if m, _ := readManifest(ctx, st, "metrics"); m.partition(0).Next != 10 || m.partition(0).Epoch != 2 {
			t.Fatalf("partition 0: %+v", m.partition(0))
		}
	})
}

// TestManifestMigration: a lake whose manifest is in format 1 (one
// _manifest.json) is taken over: its files and positions become the first
// checkpoint, and the old file goes.
func TestManifestMigration(t *testing.T) {
	eachStore(t, func(t *testing.T, st lakestore.Store) {
		ctx := context.Background()
		v1 := `{"format": 1, "topic": "metrics", "version": 42,
 "partitions": [{"partition": 0, "next": 1800, "ingest": 5}, {"partition": 1, "next": 10, "ingest": 6}],
 "files": [
  {"path": "dt=2026-01-01/hour=00/p0-1200-1799.parquet", "hour": 1767225600000000, "partition": 0, "first": 1200, "last": 1799, "rows": 412, "bytes": 9120, "crc32c": 2914631877, "min_time": 1767225600500000, "max_time": 1767229199000000, "added": 42},
  {"path": "dt=2026-01-01/hour=00/p1-0-9.parquet", "hour": 1767225600000000, "partition": 1, "first": 0, "last": 9, "rows": 10, "bytes": 100, "crc32c": 1, "min_time": 1767225600000000, "max_time": 1767225700000000, "added": 40, "compacted": true}],
 "replaced": [{"path": "dt=2026-01-01/hour=00/p0-0-599.parquet", "version": 40, "at": 1767229300}]}`
		if err := st.WriteFile(ctx, "metrics/_manifest.json", []byte(v1), true); err != nil {
			t.Fatal(err)
		}
		m, err := readManifest(ctx, st, "metrics")
		if err != nil {
			t.Fatal(err)
		}
		if m.Version != 42 || len(m.Files()) != 2 || len(m.Replaced) != 1 || m.partition(0).Next != 1800 ||
			m.partition(0).Rows != 412 || m.partition(0).MaxTime != 1767229199000000 {
			t.Fatalf("migrated: %+v", m)
		}
		f := m.Files()[0]
		if f.Start != 1767225600000000 || f.End != f.Start+hourMicros || len(f.Ranges) != 1 || f.Ranges[0] != (offsetRange{Partition: 0, First: 1200, Last: 1799, Rows: 412}) {
			t.Fatalf("migrated file: %+v", f)
		}
		if _, err := st.ReadFile(ctx, "metrics/_manifest.json"); err == nil {
			t.Error("the format-1 manifest is still there")
		}
		ms := openMS(t, st)
		if m, err := ms.commit(ctx, addFile(t0.UnixMicro()+hourMicros, 1, 5)); err != nil || m.Version != 43 {
			t.Fatalf("commit after the migration: %v %v", m, err)
		}
	})
}

func FuzzManifestRecord(f *testing.F) {
	f.Add([]byte(`{"format":2,"topic":"t","version":1,"add":[{"path":"dt=2026-01-01/hour=00/p0-0-9.parquet","start":0,"end":3600000000,"ranges":[{"partition":0,"first":0,"last":9,"rows":10}],"rows":10}],"partitions":[{"partition":0,"next":10}]}`))
	f.Add([]byte(`{"format":2,"topic":"t","version":1,"remove":["a"],"purge":["b"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d delta
		if json.Unmarshal(data, &d) != nil {
			return
		}
		m := &manifest{Format: manifestFormat, Topic: "t"}
		if next, err := apply(m, &d); err == nil {
			// What apply accepts holds the invariants.
			if err := next.check(); err != nil {
				t.Fatalf("apply accepted %s, which breaks the invariants: %v", data, err)
			}
		}
	})
}

// FuzzReadViewFile reads a view's batch file as it may be found on disk
// (truncated, edited, of another version): no panic, and what reads is
// written and read back the same.
func FuzzReadViewFile(f *testing.F) {
	v := testView("v", "metrics")
	topic := testTopic("metrics", 1)
	st := newViewState()
	st.horizon, st.hasHorizon, st.lakeVersion = t0.UnixMicro(), true, 7
	st.replace(minTime, maxTime, []viewrow.Row{{Start: 0, End: 60e6, Group: []event.Value{{S: "eu", Valid: true}}, Aggs: []event.Value{
		{I: 3, Valid: true}, {F: math.Inf(1), Valid: true}, {F: 0.5, Valid: true}, {}, {I: -5, Valid: true}, {I: 0, Valid: true}}}}, nil)
	data, err := encodeViewFile(&v, &topic, st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, viewFileName), data, 0o644)
		got, err := readViewFile(dir, &v, &topic)
		if err != nil {
			return
		}
		again := t.TempDir()
		if err := writeViewFile(again, &v, &topic, got); err != nil {
			t.Fatalf("a view file that reads does not write: %v", err)
		}
		back, err := readViewFile(again, &v, &topic)
		if err != nil {
			t.Fatalf("a view file written from one that read does not read: %v", err)
		}
		if back.horizon != got.horizon || back.hasHorizon != got.hasHorizon || back.lakeVersion != got.lakeVersion || len(back.rows) != len(got.rows) {
			t.Fatalf("read %+v, after writing it %+v", got, back)
		}
	})
}

func TestViewFileRoundTrip(t *testing.T) {
	v := testView("v", "metrics")
	topic := testTopic("metrics", 1)
	st := newViewState()
	st.horizon, st.hasHorizon, st.lakeVersion = t0.UnixMicro(), true, 7
	rows := []viewrow.Row{
		{Start: 0, End: 60e6, Group: []event.Value{{S: "", Valid: true}}, Aggs: []event.Value{
			{I: 3, Valid: true}, {F: math.Inf(1), Valid: true}, {F: math.NaN(), Valid: true}, {}, {I: -5, Valid: true}, {I: 0, Valid: true}}},
		{Start: 60e6, End: 120e6, Group: []event.Value{{}}, Aggs: []event.Value{
			{I: 1, Valid: true}, {F: 0, Valid: true}, {F: -1.5, Valid: true}, {F: 2.25, Valid: true}, {I: 0, Valid: true}, {I: 1, Valid: true}}},
	}
	st.replace(minTime, maxTime, rows, nil)
	dir := t.TempDir()
	data, err := encodeViewFile(&v, &topic, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeViewData(dir, data); err != nil {
		t.Fatal(err)
	}
	got, err := readViewFile(dir, &v, &topic)
	if err != nil {
		t.Fatal(err)
	}
	if got.horizon != st.horizon || !got.hasHorizon || got.lakeVersion != 7 || len(got.rows) != 2 {
		t.Fatalf("got %+v", got)
	}
	for i, r := range got.sortedRows() {
		w := st.sortedRows()[i]
		if event.GroupKey(r.Group) != event.GroupKey(w.Group) || r.Start != w.Start || r.End != w.End {
			t.Fatalf("row %d: %+v, want %+v", i, r, w)
		}
		for j := range r.Aggs {
			a, b := r.Aggs[j], w.Aggs[j]
			if a.Valid != b.Valid || a.I != b.I || !(a.F == b.F || math.IsNaN(a.F) && math.IsNaN(b.F)) {
				t.Fatalf("row %d agg %d: %+v, want %+v", i, j, a, b)
			}
		}
	}
	// A changed view definition drops the old rows.
	v.GroupBy = []string{"host"}
	if got, err := readViewFile(dir, &v, &topic); err != nil || got.hasHorizon || len(got.rows) != 0 {
		t.Fatalf("changed view: %+v %v", got, err)
	}
}

// TestViewFileFormat1: a view file written by earlier builds (format 1:
// timestamps as UTC µs, bools as 0 and 1) is read, and written again in
// format 2, the exact JSON form.
func TestViewFileFormat1(t *testing.T) {
	topic := testTopic("metrics", 1)
	topic.Schema = append(topic.Schema, event.Field{Name: "ok", Type: event.TypeBool})
	v := testView("v", "metrics")
	v.GroupBy = []string{"ok"}
	v.Aggregates = pipelines.Aggregates{
		{Name: "events", Func: "count"},
		{Name: "newest", Func: "max", Field: "ts"},
		{Name: "top", Func: "max", Field: "cpu"},
	}
	dir := t.TempDir()
	old := `{"format":1,"view":"v","horizon":120000000,"lake_version":3,` +
		`"columns":["window_start","window_end","ok","events","newest","top"],"rows":[` +
		`[0,60000000,1,2,1500,"+Inf"],[60000000,120000000,0,1,null,"NaN"],[60000000,120000000,null,4,-7,2.5]]}`
	if err := os.WriteFile(filepath.Join(dir, viewFileName), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := readViewFile(dir, &v, &topic)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range st.sortedRows() {
		got = append(got, fmt.Sprintf("%d-%d %v %v", r.Start, r.End, r.Group, r.Aggs))
	}
	want := []string{
		"0-60000000 [{ 1 0 true}] [{ 2 0 true} { 1500 0 true} { 0 +Inf true}]",
		"60000000-120000000 [{ 0 0 false}] [{ 4 0 true} { -7 0 true} { 0 2.5 true}]",
		"60000000-120000000 [{ 0 0 true}] [{ 1 0 true} { 0 0 false} { 0 NaN true}]",
	}
	if !slices.Equal(got, want) || st.horizon != 120e6 || !st.hasHorizon || st.lakeVersion != 3 {
		t.Fatalf("format 1 file read as %q (horizon %d, lake version %d), want %q", got, st.horizon, st.lakeVersion, want)
	}
	data, err := encodeViewFile(&v, &topic, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeViewData(dir, data); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, viewFileName))
	if err != nil {
		t.Fatal(err)
	}
	wantFile := `{"format":2,"view":"v","horizon":120000000,"lake_version":3,` +
		`"columns":["window_start","window_end","ok","events","newest","top"],"rows":[` +
		`["1970-01-01T00:00:00.000000Z","1970-01-01T00:01:00.000000Z",true,2,"1970-01-01T00:00:00.001500Z","+Inf"],` +
		`["1970-01-01T00:01:00.000000Z","1970-01-01T00:02:00.000000Z",null,4,"1969-12-31T23:59:59.999993Z",2.5],` +
		`["1970-01-01T00:01:00.000000Z","1970-01-01T00:02:00.000000Z",false,1,null,"NaN"]]}`
	if string(b) != wantFile {
		t.Fatalf("view file\n%s\nwant\n%s", b, wantFile)
	}
	again, err := readViewFile(dir, &v, &topic)
	if err != nil || len(again.rows) != 3 {
		t.Fatalf("format 2 file read back: %d rows, %v", len(again.rows), err)
	}
}

// writeViewFile encodes st and stores it in dir, as a run does before it
// publishes the file.
func writeViewFile(dir string, v *pipelines.View, from *pipelines.Topic, st *viewState) error {
	data, err := encodeViewFile(v, from, st)
	if err != nil {
		return err
	}
	return writeViewData(dir, data)
}

// TestLayouts checks each partitioning's periods at their edges: a period
// holds its start and not its end, consecutive periods are numbered
// consecutively (compaction's shards take turns by the number), and a
// file's directory gives its period back, for months of every length,
// the turn of a year, times before 1970 and the first and last years an
// event may have.
func TestLayouts(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1969, 3, 15, 0, 0, 0, 0, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	}
	cases := []struct {
		partitioning string
		period       func(time.Time) (time.Time, time.Time)
		dir          func(time.Time) string
	}{
		{pipelines.LakeHourly, func(t time.Time) (time.Time, time.Time) {
			s := t.Truncate(time.Hour)
			return s, s.Add(time.Hour)
		}, func(t time.Time) string { return t.Format("dt=2006-01-02/hour=15") }},
		{pipelines.LakeDaily, func(t time.Time) (time.Time, time.Time) {
			s := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
			return s, s.AddDate(0, 0, 1)
		}, func(t time.Time) string { return t.Format("dt=2006-01-02") }},
		{pipelines.LakeMonthly, func(t time.Time) (time.Time, time.Time) {
			s := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
			return s, s.AddDate(0, 1, 0)
		}, func(t time.Time) string { return t.Format("month=2006-01") }},
	}
	for _, c := range cases {
		l := layoutOf(c.partitioning)
		for _, tm := range times {
			wantStart, wantEnd := c.period(tm)
			start := l.start(tm.UnixMicro())
			if start != wantStart.UnixMicro() || l.end(start) != wantEnd.UnixMicro() {
				t.Errorf("%s: %s is in [%s, %s), want [%s, %s)", c.partitioning, tm, time.UnixMicro(start).UTC(), time.UnixMicro(l.end(start)).UTC(), wantStart, wantEnd)
			}
			if l.start(l.end(start)) != l.end(start) || l.start(l.end(start)-1) != start {
				t.Errorf("%s: the period of %s does not end where the next begins", c.partitioning, tm)
			}
			if l.seq(l.end(start)) != l.seq(start)+1 {
				t.Errorf("%s: periods at %s numbered %d then %d", c.partitioning, tm, l.seq(start), l.seq(l.end(start)))
			}
			dir := l.path(start)
			if dir != c.dir(wantStart) {
				t.Errorf("%s: directory of %s is %s, want %s", c.partitioning, tm, dir, c.dir(wantStart))
			}
			if got, ok := periodOfPath(dir + "/c1.parquet"); !ok || got != start {
				t.Errorf("%s: %s/c1.parquet gives %d %v, want %d", c.partitioning, dir, got, ok, start)
			}
		}
	}
	for _, bad := range []string{"month=2026-13/c1.parquet", "month=2026/c1.parquet", "month=2026-01", "dt=2026-01/c1.parquet", "hour=01/c1.parquet"} {
		if _, ok := periodOfPath(bad); ok {
			t.Errorf("%s read as a period's file", bad)
		}
	}
}
