package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/fakeclock"
	"github.com/lambdaflow/lambdaflow/internal/testenv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
	"github.com/lambdaflow/lambdaflow/serving"
)

// env is a pipeline with one topic and one view, a broker, a serving
// store and a batch layer, all on one fake clock.
type env struct {
	t     *testing.T
	p     *pipelines.Pipeline
	clk   *fakeclock.Clock
	br    *broker.Broker
	store *serving.Store
	b     *Batch
	stop  func() error
	evs   []event.Event
	node  *broker.Node
	// reg is the registry of the batch layer last opened.
	reg *prometheus.Registry
}

// owner is the env's one node on the log, for every batch layer it opens
// (as one process restarted).
func (e *env) owner() *broker.Node {
	if e.node == nil {
		e.node = join(e.t, e.br)
	}
	return e.node
}

func newEnv(t *testing.T, views ...pipelines.View) *env {
	t.Helper()
	return newEnvWith(t, nil, views...)
}

// newEnvWith is newEnv with tweak applied to the pipeline first.
func newEnvWith(t *testing.T, tweak func(*pipelines.Pipeline), views ...pipelines.View) *env {
	t.Helper()
	if len(views) == 0 {
		views = []pipelines.View{testView("cpu_by_region", "metrics")}
	}
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 2)}, views)
	if tweak != nil {
		tweak(p)
	}
	e := &env{t: t, p: p, clk: fakeclock.New(t0.Add(3 * time.Hour))}
	e.br = openBroker(t, p, e.clk.Now)
	e.store = serving.NewStore(p)
	e.open()
	return e
}

