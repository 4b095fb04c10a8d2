package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
// directory of its event time, each file holding both partitions' rows
// and named after its first range.
func TestLakeWriter(t *testing.T) { eachLake(t, testLakeWriter) }

func testLakeWriter(t *testing.T, at lakeAt) {
	dir := t.TempDir()
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 2)}, nil)
	p.Lake.Compact.Interval = 0 // the files as the writer made them
	at.apply(p)
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
	for _, f := range m.Files() {
		kind := "p"
		if len(f.Ranges) > 1 {
			kind = "w"
		}
		// Written under a lease: the name carries its epoch.
		suffix := ""
		if e := m.partition(f.Ranges[0].Partition).Epoch; e > 0 {
			suffix = fmt.Sprintf("-e%d", e)
		}
		name := fmt.Sprintf("%s/%s%d-%d-%d%s.parquet", periodPath(f.Start, hourMicros), kind, f.Ranges[0].Partition, f.Ranges[0].First, f.Ranges[0].Last, suffix)
		if f.Path != name || f.End != f.Start+hourMicros || f.MinTime < f.Start || f.MaxTime >= f.End {
			t.Errorf("file %+v is not in its hour, or not named after its first range", f)
		}
		o, err := b.LakeStore().Open(context.Background(), "metrics/"+f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if o.Size() != f.Bytes {
			t.Errorf("%s: %d bytes, the manifest says %d", f.Path, o.Size(), f.Bytes)
		}
		o.Close()
	}
	if hs := m.Periods(); len(hs) != 3 {
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
	checkIndependent(t, at.topic(p, "metrics"), evs)
}

// TestLakeBackfill loads history the way a backfill does: ten days of
// events, shuffled within each day, arriving as fast as they are appended,
// with a lake buffer of 1 MiB (about a third of them). The lake catches up
// without max_age passing (the clock stands still: the end of the burst
// flushes), the buffer never holds much more than its bound, and once
// compaction has run every hour (or day, or month: the topic's
// partitioning) that the events have moved past is one file, holding every
// partition's rows. Every event is in the lake once, as pyarrow and DuckDB
// read it.
func TestLakeBackfill(t *testing.T) {
	for _, layout := range []string{pipelines.LakeHourly, pipelines.LakeDaily, pipelines.LakeMonthly} {
		t.Run(layout, func(t *testing.T) {
			eachLake(t, func(t *testing.T, at lakeAt) { testLakeBackfill(t, at, layout) })
		})
	}
}

func testLakeBackfill(t *testing.T, at lakeAt, layout string) {
	dir := t.TempDir()
	topic := testTopic("metrics", 4)
	topic.Lake.Partitioning = layout
	p := testPipeline(dir, []pipelines.Topic{topic}, nil)
	p.Lake.Roll = pipelines.LakeRoll{MaxRows: 1_000_000, MaxAge: pipelines.Duration(5 * time.Minute)}
	p.Lake.Buffer = 1 << 20
	at.apply(p)
	clk := fakeclock.New(t0.Add(30 * 24 * time.Hour))
	br := openBroker(t, p, clk.Now)
	b, err := New(p, br, nil, Options{Logger: testLogger(t), Now: clk.Now, Poll: 10 * time.Millisecond, Owner: join(t, br)})
	if err != nil {
		t.Fatal(err)
	}
	startBatch(t, b)
	const days, perDay = 10, 1200
	// Months apart enough that the older ones are closed (four months).
	gap := 24 * time.Hour
	if layout == pipelines.LakeMonthly {
		gap = 9 * 24 * time.Hour
	}
	var evs []event.Event
	r := rand.New(rand.NewPCG(1, 2))
	for d := range days {
		day := make([]event.Event, perDay)
		for i := range day {
			day[i] = testEvent("b", d*perDay+i, t0.Add(time.Duration(d)*gap), 72*time.Second-time.Duration(d))
		}
		r.Shuffle(len(day), func(i, j int) { day[i], day[j] = day[j], day[i] })
		evs = append(evs, day...)
	}
	for off := 0; off < len(evs); off += 400 {
		appendEvents(t, br, "metrics", 4, evs[off:off+400])
	}
	waitLake(t, b, nil, "metrics", logEnds(t, br, "metrics"))
	tw := b.writers["metrics"]
	if peak, limit := tw.budget.peak, int64(p.Lake.Buffer); peak > limit+4*maxBlock {
		t.Errorf("buffers held %d bytes at most, the bound is %d", peak, limit)
	}
	lay, depth := layoutOf(layout), 2
	if layout != pipelines.LakeHourly {
		depth = 1
	}
	newest := evs[0].Time
	for _, e := range evs {
		newest = max(newest, e.Time)
	}
	var m *manifest
	// A deadline, not a speed: merging some 250 hours on object storage
	// takes over a minute on a loaded 2-core machine.
	testenv.CheckFor(t, 3*time.Minute, 10*time.Millisecond, func() error {
		m = b.manifestOf("metrics")
		perPeriod := map[int64][]fileEntry{}
		for _, f := range m.Files() {
			perPeriod[f.Start] = append(perPeriod[f.Start], f)
		}
		for start, fs := range perPeriod {
			// A closed period (the events have moved a whole period past
			// it) is one file; an open one is merged at min_files files
			// besides those much larger.
			if len(fs) > 1 && lay.end(lay.end(start)) <= newest || len(unsettled(fs, settleRows)) >= p.Lake.Compact.MinFiles {
				return fmt.Errorf("period %s has %d files", time.UnixMicro(start).UTC(), len(fs))
			}
		}
		return nil
	})
	periods := map[int64]bool{}
	multi := 0
	for _, e := range evs {
		periods[lay.start(e.Time)] = true
	}
	if layout == pipelines.LakeMonthly && len(periods) != 4 {
		t.Fatalf("the events fall in %d months, want 4", len(periods))
	}
	for _, f := range m.Files() {
		if f.Start != lay.start(f.Start) || f.End != lay.end(f.Start) || !strings.HasPrefix(f.Path, lay.path(f.Start)+"/") || strings.Count(f.Path, "/") != depth {
			t.Errorf("file %s of [%d, %d) is not laid out %s", f.Path, f.Start, f.End, layout)
		}
		if len(f.Ranges) > 1 {
			multi++
		}
	}
	if multi < len(m.Files())/2 {
		t.Errorf("%d files (%d with several partitions) for %d periods", len(m.Files()), multi, len(periods))
	}
	t.Logf("%d events, %d periods, %d files, manifest version %d, peak buffer %d bytes", len(evs), len(periods), len(m.Files()), m.Version, tw.budget.peak)
	got := readLake(t, b, "metrics")
	if len(got) != len(evs) {
		t.Fatalf("lake holds %d events, want %d", len(got), len(evs))
	}
	// Every file, flushed or merged, holds its rows in event-time order,
	// ties by partition then offset, although they arrived shuffled.
	tl := b.lakes["metrics"]
	for _, fe := range m.Files() {
		var last struct {
			time int64
			part int32
			off  int64
		}
		n := 0
		err := tl.scanFile(context.Background(), fe, scanOptions{}, func(sb *scanBatch) error {
			for i, e := range sb.Events {
				p, o := sb.Parts[i], sb.Offsets[i]
				if n > 0 && cmp.Or(cmp.Compare(e.Time, last.time), cmp.Compare(p, last.part), cmp.Compare(o, last.off)) <= 0 {
					return fmt.Errorf("row %d (time %d, partition %d, offset %d) after (%d, %d, %d)", n, e.Time, p, o, last.time, last.part, last.off)
				}
				last.time, last.part, last.off = e.Time, p, o
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", fe.Path, err)
		}
	}
	checkIndependent(t, at.topic(p, "metrics"), evs)
}

// TestLakeSharedByTwoProcesses: two processes write one lake (a shared
// directory here; object storage in production), each the partitions it
// owns; when one stops, the other takes its partitions over from the
// manifest. Every event is in the lake once, and each partition's commits
// carry the epoch of the writer that made them.
func TestLakeSharedByTwoProcesses(t *testing.T) {
	natsURL := startNATS(t)
	dir := t.TempDir()
	p := testPipeline(dir, []pipelines.Topic{testTopic("metrics", 4)}, nil)
	p.Broker.URL = natsURL
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
	// The lake partitions each process writes, by node name.
	owned := func() (map[string][]int, error) {
		cl, err := br1.Cluster(context.Background())
		if err != nil {
			return nil, err
		}
		out := map[string][]int{}
		for _, n := range cl.Nodes {
			name, _, _ := strings.Cut(n.ID, "-")
			out[name] = n.Owns[lakeConsumer]
		}
		return out, nil
	}
	// The rule deals the four partitions two and two. Wait for that, not
	// only for both processes to write some: right after the two join,
	// one may take every partition from the other for a moment, and a
	// first half written then would leave the process stopped below
	// nothing to hand over.
	settled := func() error {
		o, err := owned()
		if err != nil {
			return err
		}
		if len(o["w1"]) != 2 || len(o["w2"]) != 2 {
			return fmt.Errorf("partitions written by process: %v, want two each", o)
		}
		return nil
	}
	testenv.CheckFor(t, 60*time.Second, 10*time.Millisecond, settled)
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
	testenv.CheckFor(t, 60*time.Second, 10*time.Millisecond, settled)
	o, err := owned()
	if err != nil {
		t.Fatal(err)
	}
	handed := o["w1"]

	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		evs = append(evs, testEvent("b", i, t0, time.Second))
	}
	appendEvents(t, br2, "metrics", 4, evs[2000:])
	waitLake(t, b2, nil, "metrics", logEnds(t, br2, "metrics"))
	wantEvents(t, readLake(t, b2, "metrics"), evs)
	// The partitions the stopped process wrote moved to the remaining one,
	// which wrote them under a new epoch.
	after := map[int]uint64{}
	for _, ps := range b2.manifestOf("metrics").Partitions {
		after[ps.Partition] = ps.Epoch
	}
	for _, part := range handed {
		if after[part] <= epochs[part] {
			t.Errorf("partition %d of the stopped process did not move to the remaining one: epochs %v then %v", part, epochs, after)
		}
	}
	_ = b1
}

// TestViewBatchSharedByProcesses: a view's batch runs in one process at a
// time; a process that only serves shows its result, another running the
// batch role refuses to recompute it (409) until the owner stops, then
// takes the view over from the shared result.
func TestViewBatchSharedByProcesses(t *testing.T) {
	natsURL := startNATS(t)
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 2)}, []pipelines.View{testView("cpu_by_region", "metrics")})
	p.Broker.URL = natsURL
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
