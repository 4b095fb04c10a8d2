package batch

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TestLakeRetention: a topic whose lake keeps three days. A compaction
// pass takes out the files of the periods that ended three days ago or
// longer (and only those), hides them at once and deletes them after the
// grace; a recompute asked for the whole range then recomputes only the
// windows still held whole (late events included) and leaves the older
// windows' rows as they were, saying so.
func TestLakeRetention(t *testing.T) { eachLake(t, testLakeRetention) }

func testLakeRetention(t *testing.T, at lakeAt) {
	const keep = 72 * time.Hour
	e := newEnvWith(t, func(p *pipelines.Pipeline) {
		at.apply(p)
		p.Topics[0].Lake.Retention = pipelines.Duration(keep)
		p.Lake.Compact.Interval = 0 // compaction below is driven by hand
	})
	tl := e.b.lakes["metrics"]
	const grace = time.Hour
	compact := func() {
		t.Helper()
		c := newCompactor(tl, testLogger(t), e.clk.Now, e.p.Lake.Compact, grace, e.b.metrics)
		if _, err := c.compact(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	events := func(prefix string, n int, at time.Time) []event.Event {
		var evs []event.Event
		for i := range n {
			evs = append(evs, testEvent(prefix, i, at, 2*time.Minute))
		}
		return evs
	}
	old := events("old", 300, t0)                        // day 1, 00:00–10:00
	mid := events("mid", 300, t0.Add(4*24*time.Hour))    // day 5
	recent := events("new", 300, t0.Add(5*24*time.Hour)) // day 6
	e.add(old)
	e.add(mid)
	e.add(recent)
	e.run("cpu_by_region", time.Time{}, time.Time{})
	rows, h := e.batchRows("cpu_by_region")
	all := slices.Concat(old, mid, recent)
	sameRows(t, "before", rows, independent(all, h))
	var oldFiles []string
	for _, f := range e.b.manifestOf("metrics").Files() {
		if f.Start < t0.Add(24*time.Hour).UnixMicro() {
			oldFiles = append(oldFiles, f.Path)
		}
	}
	var before api.Stats
	e.b.AddStats(&before)
	if ls := before.Batch.Lake[0]; ls.OldestPeriod == nil || !ls.OldestPeriod.Equal(t0) || ls.ExpiredFiles != 0 {
		t.Errorf("stats before %+v: want the oldest period day 1, nothing expired", ls)
	}
	if len(oldFiles) < 10 {
		// One an hour at least (a flush may write each partition's apart).
		t.Fatalf("%d files of the first day (%v), want one an hour at least", len(oldFiles), oldFiles)
	}

	// A week on, day 5 at 00:00 is three days ago: the first day's periods
	// are out, day 5's and day 6's stay.
	e.clk.Set(t0.Add(7 * 24 * time.Hour))
	compact()
	m := e.b.manifestOf("metrics")
	for _, f := range m.Files() {
		if f.Start < t0.Add(4*24*time.Hour).UnixMicro() {
			t.Errorf("%s (period from %s) is still in the lake", f.Path, time.UnixMicro(f.Start).UTC())
		}
	}
	held := map[string]bool{}
	for _, ev := range slices.Concat(mid, recent) {
		held[ev.ID] = true
	}
	if err := readSnapshot(tl, held); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(e.b.metrics.expired.WithLabelValues("metrics")); got != float64(len(oldFiles)) {
		t.Errorf("lambdaflow_lake_expired_files_total %v, want %d", got, len(oldFiles))
	}
	var stats api.Stats
	e.b.AddStats(&stats)
	if ls := stats.Batch.Lake[0]; ls.ExpiredFiles != uint64(len(oldFiles)) || ls.OldestPeriod == nil || !ls.OldestPeriod.Equal(t0.Add(4*24*time.Hour)) {
		t.Errorf("stats %+v (oldest %v): want %d files expired, the oldest period day 5", ls, ls.OldestPeriod, len(oldFiles))
	}
	keys := func() []string {
		t.Helper()
		entries, err := tl.st.List(context.Background(), tl.key(""), "")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, en := range entries {
			out = append(out, en.Key)
		}
		return out
	}
	for _, p := range oldFiles {
		k := tl.key(p)
		if ks := keys(); slices.Contains(ks, k) || !slices.Contains(ks, replacedName(k)) {
			t.Errorf("%s: within the grace it is hidden, not gone: keys %v", p, ks)
		}
	}

	// Late events of day 5, then a recompute asked for everything: day 5
	// and 6 are recomputed, the first day's windows keep their rows.
	late := events("late", 20, t0.Add(4*24*time.Hour+time.Hour))
	e.add(late)
	st := e.run("cpu_by_region", t0, t0.Add(7*24*time.Hour))
	if !strings.Contains(st.Note, "topics[].lake.retention") {
		t.Errorf("job note %q does not say why the first day was not recomputed", st.Note)
	}
	rows, h = e.batchRows("cpu_by_region")
	sameRows(t, "after", rows, independent(slices.Concat(all, late), h))

	// Past the grace the first day's files are gone from the store.
	e.clk.Set(t0.Add(7*24*time.Hour + 2*grace))
	compact()
	ks := keys()
	for _, p := range oldFiles {
		if k := tl.key(p); slices.Contains(ks, k) || slices.Contains(ks, replacedName(k)) {
			t.Errorf("%s is still in the store after the grace", p)
		}
	}
}