// open (re)builds the batch layer on the same directories and runs it.
func (e *env) open() {
	e.t.Helper()
	e.reg = prometheus.NewRegistry()
	b, err := New(e.p, e.br, e.store, Options{Logger: testLogger(e.t), Now: e.clk.Now, Registerer: e.reg, Poll: 5 * time.Millisecond, Owner: e.owner()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.b = b
	e.stop = startBatch(e.t, b)
}

// add appends events and waits until the lake holds them.
func (e *env) add(evs []event.Event) {
	e.t.Helper()
	appendEvents(e.t, e.br, "metrics", 2, evs)
	e.evs = append(e.evs, evs...)
	// Moving the clock closes open files (max_age); moving it back keeps
	// the test's notion of "now".
	now := e.clk.Now()
	waitLake(e.t, e.b, e.clk, "metrics", logEnds(e.t, e.br, "metrics"))
	e.clk.Set(now)
}

func (e *env) run(view string, from, to time.Time) api.JobStatus {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := e.b.recomputeWait(ctx, view, from, to, nil)
	if err != nil {
		e.t.Fatalf("job: %v", err)
	}
	return s
}

// windowRow is a view row in comparable form.
type windowRow struct {
	start  int64
	region string
	aggs   []event.Value
}

func (r windowRow) String() string {
	return fmt.Sprintf("%s %s %v", time.UnixMicro(r.start).UTC().Format(time.TimeOnly), r.region, r.aggs)
}

// independent computes testView over events directly: count, avg, max and
// min of cpu, sum of bytes, distinct hosts, per region and minute, for
// events with cpu >= 0, windows ending at or before horizon.
func independent(evs []event.Event, horizon int64) []windowRow {
	type acc struct {
		n, sumB    int64
		sumC       float64
		nC         int64
		maxC, minC float64
		hosts      map[string]bool
	}
	m := map[[2]any]*acc{}
	const minute = int64(time.Minute / time.Microsecond)
	for _, e := range evs {
		if !e.Values[3].Valid || e.Values[3].F < 0 {
			continue
		}
		start := e.Time - ((e.Time%minute)+minute)%minute
		if start+minute > horizon {
			continue
		}
		k := [2]any{start, e.Values[2].S}
		a := m[k]
		if a == nil {
			a = &acc{maxC: math.Inf(-1), minC: math.Inf(1), hosts: map[string]bool{}}
			m[k] = a
		}
		a.n++
		a.sumC += e.Values[3].F
		a.nC++
		a.maxC = max(a.maxC, e.Values[3].F)
		a.minC = min(a.minC, e.Values[3].F)
		if e.Values[4].Valid {
			a.sumB += e.Values[4].I
		}
		a.hosts[e.Values[1].S] = true
	}
	var out []windowRow
	for k, a := range m {
		out = append(out, windowRow{start: k[0].(int64), region: k[1].(string), aggs: []event.Value{
			{I: a.n, Valid: true}, {F: a.sumC / float64(a.nC), Valid: true}, {F: a.maxC, Valid: true},
			{F: a.minC, Valid: true}, {I: a.sumB, Valid: true}, {I: int64(len(a.hosts)), Valid: true},
		}})
	}
	sortRows(out)
	return out
}

// streaming runs the view's plan over events one at a time, per
// partition, then merges the partitions' states, as the speed layer does.
func streaming(t *testing.T, p *pipelines.Pipeline, view string, evs []event.Event, horizon int64) []windowRow {
	v := p.ViewByName(view)
	pl, err := plan.Compile(v, p.TopicByName(v.From))
	if err != nil {
		t.Fatal(err)
	}
	type wk struct {
		start int64
		key   string
	}
	parts := [2]map[wk]*aggregate.State{{}, {}}
	for _, e := range evs {
		if ok, err := pl.Match(&e); err != nil || !ok {
			continue
		}
		part := int(e.Values[1].S[len(e.Values[1].S)-1]-'0') % 2
		key := string(pl.Key(&e, nil))
		for _, w := range pl.Windows(e.Time, nil) {
			k := wk{w.Start, key}
			st := parts[part][k]
			if st == nil {
				st = pl.NewState()
				parts[part][k] = st
			}
			pl.Update(st, &e)
		}
	}
	merged := map[wk]*aggregate.State{}
	for _, m := range parts {
		for k, st := range m {
			if merged[k] == nil {
				merged[k] = pl.NewState()
			}
			pl.Merge(merged[k], st)
		}
	}
	var out []windowRow
	size := int64(v.Window.Size.D() / time.Microsecond)
	for k, st := range merged {
		if k.start+size > horizon {
			continue
		}
		g, err := pl.DecodeKey([]byte(k.key))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, windowRow{start: k.start, region: g[0].S, aggs: pl.Finalize(st)})
	}
	sortRows(out)
	return out
}

func sortRows(rs []windowRow) {
	slices.SortFunc(rs, func(a, b windowRow) int {
		if a.start != b.start {
			return cmp.Compare(a.start, b.start)
		}
		return strings.Compare(a.region, b.region)
	})
}

// batchRows returns the store's batch rows.
func (e *env) batchRows(view string) ([]windowRow, int64) {
	rows, h, ok, _ := e.store.Query(view, serving.Filter{})
	if !ok {
		e.t.Fatal("no horizon")
	}
	var out []windowRow
	for _, r := range rows {
		if r.Layer != viewrow.LayerBatch {
			continue
		}
		out = append(out, windowRow{start: r.Start, region: r.Group[0].S, aggs: r.Aggs})
	}
	sortRows(out)
	return out, h
}

func sameRows(t *testing.T, what string, got, want []windowRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		ok := g.start == w.start && g.region == w.region && len(g.aggs) == len(w.aggs)
		for j := 0; ok && j < len(g.aggs); j++ {
			a, b := g.aggs[j], w.aggs[j]
			ok = a.Valid == b.Valid && a.I == b.I && a.S == b.S && math.Abs(a.F-b.F) <= 1e-9*math.Max(1, math.Abs(b.F))
		}
		if !ok {
			t.Fatalf("%s: row %d\ngot  %v\nwant %v", what, i, g, w)
		}
	}
}

