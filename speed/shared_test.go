package speed

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// process is one Lambdaflow process of a test: a broker connection, a
// node of the cluster and a speed layer.
type process struct {
	b      *broker.Broker
	node   *broker.Node
	s      *Speed
	store  *memStore
	cancel context.CancelFunc
	done   chan error
}

func startProcess(t *testing.T, p *pipelines.Pipeline, name string, compute bool) *process {
	t.Helper()
	return startProcessIdle(t, p, name, compute, time.Hour)
}

// startProcessIdle is startProcess with the given idle time.
func startProcessIdle(t *testing.T, p *pipelines.Pipeline, name string, compute bool, idle time.Duration) *process {
	t.Helper()
	ctx := context.Background()
	b, err := broker.Open(ctx, p, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	pr := &process{b: b, store: newMemStore(), done: make(chan error, 1)}
	opts := Options{CheckpointInterval: 50 * time.Millisecond, Idle: idle, Serve: true, Registerer: prometheus.NewRegistry()}
	if compute {
		if pr.node, err = b.Join(ctx, broker.NodeOptions{Name: name}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pr.node.Close() })
		opts.Owner = BrokerOwner(pr.node)
	}
	s, err := New(p, BrokerLog(b), pr.store, opts)
	if err != nil {
		t.Fatal(err)
	}
	pr.s = s
	rctx, cancel := context.WithCancel(ctx)
	pr.cancel = cancel
	go func() { pr.done <- s.Run(rctx) }()
	t.Cleanup(func() { pr.stop(t) })
	return pr
}

