package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// ownLog records who ran which partition when, to check that no two
// processes ever work on one partition at once.
type ownLog struct {
	mu      sync.Mutex
	running map[int]string // partition -> node running it
	spans   map[int][]ownSpan
	bad     []string
}

type ownSpan struct {
	node       string
	start, end time.Time
}

func newOwnLog() *ownLog { return &ownLog{running: map[int]string{}, spans: map[int][]ownSpan{}} }

// run is the consumer: it marks the partition as its own until ctx ends.
func (o *ownLog) run(node func() string) func(ctx context.Context, l *Lease) error {
	return func(ctx context.Context, l *Lease) error {
		p, me := l.Partition(), node()
		o.mu.Lock()
		if other, ok := o.running[p]; ok {
			o.bad = append(o.bad, fmt.Sprintf("partition %d: %s started while %s runs it", p, me, other))
		}
		o.running[p] = me
		o.spans[p] = append(o.spans[p], ownSpan{node: me, start: time.Now()})
		o.mu.Unlock()
		<-ctx.Done()
		o.mu.Lock()
		if o.running[p] == me {
			delete(o.running, p)
		}
		s := o.spans[p]
		s[len(s)-1].end = time.Now()
		o.mu.Unlock()
		return nil
	}
}

// owners returns partition -> node for the partitions being run.
func (o *ownLog) owners() map[int]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[int]string{}
	for p, n := range o.running {
		out[p] = n
	}
	return out
}

func (o *ownLog) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range o.bad {
		t.Error(b)
	}
}

// waitBalanced waits until every one of parts partitions runs on one of
// nodes, each node running at least one.
func waitBalanced(t *testing.T, o *ownLog, parts int, nodes []*Node) map[int]string {
	t.Helper()
	var got map[int]string
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		got = o.owners()
		if len(got) != parts {
			return fmt.Errorf("%d of %d partitions run: %v", len(got), parts, got)
		}
		per := map[string]int{}
		for _, n := range got {
			per[n]++
		}
		for _, n := range nodes {
			if per[n.ID()] == 0 {
				return fmt.Errorf("node %s runs nothing: %v", n.ID(), got)
			}
		}
		return nil
	})
	return got
}