// TestRecomputeEqualsIndependent: a batch run over the lake gives the
// windows an independent computation gives, and those the plan gives run
// event by event on the stream, partition by partition, then merged.
func TestRecomputeEqualsIndependent(t *testing.T) {
	e := newEnv(t)
	var evs []event.Event
	for i := range 4000 {
		evs = append(evs, testEvent("e", i, t0, 2*time.Second)) // 2h13m
	}
	e.add(evs)
	s := e.run("cpu_by_region", time.Time{}, time.Time{})
	if s.State != api.JobSucceeded || s.Rows != int64(len(evs)) || s.Total != 3 || s.Done != 3 {
		t.Fatalf("job %+v", s)
	}
	got, h := e.batchRows("cpu_by_region")
	// The lake's watermark is its newest event time; windows closed 30s
	// (lateness) before it.
	if want := evs[len(evs)-1].Time - (30 * time.Second).Microseconds(); h != want {
		t.Fatalf("horizon %v, want %v", time.UnixMicro(h), time.UnixMicro(want))
	}
	sameRows(t, "batch vs independent", got, independent(evs, h))
	sameRows(t, "batch vs streaming plan", got, streaming(t, e.p, "cpu_by_region", evs, h))
	if s.Windows != len(got) {
		t.Errorf("job says %d windows, store has %d", s.Windows, len(got))
	}
	checkDuckDB(t, lakeAt{}.topic(e.p, "metrics"), got)

	// The batch view survives a restart: reloaded into a fresh store.
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	e.store = serving.NewStore(e.p)
	e.open()
	again, h2 := e.batchRows("cpu_by_region")
	if h2 != h {
		t.Fatalf("horizon after restart %d, want %d", h2, h)
	}
	sameRows(t, "after restart", again, got)
}