func (pr *process) stop(t *testing.T) {
	t.Helper()
	if pr.cancel == nil {
		return
	}
	pr.cancel()
	pr.cancel = nil
	if err := <-pr.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// sharedLog starts the log that a test's processes share: a broker with the
// test pipeline's topics, listening, and the pipeline p it was opened with
// (lateness for every view), and the same pipeline q pointing at it, for the
// processes.
func sharedLog(t *testing.T, parts int, lateness string) (hub *broker.Broker, p, q *pipelines.Pipeline) {
	t.Helper()
	port := testenv.FreePort(t)
	p = testPipeline(t, pipelineOpts{partitions: parts, lateness: lateness, listen: fmt.Sprintf("127.0.0.1:%d", port)})
	hub, err := broker.Open(t.Context(), p, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	if err := hub.EnsureTopics(t.Context()); err != nil {
		t.Fatal(err)
	}
	q = testPipeline(t, pipelineOpts{partitions: parts, lateness: lateness, url: fmt.Sprintf("nats://127.0.0.1:%d", port)})
	return hub, p, q
}

// waitOwning waits until n processes own partitions of view "all".
func waitOwning(t *testing.T, hub *broker.Broker, n int) {
	t.Helper()
	checkFor(t, 30*time.Second, fmt.Sprintf("%d processes owning partitions", n), func() bool {
		cl, err := hub.Cluster(t.Context())
		if err != nil {
			return false
		}
		owning := 0
		for _, nd := range cl.Nodes {
			if len(nd.Owns["speed.all"]) > 0 {
				owning++
			}
		}
		return owning == n
	})
}

// TestViewSharedByProcesses: two processes compute a view's partitions
// between them and a third only serves it. Every one of them shows the
// whole view, exactly as one engine over every event does (open windows,
// final windows, late events left out), and the view's topic holds every
// final row; after one of the computing processes stops, the other takes
// its partitions over from their checkpoints and the views stay exact.
func TestViewSharedByProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes on one log")
	}
	const parts = 4
	ctx := t.Context()
	hub, p, q := sharedLog(t, parts, "40s")
	a := startProcess(t, q, "a", true)
	b := startProcess(t, q, "b", true)
	c := startProcess(t, q, "c", false)
	waitOwning(t, hub, 2)

	rng := rand.New(rand.NewPCG(9, 9))
	events := genEvents(rng, 12000, 30, 2*60*minute)
	slices.SortFunc(events, func(x, y event.Event) int {
		return int((x.Time + rng.Int64N(70*sec)) - (y.Time + rng.Int64N(70*sec)))
	})
	entries := split(rng, events, parts, 60, true)
	ref := &recordingStore{memStore: newMemStore(), finals: map[string]map[string]viewrow.Row{}}
	local, err := NewLocal(p, ref, timeAt(0), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	feed := func(es []testEntry) {
		for _, en := range es {
			if _, err := hub.Append(ctx, "metrics", en.part, en.events); err != nil {
				t.Fatal(err)
			}
			if err := local.Append("metrics", en.part, en.events); err != nil {
				t.Fatal(err)
			}
		}
	}
	views := []string{"all", "hop", "sessions"}
	same := func(what string, procs ...*process) {
		t.Helper()
		for _, v := range views {
			want := ref.dump(v)
			for i, pr := range procs {
				deadline := time.Now().Add(60 * time.Second)
				for pr.store.dump(v) != want {
					if time.Now().After(deadline) {
						t.Fatalf("%s: view %s in process %d differs from one engine over every event:\n%s", what, v, i, diffLines(want, pr.store.dump(v)))
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
	}
	half := len(entries) / 2
	feed(entries[:half])
	same("two computing", a, b, c)

	a.stop(t) // soft: its partitions move to b
	feed(entries[half:])
	same("after a stopped", b, c)
	// What sinks get: the view's topic, upserted and deleted by group and
	// window, holds every final row of one engine and its open windows'
	// current values (the last appends may still be landing).
	for _, v := range views {
		wantTopic := maps.Clone(ref.finals[v])
		for k, r := range ref.rows[v] {
			if !r.Final {
				wantTopic[k] = r
			}
		}
		w := dumpRows(mapValues(wantTopic))
		testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			if g := dumpRows(mapValues(readViewTopic(t, hub, p, v))); w != g {
				return fmt.Errorf("view %s: the view's topic differs from the rows of one engine:\n%s", v, diffLines(w, g))
			}
			return nil
		})
	}
	if s, _ := local.Stats("all"); s.Late == 0 {
		t.Error("no late event in the stream; the test is too weak")
	}
}

// TestIdlePartitionAmongBusyAcrossProcesses: two processes compute a view's
// four partitions between them, so a partition's stage 1 and the mergers
// that take the view's watermark over it run in different processes. Three
// partitions receive a steady in-order stream; the fourth, quiet past the
// idle time, no longer holds the view back. Then in-order events reach the
// quiet partition first and the busy ones after them, each batch spanning
// ten windows: none is late in either process, however the partitions'
// states reach the mergers, and both show the rows of one engine over every
// event.
func TestIdlePartitionAmongBusyAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("three brokers on one log")
	}
	const parts, quiet = 4, 3
	ctx := t.Context()
	hub, p, q := sharedLog(t, parts, "0s")
	procs := []*process{
		startProcessIdle(t, q, "a", true, 300*time.Millisecond),
		startProcessIdle(t, q, "b", true, 300*time.Millisecond),
	}
	waitOwning(t, hub, 2)
	ref := newMemStore()
	local, err := NewLocal(p, ref, timeAt(0), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Event times only grow; each partition has a host of its own.
	next, n := int64(0), 0
	newest := make([]int64, parts)
	mk := func(part int, at int64) event.Event {
		n++
		newest[part] = max(newest[part], at)
		return ev(fmt.Sprintf("e%d", n), at, fmt.Sprintf("h%d", part), []string{"eu", "us", "ap"}[n%3], 0.5, int64(n))
	}
	feed := func(part int, events []event.Event) {
		t.Helper()
		if _, err := hub.Append(ctx, "metrics", part, events); err != nil {
			t.Fatal(err)
		}
		if err := local.Append("metrics", part, events); err != nil {
			t.Fatal(err)
		}
	}
	watermarkPast := func(at int64) bool {
		for _, pr := range procs {
			if metricValue(pr.s.metrics.watermark.WithLabelValues("all")) <= float64(base+at)/1e6 {
				return false
			}
		}
		return true
	}
	for part := range parts {
		feed(part, []event.Event{mk(part, next)})
		next += sec
	}
	for round := range 3 {
		// The busy partitions go on (an event every 20 ms, well within
		// the idle time) until the quiet one is left out: the watermark
		// passes its newest event.
		deadline := time.Now().Add(30 * time.Second)
		for !watermarkPast(newest[quiet]) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the watermark did not pass the quiet partition's newest event", round)
			}
			for part := range quiet {
				feed(part, []event.Event{mk(part, next)})
				next += sec
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Ten minutes of in-order events over every partition; the quiet
		// partition's reach the log first.
		batch := make([][]event.Event, parts)
		for i := range 40 {
			part := i % parts
			batch[part] = append(batch[part], mk(part, next+int64(i)*15*sec))
		}
		next += 40 * 15 * sec
		feed(quiet, batch[quiet])
		for part := range quiet {
			feed(part, batch[part])
		}
	}
	// Once every partition is idle, the watermark is the newest event
	// time of all, in the processes as in one engine.
	local.Advance(time.Hour)
	for _, v := range []string{"all", "hop", "sessions"} {
		want := ref.dump(v)
		for i, pr := range procs {
			testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
				if got := pr.store.dump(v); got != want {
					return fmt.Errorf("view %s in process %d differs from one engine over every event:\n%s", v, i, diffLines(want, got))
				}
				return nil
			})
			if late := metricValue(pr.s.metrics.late.WithLabelValues(v)); late != 0 {
				t.Errorf("view %s: process %d counted %v in-order events late, want 0", v, i, late)
			}
		}
	}
}