func joinT(t *testing.T, b *Broker, name string) *Node {
	t.Helper()
	n, err := b.Join(context.Background(), NodeOptions{Name: name, Roles: []string{"test"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestOwnershipMoves: three processes share a consumer of four
// partitions; one leaves (its partitions move at once) and one is cut off
// from the log (it stops its work by itself, then the others take its
// partitions); a process that joins gets its share. No partition ever runs
// in two processes at once.
func TestOwnershipMoves(t *testing.T) {
	ns := runServer(t)
	p := testPipeline(t.TempDir(), testTopic("metrics", 4))
	p.Broker.URL = ns.ClientURL()
	o := newOwnLog()
	var brokers []*Broker
	var nodes []*Node
	for i := range 3 {
		b := openBroker(t, p, Options{})
		n := joinT(t, b, fmt.Sprintf("w%d", i))
		if _, err := n.Own("sink.test", []string{"metrics"}, o.run(n.ID)); err != nil {
			t.Fatal(err)
		}
		brokers, nodes = append(brokers, b), append(nodes, n)
	}
	before := waitBalanced(t, o, 4, nodes)
	t.Logf("three nodes: %v", before)

	// A soft stop gives the partitions back at once.
	start := time.Now()
	nodes[0].Close()
	waitBalanced(t, o, 4, nodes[1:])
	t.Logf("moved %v after a node left", time.Since(start).Round(time.Millisecond))

	// Cut off: its connection is gone; it fences itself, its key expires,
	// the last one takes everything.
	cut := nodes[1]
	start = time.Now()
	brokers[1].nc.Close()
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		got := o.owners()
		if len(got) != 4 {
			return fmt.Errorf("%d partitions run: %v", len(got), got)
		}
		for _, n := range got {
			if n != nodes[2].ID() {
				return fmt.Errorf("%v", got)
			}
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("moved %v after a node was cut off", took.Round(time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("partitions of a cut-off node moved after %v, more than 15s", took)
	}
	_ = cut

	// A new process joins and gets its share.
	b4 := openBroker(t, p, Options{})
	n4 := joinT(t, b4, "w3")
	if _, err := n4.Own("sink.test", []string{"metrics"}, o.run(n4.ID)); err != nil {
		t.Fatal(err)
	}
	waitBalanced(t, o, 4, []*Node{nodes[2], n4})
	o.check(t)

	// GET /v1/cluster's view, from any process.
	cl, err := b4.Cluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	owned := 0
	var ids []string
	for _, cn := range cl.Nodes {
		ids = append(ids, cn.ID)
		owned += len(cn.Owns["sink.test"])
	}
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		cl, err := b4.Cluster(context.Background())
		if err != nil {
			return err
		}
		var ids []string
		owned := 0
		for _, cn := range cl.Nodes {
			ids = append(ids, cn.ID)
			owned += len(cn.Owns["sink.test"])
		}
		if !slices.Contains(ids, nodes[2].ID()) || !slices.Contains(ids, n4.ID()) || owned != 4 {
			return fmt.Errorf("cluster %+v", cl)
		}
		return nil
	})
	_, _ = owned, ids
}

// TestLeaseFencing: once another process has taken a partition, the old
// lease can neither commit nor keep running.
func TestLeaseFencing(t *testing.T) {
	ns := runServer(t)
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	p.Broker.URL = ns.ClientURL()
	ba, bb := openBroker(t, p, Options{}), openBroker(t, p, Options{})
	a := joinT(t, ba, "a")
	leases := make(chan *Lease, 4)
	stopped := make(chan struct{}, 4)
	_, err := a.Own("sink.test", []string{"metrics"}, func(ctx context.Context, l *Lease) error {
		leases <- l
		<-ctx.Done()
		stopped <- struct{}{}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	la := <-leases
	ctx := context.Background()
	if err := la.Commit(ctx, "metrics", 10, 0, ""); err != nil {
		t.Fatal(err)
	}
	if off, ok, _ := ba.Committed(ctx, "sink.test", "metrics", 0); !ok || off != 10 {
		t.Fatalf("committed %d %v", off, ok)
	}

	// b takes the partition as if a were gone (what rebalance does once
	// a's key expired).
	b := joinT(t, bb, "b")
	g := &group{consumer: "sink.test", topics: []string{"metrics"}, parts: 1, held: map[int]*holding{}, ending: map[int]*holding{},
		run: func(ctx context.Context, l *Lease) error { leases <- l; <-ctx.Done(); return nil }}
	// Not run by b's rebalance (Own): it would take part in the
	// assignment, which this test does by hand. Close ends it.
	owners, err := b.owners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.acquire(ctx, g, 0, owners[ownKey("sink.test", 0)]); err != nil {
		t.Fatal(err)
	}
	// b's key must name the consumer, or a sees the partition owned by a
	// node that does not run it and takes it back. Stopped, the group is
	// in b's key and left alone by b's rebalance.
	b.mu.Lock()
	g.stopped = true
	b.groups[g.consumer] = g
	b.mu.Unlock()
	if err := b.heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	lb := <-leases
	if lb.Epoch() != la.Epoch()+1 {
		t.Fatalf("epochs %d then %d", la.Epoch(), lb.Epoch())
	}
	if off, _, ok := lb.Committed("metrics"); !ok || off != 10 {
		t.Fatalf("the new owner starts at %d %v", off, ok)
	}
	if err := la.Commit(ctx, "metrics", 20, 0, ""); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale commit: %v", err)
	}
	if la.Valid() {
		t.Fatal("the stale lease is still valid")
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the stale owner's run did not stop")
	}
	if err := lb.Commit(ctx, "metrics", 30, 0, "cp-1"); err != nil {
		t.Fatal(err)
	}
	if off, ok, _ := ba.Committed(ctx, "sink.test", "metrics", 0); !ok || off != 30 {
		t.Fatalf("committed %d %v", off, ok)
	}
}