// TestLateEventsCorrected: events that arrive after their window closed
// (in the speed layer and in the batch view) are in the view after the
// next run, which recomputes only the hours that got them and the windows
// closed since; the corrections reach the view's log topic too.
func TestLateEventsCorrected(t *testing.T) {
	e := newEnv(t)
	var evs []event.Event
	for i := range 2000 {
		evs = append(evs, testEvent("e", i, t0, 3*time.Second)) // 1h40m
	}
	e.add(evs)
	e.run("cpu_by_region", time.Time{}, time.Time{})
	before, h := e.batchRows("cpu_by_region")

	// An hour later, late events for 00:10 (window long closed) arrive.
	e.clk.Add(time.Hour)
	late := make([]event.Event, 30)
	for i := range late {
		late[i] = testEvent("late", i*3, t0.Add(10*time.Minute), time.Second)
	}
	e.add(late)
	s := e.run("cpu_by_region", time.Time{}, time.Time{})
	if s.Total != 1 {
		t.Errorf("second run read %d hours, want 1 (the hour that got late events)", s.Total)
	}
	after, h2 := e.batchRows("cpu_by_region")
	if h2 != h {
		// Late events carry old event times: the lake's watermark, and so
		// the horizon, stays where the newest events put it.
		t.Errorf("horizon moved from %v to %v on late events only", time.UnixMicro(h), time.UnixMicro(h2))
	}
	all := append(slices.Clone(evs), late...)
	sameRows(t, "after the late events", after, independent(all, h2))
	if slices.EqualFunc(before, after[:len(before)], func(a, b windowRow) bool { return a.aggs[0] == b.aggs[0] }) {
		t.Fatal("no window changed")
	}

	// The view's log topic got the corrected rows: the last row of each
	// window of 00:10 has the new count.
	want := map[string]int64{}
	for _, r := range after {
		if r.start == t0.Add(10*time.Minute).UnixMicro() {
			want[r.region] = r.aggs[0].I
		}
	}
	got := map[string]int64{}
	for part := range 2 {
		es, err := e.br.Fetch(context.Background(), "cpu_by_region", part, broker.FromStart(), 100000)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range es {
			for _, ev := range en.Events {
				if ev.Values[0].I == t0.Add(10*time.Minute).UnixMicro() {
					got[ev.Values[2].S] = ev.Values[3].I
				}
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("view topic rows for 00:10: %v, want %v", got, want)
	}
}

// TestHorizonMerge: a query gives batch rows for windows ending at or
// before the horizon and speed rows after it; the horizon stops where the
// lake is incomplete.
func TestHorizonMerge(t *testing.T) {
	e := newEnv(t)
	// Events up to 02:00:30: windows up to 02:00 are closed (lateness 30s).
	e.clk.Set(t0.Add(2*time.Hour + 30*time.Second))
	var evs []event.Event
	for i := range 1231 {
		evs = append(evs, testEvent("e", i, t0.Add(time.Hour+40*time.Minute), time.Second)) // to 02:00:30
	}
	e.add(evs)
	region := func(s string) []event.Value { return []event.Value{{S: s, Valid: true}} }
	mkRow := func(start time.Time, n int64) viewrow.Row {
		return viewrow.Row{Start: start.UnixMicro(), End: start.Add(time.Minute).UnixMicro(), Group: region("eu-west"),
			Aggs: []event.Value{{I: n, Valid: true}}, Final: true}
	}
	e.store.PutSpeed("cpu_by_region", []viewrow.Row{
		mkRow(t0.Add(time.Hour+59*time.Minute), -1), // ends at the horizon: batch wins
		mkRow(t0.Add(2*time.Hour), -2),              // after it: speed
	})
	e.run("cpu_by_region", time.Time{}, time.Time{})
	rows, h, _, _ := e.store.Query("cpu_by_region", serving.Filter{Group: map[int]event.Value{0: {S: "eu-west", Valid: true}}})
	if h != t0.Add(2*time.Hour).UnixMicro() {
		t.Fatalf("horizon %v, want 02:00", time.UnixMicro(h).UTC())
	}
	for _, r := range rows {
		wantLayer := viewrow.LayerSpeed
		if r.End <= h {
			wantLayer = viewrow.LayerBatch
		}
		if r.Layer != wantLayer {
			t.Errorf("window %v: layer %s, want %s", time.UnixMicro(r.Start).UTC(), r.Layer, wantLayer)
		}
	}
	last := rows[len(rows)-1]
	if last.Layer != viewrow.LayerSpeed || last.Aggs[0].I != -2 {
		t.Errorf("window 02:00 is %+v, want the speed row", last)
	}
	byStart := map[int64]viewrow.Row{}
	for _, r := range rows {
		byStart[r.Start] = r
	}
	if r := byStart[t0.Add(time.Hour+59*time.Minute).UnixMicro()]; r.Layer != viewrow.LayerBatch || r.Aggs[0].I <= 0 {
		t.Errorf("window 01:59 is %+v, want the batch row", r)
	}

	// A partition the lake has not written to the end holds the watermark
	// back to its newest event in the lake; an idle one does not.
	m := e.b.manifestOf("metrics")
	lag := manifest{Format: m.Format, Topic: m.Topic, Version: m.Version, Partitions: slices.Clone(m.Partitions),
		manifestFiles: manifestFiles{files: m.files, paths: m.paths, rows: m.rows}, Replaced: m.Replaced}
	// As if 02:00 were not written yet.
	newest0 := t0.Add(2*time.Hour - 7*time.Second).UnixMicro()
	lag.Partitions[0].Next--
	lag.Partitions[0].MaxTime = newest0
	if lag.Partitions[1].MaxTime <= newest0 {
		t.Fatalf("partition 1's newest event %v is not past 02:00", time.UnixMicro(lag.Partitions[1].MaxTime))
	}
	if c := e.b.completeUntil(context.Background(), e.b.views["cpu_by_region"], &lag); c != newest0 || c >= t0.Add(2*time.Hour).UnixMicro() {
		t.Errorf("complete until %v, want the lagging partition's newest event in the lake, %v", time.UnixMicro(c).UTC(), time.UnixMicro(newest0).UTC())
	}
}

// TestRecomputeRange: an explicit range recomputes windows in it (and
// only adds to what a run does anyway).
func TestRecomputeRange(t *testing.T) {
	e := newEnv(t)
	var evs []event.Event
	for i := range 1200 {
		evs = append(evs, testEvent("e", i, t0, 3*time.Second)) // 1h
	}
	e.add(evs)
	e.run("cpu_by_region", time.Time{}, time.Time{})
	s := e.run("cpu_by_region", t0.Add(10*time.Minute), t0.Add(20*time.Minute))
	if s.Total != 1 {
		t.Errorf("range run read %d hours, want 1", s.Total)
	}
	got, h := e.batchRows("cpu_by_region")
	sameRows(t, "after a range run", got, independent(evs, h))
	if _, err := e.b.Recompute("nope", time.Time{}, time.Time{}); !errors.Is(err, ErrUnknownView) {
		t.Errorf("unknown view: %v", err)
	}
	if _, err := e.b.Recompute("cpu_by_region", t0.Add(time.Hour), t0); !errors.Is(err, ErrBadRange) {
		t.Errorf("from after to: %v", err)
	}
}

// TestBadSchedule: a bad cron expression is refused, naming the view.
func TestBadSchedule(t *testing.T) {
	for _, spec := range []string{"61 * * * *", "* * *", "@sometimes", "*/0 * * * *"} {
		v := testView("v", "metrics")
		v.Batch.Schedule = spec
		p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 1)}, []pipelines.View{v})
		_, err := New(p, nil, nil, Options{})
		if err == nil || !strings.Contains(err.Error(), "view v: batch.schedule") || !strings.Contains(err.Error(), spec) {
			t.Errorf("schedule %q: error %v", spec, err)
		}
	}
	for _, spec := range []string{"*/10 * * * *", "@hourly", "@every 10m", "0 3 * * MON-FRI"} {
		v := testView("v", "metrics")
		v.Batch.Schedule = spec
		p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 1)}, []pipelines.View{v})
		if _, err := New(p, nil, nil, Options{}); err != nil {
			t.Errorf("schedule %q: %v", spec, err)
		}
	}
}

