package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// testCluster is n nats-servers with JetStream, routed on loopback, each
// with its own store: the real thing, in one process.
type testCluster struct {
	servers []*server.Server
	stopped map[int]bool
}

func startCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	// Route ports must be known before the servers start, to list them.
	ports := freePorts(t, n)
	c := &testCluster{stopped: map[int]bool{}}
	for i := range n {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		ns, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "lf", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
			NoLog:      true,
			NoSigs:     true,
		})
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		c.servers = append(c.servers, ns)
	}
	t.Cleanup(c.shutdown)
	for _, ns := range c.servers {
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("%s not ready", ns.Name())
		}
	}
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, ns := range c.servers {
			if ns.JetStreamIsLeader() {
				return nil
			}
		}
		return errors.New("no JetStream meta leader")
	})
	return c
}

func (c *testCluster) urls() string {
	var urls []string
	for _, ns := range c.servers {
		urls = append(urls, ns.ClientURL())
	}
	return strings.Join(urls, ",")
}

func (c *testCluster) stop(name string) {
	for i, ns := range c.servers {
		if ns.Name() == name && !c.stopped[i] {
			ns.Shutdown()
			ns.WaitForShutdown()
			c.stopped[i] = true
		}
	}
}

func (c *testCluster) shutdown() {
	for i, ns := range c.servers {
		if !c.stopped[i] {
			ns.Shutdown()
			ns.WaitForShutdown()
			c.stopped[i] = true
		}
	}
}

// TestClusterNodeLoss appends under load to an R3 topic, stops the leader
// of partition 0's stream, and checks that appends resume and that no
// acknowledged event is lost or moved.
func TestClusterNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	c := startCluster(t, 3)
	p := testPipeline(t.TempDir(), testTopic("metrics", 2))
	p.Broker.URL = c.urls()
	p.Broker.Replicas = 3
	b := openBroker(t, p, Options{})
	ctx := ctxT(t, 60*time.Second)

	type ack struct {
		off    int64
		n      int
		prefix string
		at     time.Time
	}
	var mu sync.Mutex
	acks := map[int][]ack{}
	unavailable := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for part := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				prefix := fmt.Sprintf("p%d.%d", part, i)
				n := 1 + i%20
				for {
					select {
					case <-stop:
						return
					default:
					}
					actx, cancel := context.WithTimeout(ctx, 2*time.Second)
					off, err := b.Append(actx, "metrics", part, testEvents(prefix, 0, n, base))
					cancel()
					if err == nil {
						mu.Lock()
						acks[part] = append(acks[part], ack{off, n, prefix, time.Now()})
						mu.Unlock()
						break
					}
					if !errors.Is(err, ErrUnavailable) {
						t.Errorf("partition %d: %v", part, err)
						return
					}
					mu.Lock()
					unavailable++
					mu.Unlock()
				}
			}
		})
	}
	count := func(part int, after time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range acks[part] {
			if a.at.After(after) {
				n++
			}
		}
		return n
	}
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if count(0, time.Time{}) < 100 || count(1, time.Time{}) < 100 {
			return errors.New("fewer than 100 appends per partition")
		}
		return nil
	})

	st, err := b.js.Stream(ctx, "LF_metrics_0")
	if err != nil {
		t.Fatal(err)
	}
	leader := st.CachedInfo().Cluster.Leader
	stoppedAt := time.Now()
	c.stop(leader)
	t.Logf("stopped %s, the leader of partition 0, after %d/%d appends", leader, count(0, time.Time{}), count(1, time.Time{}))
	// Appends to both partitions resume within a bound (raft elections take
	// 4–9 s here).
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		for part := range 2 {
			if count(part, stoppedAt) < 20 {
				return fmt.Errorf("partition %d: appends have not resumed", part)
			}
		}
		return nil
	})
	t.Logf("appends resumed on both partitions %v after the leader stopped (%d unavailable errors)", time.Since(stoppedAt).Round(time.Millisecond), unavailable)
	close(stop)
	wg.Wait()
	// The client may still be moving to another server.
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error { return b.Ready(ctx) })

	for part := range 2 {
		at := map[int64]string{}
		var next int64
		for _, e := range readAll(t, b, "metrics", part) {
			if e.Offset != next {
				t.Fatalf("partition %d: entry at %d after %d", part, e.Offset, next)
			}
			for j, ev := range e.Events {
				at[e.Offset+int64(j)] = ev.ID
			}
			next = e.End()
		}
		mu.Lock()
		for _, a := range acks[part] {
			for j := range a.n {
				if want := fmt.Sprintf("%s-%d", a.prefix, j); at[a.off+int64(j)] != want {
					t.Fatalf("partition %d offset %d holds %q, acknowledged %q", part, a.off+int64(j), at[a.off+int64(j)], want)
				}
			}
		}
		t.Logf("partition %d: %d acknowledged appends, all present; log ends at %d", part, len(acks[part]), next)
		mu.Unlock()
	}
}
