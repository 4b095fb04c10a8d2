package speed

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lambdaflow/lambdaflow/internal/fakeclock"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// checkFor waits, polling, until cond holds (testenv.CheckUntil).
func checkFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.CheckUntil(t, timeout, 2*time.Millisecond, what, cond)
}

// running is a Speed running in the background with a fake clock and a
// tick the test sends.
type running struct {
	s      *Speed
	clock  *fakeclock.Clock
	ticks  map[string]chan time.Time
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func startSpeed(t *testing.T, p *pipelines.Pipeline, log *memLog, store Store) *running {
	t.Helper()
	r := &running{clock: fakeclock.New(timeAt(0)), ticks: map[string]chan time.Time{}, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	for _, v := range p.Views {
		for part := range p.TopicByName(v.From).Partitions {
			r.ticks[fmt.Sprintf("%s/%d", v.Name, part)] = make(chan time.Time)
		}
	}
	tick := func(view string, part int) <-chan time.Time { return r.ticks[fmt.Sprintf("%s/%d", view, part)] }
	s, err := New(p, log, store, Options{Now: r.clock.Now, Registerer: r.reg, CheckpointInterval: 10 * time.Second, Idle: 5 * time.Second, tick: tick,
		Owner: &memOwner{l: log}, Serve: true})
	if err != nil {
		t.Fatal(err)
	}
	r.s = s
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// tickAll delivers one tick to every partition run of every view.
func (r *running) tickAll() {
	for _, c := range r.ticks {
		c <- time.Time{}
	}
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestSpeedRunCheckpointsAndRestarts(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "0s"})
	log := newMemLog(p)
	store := newMemStore()
	r := startSpeed(t, p, log, store)

	// Partition 0 only: partition 1 holds the watermark back until it has
	// been idle for 5 s on the clock.
	if _, err := log.Append(t.Context(), "metrics", 0, []event.Event{
		ev("a", 10*sec, "h1", "eu", 0.5, 100), ev("b", 20*sec, "h2", "eu", 0.7, 200), ev("c", 70*sec, "h1", "us", 0.1, 1),
	}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, "open rows", func() bool { return strings.Count(store.dump("all"), "final=false") == 2 })
	// Read, not yet committed: the commit comes with the checkpoint.
	checkFor(t, 10*time.Second, "the read position reported", func() bool { return log.read("speed.all", "metrics", 0) == 3 })
	if got := log.read("speed.all", "metrics", 1); got != 0 {
		t.Errorf("partition 1 read position %d, want 0 (reported at start)", got)
	}
	if got := log.committed("speed.all", "metrics", 0); got != 0 {
		t.Errorf("committed %d before a checkpoint, want 0", got)
	}
	if strings.Contains(store.dump("all"), "final=true") {
		t.Fatal("a final row while partition 1 holds the watermark back")
	}
	r.clock.Add(5 * time.Second)
	r.tickAll()
	checkFor(t, 10*time.Second, "the final row of [15:00, 15:01)", func() bool {
		return strings.Contains(store.dump("all"), "[2026-01-02T15:00:00Z 2026-01-02T15:01:00Z) eu|0|0; final=true => |2|0 |300|0")
	})
	// The view's topic: each window's open row when it first changed, then
	// the final row of the window that closed.
	topic := map[string][]string{}
	for g, rows := range log.viewRows(p, "all") {
		for _, r := range rows {
			topic[g] = append(topic[g], fmt.Sprintf("%s final=%t deleted=%t events=%d", event.FormatTime(r.Start), r.Final, r.Deleted, r.Aggs[0].I))
		}
	}
	wantTopic := map[string][]string{
		"eu|0|0;": {"2026-01-02T15:00:00Z final=false deleted=false events=2", "2026-01-02T15:00:00Z final=true deleted=false events=2"},
		"us|0|0;": {"2026-01-02T15:01:00Z final=false deleted=false events=1"},
	}
	if !reflect.DeepEqual(topic, wantTopic) {
		t.Fatalf("the view's topic holds %q, want %q", topic, wantTopic)
	}

	// A checkpoint is due after 10 s; the consumer's offsets are committed.
	r.clock.Add(10 * time.Second)
	r.tickAll()
	checkFor(t, 10*time.Second, "the commit after a checkpoint", func() bool { return log.committed("speed.all", "metrics", 0) == 3 })

	if got := metricValue(r.s.metrics.events.WithLabelValues("all")); got != 3 {
		t.Errorf("lambdaflow_speed_events_total{view=all} = %v, want 3", got)
	}
	if got := metricValue(r.s.metrics.stateWindows.WithLabelValues("all")); got != 1 {
		t.Errorf("lambdaflow_speed_state_windows{view=all} = %v, want 1", got)
	}
	if got, want := metricValue(r.s.metrics.watermark.WithLabelValues("all")), float64(base+70*sec)/1e6; got != want {
		t.Errorf("lambdaflow_speed_watermark_seconds{view=all} = %v, want %v", got, want)
	}

	// An event for the final window is late.
	if _, err := log.Append(t.Context(), "metrics", 1, []event.Event{ev("d", 30*sec, "h3", "eu", 0.5, 1)}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, "the late event counted", func() bool {
		return metricValue(r.s.metrics.late.WithLabelValues("all")) == 1
	})

	// Soft stop checkpoints; a new process shows the same rows at once.
	want := store.dump("all")
	saves := log.checkpointsSaved()
	r.stop(t)
	if log.checkpointsSaved() <= saves {
		t.Fatal("no checkpoint on soft stop")
	}
	store2 := newMemStore()
	startSpeed(t, p, log, store2)
	checkFor(t, 10*time.Second, "the restored rows", func() bool { return store2.dump("all") == want })
}

// TestSpeedGoesOnWhileTheLogAppends: while the view's topic is slow to
// make rows durable, the view goes on computing and showing rows in the
// store; the rows land in order once the log answers, and the checkpoint
// waits for them.
func TestSpeedGoesOnWhileTheLogAppends(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 1, lateness: "0s"})
	log := newMemLog(p)
	store := newMemStore()
	release := log.hold("all")
	r := startSpeed(t, p, log, store)
	for i := range 5 {
		// A region of its own each time: a new row, shown at once.
		region := fmt.Sprintf("r%d", i)
		if _, err := log.Append(t.Context(), "metrics", 0, []event.Event{ev(region, int64(i)*sec, "h1", region, 0.5, 1)}); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 10*time.Second, "the row of "+region+" in the store", func() bool {
			return strings.Contains(store.dump("all"), region+"|0|0; final=false")
		})
	}
	r.clock.Add(10 * time.Second)
	go r.tickAll() // the checkpoint waits for the appends
	if n := len(log.viewRows(p, "all")); n != 0 {
		t.Fatalf("%d groups in the view's topic while its appends are held", n)
	}
	checkpointed := func() bool { return log.committed("speed.all", "metrics", 0) == 5 }
	if checkpointed() {
		t.Fatal("a checkpoint while rows were not durable")
	}
	release()
	checkFor(t, 10*time.Second, "the checkpoint", checkpointed)
	if n := len(log.viewRows(p, "all")); n != 5 {
		t.Fatalf("%d groups in the view's topic, want 5", n)
	}
}