// TestSchedule: a view's schedule starts runs by the injected clock.
func TestSchedule(t *testing.T) {
	v := testView("cpu_by_region", "metrics")
	v.Batch.Schedule = "*/10 * * * *"
	e := newEnv(t, v)
	if n := len(e.b.Jobs()); n != 0 {
		t.Fatalf("%d jobs before the schedule fired", n)
	}
	e.add([]event.Event{testEvent("e", 0, t0, time.Second)})
	// Runs fire every 10 minutes of the injected clock; the lake writer's
	// clock moves too, so early runs may find the lake empty (no horizon
	// yet). Move on until a scheduled run has published one.
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		e.clk.Add(10 * time.Minute)
		for _, j := range e.b.Jobs() {
			if j.State == api.JobSucceeded && j.Trigger == "schedule" && j.Horizon != nil {
				return nil
			}
		}
		return fmt.Errorf("jobs %+v", e.b.Jobs())
	})
	if _, h, ok, _ := e.store.Query("cpu_by_region", serving.Filter{}); !ok || h <= 0 {
		t.Fatalf("no horizon in the store after the scheduled run: %+v", e.b.Jobs())
	}
}

// TestCorruptFile: a truncated or corrupt lake file fails the job with an
// error naming the file, and the view keeps its previous result.
func TestCorruptFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		harm func(path string) error
	}{
		{"truncated", func(path string) error {
			st, err := os.Stat(path)
			if err != nil {
				return err
			}
			return os.Truncate(path, st.Size()/2)
		}},
		{"corrupt", func(path string) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i := 100; i < len(b)-200; i += 97 {
				b[i] ^= 0x5a
			}
			return os.WriteFile(path, b, 0o644)
		}},
		{"pages", func(path string) error {
			// Damage page data only; the footer stays readable.
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i := 8; i < len(b)/3; i += 31 {
				b[i] ^= 0xff
			}
			return os.WriteFile(path, b, 0o644)
		}},
		{"one bit", func(path string) error {
			// One bit in the middle of the data: only the checksum tells.
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b[len(b)/4] ^= 0x01
			return os.WriteFile(path, b, 0o644)
		}},
		{"missing", os.Remove},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var evs []event.Event
			for i := range 600 {
				evs = append(evs, testEvent("e", i, t0, 3*time.Second))
			}
			e.add(evs)
			e.run("cpu_by_region", time.Time{}, time.Time{})
			before, h := e.batchRows("cpu_by_region")
			fe := e.b.manifestOf("metrics").Files()[0]
			path := filepath.Join(lakeAt{}.topic(e.p, "metrics"), filepath.FromSlash(fe.Path))
			if err := tc.harm(path); err != nil {
				t.Fatal(err)
			}
			s, err := e.b.recomputeWait(context.Background(), "cpu_by_region", t0, t0.Add(time.Hour), nil)
			if err == nil || s.State != api.JobFailed {
				t.Fatalf("job succeeded over a %s file: %+v", tc.name, s)
			}
			if !strings.Contains(err.Error(), fe.Path) && !strings.Contains(err.Error(), filepath.Base(fe.Path)) {
				t.Fatalf("error does not name the file %s: %v", fe.Path, err)
			}
			t.Log(err)
			after, h2 := e.batchRows("cpu_by_region")
			if h2 != h {
				t.Fatalf("horizon moved")
			}
			sameRows(t, "after the failed job", after, before)
		})
	}
}

