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
	store  *memStore
	cancel context.CancelFunc
	done   chan error
}

func startProcess(t *testing.T, p *pipelines.Pipeline, name string, compute bool) *process {
	t.Helper()
	ctx := context.Background()
	b, err := broker.Open(ctx, p, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	pr := &process{b: b, store: newMemStore(), done: make(chan error, 1)}
	opts := Options{CheckpointInterval: 50 * time.Millisecond, Idle: time.Hour, Serve: true, Registerer: prometheus.NewRegistry()}
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
	port := testenv.FreePort(t)
	p := testPipeline(t, pipelineOpts{partitions: parts, lateness: "40s", listen: fmt.Sprintf("127.0.0.1:%d", port)})
	ctx := t.Context()
	hub, err := broker.Open(ctx, p, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	if err := hub.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	q := testPipeline(t, pipelineOpts{partitions: parts, lateness: "40s", url: fmt.Sprintf("nats://127.0.0.1:%d", port)})
	a := startProcess(t, q, "a", true)
	b := startProcess(t, q, "b", true)
	c := startProcess(t, q, "c", false)
	checkFor(t, 30*time.Second, "both computing processes owning partitions", func() bool {
		cl, err := hub.Cluster(ctx)
		if err != nil {
			return false
		}
		owning := 0
		for _, n := range cl.Nodes {
			if len(n.Owns["speed.all"]) > 0 {
				owning++
			}
		}
		return owning == 2
	})

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