func TestSpeedNewErrors(t *testing.T) {
	p := testPipeline(t, pipelineOpts{})
	if _, err := New(p, nil, newMemStore(), Options{}); err == nil {
		t.Error("New without a log: no error")
	}
	bad := *p
	bad.Views = append([]pipelines.View(nil), p.Views...)
	bad.Views[0].From = "nope"
	if _, err := New(&bad, newMemLog(p), newMemStore(), Options{}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown topic: err %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(p, newMemLog(p), newMemStore(), Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(p, newMemLog(p), newMemStore(), Options{Registerer: reg}); err == nil {
		t.Error("a second speed layer on one registry: no error")
	}
}

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestSpeedResumeAfterPauseCountsNothingLate: after every partition went
// idle, the partition read first must not move the watermark past events
// the other got in the same instant, and the idle rule still lets the view
// go on without a partition that stays quiet.
func TestSpeedResumeAfterPauseCountsNothingLate(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 2, lateness: "0s"})
	log := newMemLog(p)
	store := newMemStore()
	r := startSpeed(t, p, log, store)
	events := func() float64 { return metricValue(r.s.metrics.events.WithLabelValues("all")) }
	watermark := func() float64 { return metricValue(r.s.metrics.watermark.WithLabelValues("all")) }
	at := func(d int64) float64 { return float64(base+d) / 1e6 }

	for part, ts := range []int64{10 * sec, 20 * sec} {
		if _, err := log.Append(t.Context(), "metrics", part, []event.Event{ev("w", ts, "h1", "eu", 0.1, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, "the first two events", func() bool { return events() == 2 })
	// A pause: both partitions idle, the watermark is the newest of them.
	r.clock.Add(5 * time.Second)
	r.tickAll()
	checkFor(t, 10*time.Second, "the watermark after the pause", func() bool { return watermark() == at(20*sec) })

	// In-order events after the pause: partition 0's are read (and shown)
	// before partition 1's of the same instant arrive.
	if _, err := log.Append(t.Context(), "metrics", 0, []event.Event{ev("a", 30*sec, "h1", "eu", 0.1, 1), ev("c", 70*sec, "h1", "eu", 0.1, 1)}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, "partition 0's events", func() bool { return events() == 4 })
	r.clock.Add(time.Second)
	r.tickAll() // partition 1's reader waited all along: not idle for that
	if _, err := log.Append(t.Context(), "metrics", 1, []event.Event{ev("b", 40*sec, "h2", "eu", 0.1, 1)}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, "partition 1's event", func() bool { return events() == 5 })
	if late := metricValue(r.s.metrics.late.WithLabelValues("all")); late != 0 {
		t.Fatalf("%v in-order events counted late after a pause, want 0", late)
	}
	// Stage 1 counts the event before stage 2 has its record: wait for the
	// watermark to move. Watermarks only grow, so one that went past 40 s
	// (partition 0's 70 s) never comes back and this fails.
	checkFor(t, 10*time.Second, "the watermark at the lower of the two partitions (40 s)", func() bool { return watermark() == at(40*sec) })
	// Only partition 0 goes on: partition 1, quiet for 5 s while it does,
	// is idle and no longer holds the view back.
	if _, err := log.Append(t.Context(), "metrics", 0, []event.Event{ev("d", 130*sec, "h1", "eu", 0.1, 1)}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, "partition 0's next event", func() bool { return events() == 6 })
	r.clock.Add(5 * time.Second)
	r.tickAll()
	checkFor(t, 10*time.Second, "the watermark past the quiet partition", func() bool { return watermark() == at(130*sec) })
}