// streamingAll is streaming for every window type: tumbling and hopping
// windows by Windows, sessions by AddSession per key, per partition, then
// merged as the speed layer merges partitions.
func streamingAll(t *testing.T, p *pipelines.Pipeline, view string, evs []event.Event, horizon int64) []windowRow {
	v := p.ViewByName(view)
	pl, err := plan.Compile(v, p.TopicByName(v.From))
	if err != nil {
		t.Fatal(err)
	}
	if !pl.Session() {
		return streaming(t, p, view, evs, horizon)
	}
	parts := [2]map[string]*plan.Sessions{{}, {}}
	for _, e := range evs {
		if ok, err := pl.Match(&e); err != nil || !ok {
			continue
		}
		part := int(e.Values[1].S[len(e.Values[1].S)-1]-'0') % 2
		key := string(pl.Key(&e, nil))
		ss := parts[part][key]
		if ss == nil {
			ss = new(plan.Sessions)
			parts[part][key] = ss
		}
		pl.AddSession(ss, &e, nil)
	}
	merged := map[string]*plan.Sessions{}
	for _, m := range parts {
		for k, ss := range m {
			if merged[k] == nil {
				merged[k] = new(plan.Sessions)
			}
			pl.MergeSessions(merged[k], ss, nil)
		}
	}
	var out []windowRow
	for k, ss := range merged {
		g, err := pl.DecodeKey([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss.List() {
			if s.End <= horizon {
				out = append(out, windowRow{start: s.Start, region: g[0].S, aggs: pl.Finalize(s.State)})
			}
		}
	}
	sortRows(out)
	return out
}

// TestRecomputeWindowTypes: hopping and session views recompute to what
// the plan gives on the stream, also after late events in a later run.
func TestRecomputeWindowTypes(t *testing.T) {
	hop := testView("hop", "metrics")
	hop.Window = pipelines.Window{Type: "hopping", Size: pipelines.Duration(10 * time.Minute), Slide: pipelines.Duration(5 * time.Minute), Lateness: pipelines.Duration(30 * time.Second)}
	sess := testView("sess", "metrics")
	sess.Window = pipelines.Window{Type: "session", Gap: pipelines.Duration(5 * time.Minute), Lateness: pipelines.Duration(30 * time.Second)}
	e := newEnv(t, hop, sess)
	// Bursts of 100 s every 20 min over 3 hours.
	burst := func(prefix string, from, n int) []event.Event {
		var out []event.Event
		for i := from; i < from+n; i++ {
			ev := testEvent(prefix, i, t0, time.Second)
			ts := t0.Add(time.Duration(i/50)*20*time.Minute + time.Duration(i%50)*2*time.Second).UnixMicro()
			ev.Time, ev.Values[0].I = ts, ts
			out = append(out, ev)
		}
		return out
	}
	evs := burst("e", 0, 450)
	e.add(evs)
	for _, view := range []string{"hop", "sess"} {
		e.run(view, time.Time{}, time.Time{})
		got, h := e.batchRows(view)
		sameRows(t, view, got, streamingAll(t, e.p, view, evs, h))
	}
	// Late events bridge two bursts of the first hour into one session
	// and change hopping windows; the next runs correct both views.
	e.clk.Add(time.Hour)
	var late []event.Event
	for i := range 12 {
		ev := testEvent("late", i*3, t0, time.Second) // host-0, host-3, …
		ts := t0.Add(2*time.Minute + time.Duration(i)*90*time.Second).UnixMicro()
		ev.Time, ev.Values[0].I = ts, ts
		late = append(late, ev)
	}
	e.add(late)
	all := append(slices.Clone(evs), late...)
	for _, view := range []string{"hop", "sess"} {
		e.run(view, time.Time{}, time.Time{})
		got, h := e.batchRows(view)
		sameRows(t, view+" after late events", got, streamingAll(t, e.p, view, all, h))
	}
}

// TestRunsDoNotInterleave: a run of a view waits for the one before it.
func TestRunsDoNotInterleave(t *testing.T) {
	e := newEnv(t)
	e.add(e.evsOf(100))
	vj := e.b.views["cpu_by_region"]
	vj.sem <- struct{}{} // a run in progress
	var ids []string
	for range 3 {
		id, err := e.b.Recompute("cpu_by_region", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if s, _ := e.b.Job(id); s.State != api.JobQueued {
			t.Fatalf("job %s is %s while another run holds the view", id, s.State)
		}
	}
	<-vj.sem
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		for _, id := range ids {
			if s, _ := e.b.Job(id); s.State != api.JobSucceeded {
				return fmt.Errorf("job %s: %s %s", id, s.State, s.Error)
			}
		}
		return nil
	})
}

// TestNoHorizonBeforeLake: a run before the lake holds anything succeeds
// without publishing a horizon, so queries keep answering "no batch run yet"
// instead of a horizon at the epoch.
func TestNoHorizonBeforeLake(t *testing.T) {
	e := newEnv(t)
	// Nothing in the log, so nothing can be made durable: a requested run
	// says so and sets no horizon. (With events in the log, a requested
	// run first makes the lake hold them: cmd/lambdaflow TestBatchRunMakesLakeDurable.)
	st := e.run("cpu_by_region", time.Time{}, time.Time{})
	if st.State != api.JobSucceeded || st.Horizon != nil || st.Windows != 0 || !st.NothingToDo || st.Note == "" {
		t.Fatalf("job %+v, want succeeded with nothing to do, a note, and neither horizon nor windows", st)
	}
	if _, _, hasHorizon, _ := e.store.Query("cpu_by_region", serving.Filter{}); hasHorizon {
		t.Fatal("the store has a horizon after a run over an empty lake")
	}
}

// TestRecomputeWordStates: views whose states are words alone (counts,
// integer sums and averages, extremes) are updated through flat slots
// merged once per batch (aggregate.Slots); by region (many rows per slot)
// with a where (a selection of the rows), by region without one (every
// row of a batch: slots keyed by dictionary word, Slots.UpdateAll over
// cpu without nulls and bytes with some, the batches past the horizon a
// selection again) and by host (so few rows per slot that they go to their
// states directly) they give the windows the plan gives event by event.
func TestRecomputeWordStates(t *testing.T) {
	lean := testView("lean", "metrics")
	lean.Where = "cpu >= 1"
	lean.Aggregates = pipelines.Aggregates{
		{Name: "events", Func: "count"}, {Name: "n_bytes", Func: "count", Field: "bytes"},
		{Name: "bytes", Func: "sum", Field: "bytes"}, {Name: "avg_bytes", Func: "avg", Field: "bytes"},
		{Name: "max_cpu", Func: "max", Field: "cpu"}, {Name: "min_cpu", Func: "min", Field: "cpu"},
		{Name: "max_bytes", Func: "max", Field: "bytes"},
	}
	byHost := lean
	byHost.Name, byHost.Where, byHost.GroupBy = "by_host", "", []string{"host"}
	all := lean
	all.Name, all.Where = "lean_all", ""
	e := newEnv(t, lean, byHost, all)
	var evs []event.Event
	for i := range 4000 {
		evs = append(evs, testEvent("e", i, t0, 2*time.Second))
	}
	e.add(evs)
	for _, view := range []string{"lean", "by_host", "lean_all"} {
		if s := e.run(view, time.Time{}, time.Time{}); s.State != api.JobSucceeded || s.Rows != int64(len(evs)) {
			t.Fatalf("%s: job %+v", view, s)
		}
		got, h := e.batchRows(view)
		sameRows(t, view, got, streamingAll(t, e.p, view, evs, h))
	}
}

// flipBit flips one bit a quarter into the lake object key of p's lake.
func flipBit(t *testing.T, p *pipelines.Pipeline, key string) {
	t.Helper()
	ctx := context.Background()
	st := openStore(t, p)
	b, err := st.ReadFile(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/4] ^= 0x01
	if err := st.WriteFile(ctx, key, b, false); err != nil {
		t.Fatal(err)
	}
}

// TestRecomputeManyFiles: a recompute over many more files than are
// fetched ahead at once gives every window type's exact rows, with the
// lake in a directory and on object storage (where the files are fetched
// ahead of their readers); a damaged file among them fails each run,
// naming it, and leaves the views as they were.
func TestRecomputeManyFiles(t *testing.T) { eachLake(t, testRecomputeManyFiles) }

func testRecomputeManyFiles(t *testing.T, at lakeAt) {
	hop := testView("hop", "metrics")
	hop.Window = pipelines.Window{Type: "hopping", Size: pipelines.Duration(10 * time.Minute), Slide: pipelines.Duration(5 * time.Minute), Lateness: pipelines.Duration(30 * time.Second)}
	sess := testView("sess", "metrics")
	sess.Window = pipelines.Window{Type: "session", Gap: pipelines.Duration(5 * time.Minute), Lateness: pipelines.Duration(30 * time.Second)}
	e := newEnvWith(t, func(p *pipelines.Pipeline) {
		at.apply(p)
		p.Lake.Roll.MaxRows = 20
		p.Lake.Compact.Interval = 0 // the files as the writer made them
		p.Lake.Cache = 0            // every run fetches its files (TestRecomputeCachedFiles keeps them)
	}, testView("cpu_by_region", "metrics"), hop, sess)
	var evs []event.Event
	for i := range 1600 {
		evs = append(evs, testEvent("e", i, t0, 6*time.Second)) // 2h40m
	}
	for off := 0; off < len(evs); off += 40 {
		e.add(evs[off : off+40]) // a file per partition
	}
	files := e.b.manifestOf("metrics").Files()
	if len(files) <= readAhead(files) {
		t.Fatalf("%d lake files, want more than are fetched ahead (%d)", len(files), readAhead(files))
	}
	views := []string{"cpu_by_region", "hop", "sess"}
	before := map[string][]windowRow{}
	for _, view := range views {
		s := e.run(view, time.Time{}, time.Time{})
		if s.State != api.JobSucceeded || s.Rows != int64(len(evs)) {
			t.Fatalf("%s: job %+v", view, s)
		}
		got, h := e.batchRows(view)
		sameRows(t, view, got, streamingAll(t, e.p, view, evs, h))
		before[view] = got
	}

	// One bit of a file in the middle: only its checksum tells.
	ctx := context.Background()
	fe := files[len(files)/2]
	flipBit(t, e.p, "metrics/"+fe.Path)
	for _, view := range views {
		s, err := e.b.recomputeWait(ctx, view, t0, t0.Add(3*time.Hour), nil)
		if err == nil || s.State != api.JobFailed || !strings.Contains(err.Error(), "corrupt file") || !strings.Contains(err.Error(), path.Base(fe.Path)) {
			t.Fatalf("%s over a damaged %s: %+v, %v", view, fe.Path, s, err)
		}
		got, _ := e.batchRows(view)
		sameRows(t, view+" after the failed run", got, before[view])
	}
}
