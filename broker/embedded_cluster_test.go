package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// freePorts returns n different loopback ports that were free a moment
// ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	// Held together until all are chosen, so that they differ.
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// clusterPipeline is node i of a cluster of embedded servers routed on
// ports.
func clusterPipeline(t *testing.T, ports []int, i int) *pipelines.Pipeline {
	var routes []string
	for j, p := range ports {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		}
	}
	p := testPipeline(t.TempDir(), testTopic("metrics", 2))
	p.Broker.Replicas = 3
	p.Broker.Cluster = pipelines.Cluster{Name: "lf", Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes, Node: fmt.Sprintf("n%d", i)}
	return p
}

// TestEmbeddedCluster runs three brokers whose embedded servers form one
// cluster (broker.cluster): Open waits for a quorum, the three share one
// replicated log, and it outlives one of them.
func TestEmbeddedCluster(t *testing.T) {
	ports := freePorts(t, 3)
	brokers := make([]*Broker, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range brokers {
		// Concurrently: each Open waits until enough nodes are up.
		wg.Go(func() {
			brokers[i], errs[i] = Open(ctx, clusterPipeline(t, ports, i), Options{Registerer: prometheus.NewRegistry()})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open node %d: %v", i, err)
		}
		t.Cleanup(func() { brokers[i].Close() })
	}
	for _, b := range brokers {
		if err := b.EnsureTopics(ctx); err != nil {
			t.Fatalf("EnsureTopics: %v", err)
		}
	}
	off0, err := brokers[0].Append(ctx, "metrics", 1, testEvents("a", 0, 10, 0))
	if err != nil {
		t.Fatal(err)
	}
	off1, err := brokers[1].Append(ctx, "metrics", 1, testEvents("b", 0, 10, 0))
	if err != nil {
		t.Fatal(err)
	}
	if off0 != 0 || off1 != 10 {
		t.Fatalf("appends through two nodes got offsets %d and %d, want 0 and 10 (one log)", off0, off1)
	}
	si, err := brokers[2].js.Stream(ctx, "LF_metrics_1")
	if err != nil {
		t.Fatal(err)
	}
	if info := si.CachedInfo(); info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("partition stream: replicas %d, cluster %+v; want 3 replicas", info.Config.Replicas, info.Cluster)
	}
	fetched := func(b *Broker) ([]string, error) {
		entries, err := b.Fetch(ctx, "metrics", 1, FromStart(), 100)
		var ids []string
		for _, e := range entries {
			for _, ev := range e.Events {
				ids = append(ids, ev.ID)
			}
		}
		return ids, err
	}
	ids, err := fetched(brokers[2])
	if err != nil || len(ids) != 20 || ids[0] != "a-0" || ids[10] != "b-0" {
		t.Fatalf("node 2 reads %d events %v (%v), want a-0…a-9 then b-0…b-9", len(ids), ids, err)
	}

	// One node goes away: the other two keep a quorum and take appends.
	brokers[0].Close()
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		actx, acancel := context.WithTimeout(ctx, 3*time.Second)
		defer acancel()
		_, err := brokers[1].Append(actx, "metrics", 1, testEvents("c", 0, 5, 0))
		return err
	})
	ids, err = fetched(brokers[2])
	if err != nil || len(ids) < 25 || !strings.HasPrefix(ids[len(ids)-1], "c-") {
		t.Fatalf("after node 0 left, node 2 reads %d events (%v), want the 5 appended through node 1 at the end", len(ids), err)
	}
}

// TestEmbeddedClusterWaitsForPeers checks that a node whose peers never
// come up does not start alone: Open waits for them until its context
// ends, and says so.
func TestEmbeddedClusterWaitsForPeers(t *testing.T) {
	ports := freePorts(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	b, err := Open(ctx, clusterPipeline(t, ports, 0), Options{Registerer: prometheus.NewRegistry()})
	if err == nil {
		b.Close()
		t.Fatal("Open returned without a quorum")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "the cluster did not form") {
		t.Fatalf("Open: %v, want the cluster did not form (deadline exceeded)", err)
	}
}
