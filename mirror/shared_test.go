package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
)

// process is one Lambdaflow process of a site: its own connection to the
// site's log, a node of the site's cluster, and a Mirror owned through it.
type process struct {
	b    *broker.Broker
	node *broker.Node
	mr   *Mirror
	stop func()
}

// startProcess runs a process of s; the site's own broker is the first
// (its NATS is embedded), others connect to it as processes with
// broker.url do.
func (s *site) startProcess(t *testing.T, name string, own bool) *process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := s.b
	if !own {
		p := *s.p
		p.Broker.URL, p.Broker.Listen = s.url(), ""
		var err error
		if b, err = broker.Open(ctx, &p, broker.Options{Registerer: prometheus.NewRegistry()}); err != nil {
			t.Fatal(err)
		}
	}
	node, err := b.Join(ctx, broker.NodeOptions{Name: name, Roles: []string{"ingest"}})
	if err != nil {
		t.Fatal(err)
	}
	mr, err := New(s.p, b, Options{Registerer: prometheus.NewRegistry(), Timing: fast, Owner: node,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("process", name)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = mr.Run(rctx) })
	var once sync.Once
	pr := &process{b: b, node: node, mr: mr}
	pr.stop = func() {
		once.Do(func() {
			rcancel()
			wg.Wait()
			node.Close()
			if !own {
				b.Close()
			}
		})
	}
	t.Cleanup(pr.stop)
	return pr
}

// pulled is the other site's partitions this process pulls for the link.
func (pr *process) pulled() int {
	var s api.Stats
	pr.mr.AddStats(&s)
	return s.Links[0].Partitions
}

// TestMirrorSharedByProcesses runs one link in two processes of hq: the
// other site's partitions are split between them (each pulls a share,
// together all), every event lands once; when one process stops, the
// other takes its share and pulls what comes next.
func TestMirrorSharedByProcesses(t *testing.T) {
	eu := newSite(t, "eu", 4)
	hq := newSite(t, "hq", 4, eu)
	eu.publish(0, 400)
	a := hq.startProcess(t, "a", true)
	b := hq.startProcess(t, "b", false)
	eu.publish(400, 200) // while they run
	checkFor(t, 30*time.Second, func() error { return want(hq, map[string]int{"eu": 600}) })
	checkFor(t, 20*time.Second, func() error {
		if pa, pb := a.pulled(), b.pulled(); pa == 0 || pb == 0 || pa+pb != 4 {
			return fmt.Errorf("process a pulls %d partitions, b %d; want a share each, 4 together", pa, pb)
		}
		return nil
	})
	// The cluster says so too: the link's shares, each owned by one node.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := hq.b.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var owned []int
	for _, n := range cl.Nodes {
		if len(n.Owns["mirror.eu.metrics"]) == 0 {
			t.Errorf("node %s owns no share of the link: %+v", n.ID, n.Owns)
		}
		owned = append(owned, n.Owns["mirror.eu.metrics"]...)
	}
	slices.Sort(owned)
	if fmt.Sprint(owned) != "[0 1 2 3]" {
		t.Errorf("shares owned %v, want [0 1 2 3] once each", owned)
	}
	for _, pr := range []*process{a, b} {
		for _, c := range pr.mr.Checks() {
			if err := c.Ready(context.Background()); err != nil {
				t.Errorf("%s: %v", c.Name, err)
			}
		}
	}

	b.stop()
	eu.publish(600, 300)
	checkFor(t, 30*time.Second, func() error { return want(hq, map[string]int{"eu": 900}) })
	checkFor(t, 20*time.Second, func() error {
		if n := a.pulled(); n != 4 {
			return fmt.Errorf("process a pulls %d partitions, want all 4 once b stopped", n)
		}
		return caughtUp(hq, "mirror.eu.metrics", 4, 900)
	})
}
