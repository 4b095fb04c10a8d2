package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// ownedOne joins a node that owns the single partition of consumer
// sink.test over topic metrics, and returns it with the lease of its first
// run and a channel closed when that run returns.
func ownedOne(t *testing.T, b *Broker, name string) (*Node, *Lease, chan struct{}) {
	t.Helper()
	n := joinT(t, b, name)
	leases := make(chan *Lease, 1)
	ended := make(chan struct{})
	var once sync.Once
	_, err := n.Own("sink.test", []string{"metrics"}, func(ctx context.Context, l *Lease) error {
		first := false
		once.Do(func() { first = true })
		if first {
			leases <- l
		}
		<-ctx.Done()
		if first {
			close(ended)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-leases:
		return n, l, ended
	case <-time.After(30 * time.Second):
		t.Fatal("the partition was not taken")
	}
	return nil, nil, nil
}

// putCommit writes the commit record of sink.test on metrics/0 behind the
// lease's back.
func putCommit(t *testing.T, n *Node, rec commitRecord) {
	t.Helper()
	v, _ := json.Marshal(rec)
	if _, err := n.offs.Put(context.Background(), commitKey("sink.test", "metrics", 0), v); err != nil {
		t.Fatal(err)
	}
}

// TestCommitDecidesByEpoch: a commit refused by the compare-and-set loses
// the lease only when the record names a newer owner. A record of an
// older epoch is what a key-value replica behind the lease's own writes
// serves (reads may come from any replica): the commit is not fenced, the
// lease and its run go on (one that stays is committed over once the own
// record confirms the lease), and a commit lands over this lease's own
// commit stored unanswered. A record of a
// higher epoch fences the lease and stops its run at once, before the
// node's next look at the ownership.
func TestCommitDecidesByEpoch(t *testing.T) {
	ns := runServer(t)
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	p.Broker.URL = ns.ClientURL()
	b := openBroker(t, p, Options{})
	n, l, ended := ownedOne(t, b, "a")
	ctx := context.Background()
	if err := l.Commit(ctx, "metrics", 10, 0, ""); err != nil {
		t.Fatal(err)
	}

	// An older epoch's record (what a stale replica shows; here it stays,
	// read after read): not fenced; the own record still names the lease,
	// so the commit lands over it.
	putCommit(t, n, commitRecord{Offset: 5, Owner: "gone-1", Epoch: l.Epoch() - 1})
	if err := l.Commit(ctx, "metrics", 20, 0, ""); err != nil {
		t.Fatalf("commit over an older epoch's record: %v", err)
	}
	if off, ok, _ := b.Committed(ctx, "sink.test", "metrics", 0); !ok || off != 20 {
		t.Fatalf("committed %d %v, want 20", off, ok)
	}
	if !l.Valid() {
		t.Fatal("a record of an older epoch lost the lease")
	}
	select {
	case <-ended:
		t.Fatal("a record of an older epoch stopped the run")
	default:
	}

	// The lease's own commit, stored with its answer lost.
	putCommit(t, n, commitRecord{Offset: 20, Owner: l.node, Epoch: l.Epoch()})
	if err := l.Commit(ctx, "metrics", 30, 0, ""); err != nil {
		t.Fatalf("commit after the lease's own unanswered one: %v", err)
	}
	if off, ok, _ := b.Committed(ctx, "sink.test", "metrics", 0); !ok || off != 30 {
		t.Fatalf("committed %d %v, want 30", off, ok)
	}

	// A newer owner: fenced, and the run stops at once.
	putCommit(t, n, commitRecord{Offset: 40, Owner: "other-1", Epoch: l.Epoch() + 1})
	if err := l.Commit(ctx, "metrics", 50, 0, ""); !errors.Is(err, ErrFenced) {
		t.Fatalf("commit over a newer epoch: %v, want ErrFenced", err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the run of a fenced lease did not stop")
	}
}

// TestNoOverlappingRunsAfterLoss: a partition lost to another process is
// not run again in this process while its previous run is still ending
// (a slow soft stop: a final flush, a checkpoint), even when it comes
// back to this process at once; and a node named as the owner of a
// partition it does not run (giving it back failed) frees it, so that the
// partition runs again instead of waiting for it forever.
func TestNoOverlappingRunsAfterLoss(t *testing.T) {
	ns := runServer(t)
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	p.Broker.URL = ns.ClientURL()
	ba, bb := openBroker(t, p, Options{}), openBroker(t, p, Options{})
	a := joinT(t, ba, "a")
	var mu sync.Mutex
	running, overlaps, runs := 0, 0, 0
	release := make(chan struct{})
	_, err := a.Own("sink.test", []string{"metrics"}, func(ctx context.Context, l *Lease) error {
		mu.Lock()
		running++
		runs++
		if running > 1 {
			overlaps++
		}
		first := runs == 1
		mu.Unlock()
		<-ctx.Done()
		if first {
			<-release // the first run's soft stop takes its time
		}
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if runs != 1 {
			return fmt.Errorf("%d runs", runs)
		}
		return nil
	})

	// Another process takes the partition (by hand, as if a were gone) and
	// gives it back at once: a sees it lost, then free and its own again.
	other := joinT(t, bb, "b")
	g := &group{consumer: "sink.test", topics: []string{"metrics"}, parts: 1, held: map[int]*holding{}, ending: map[int]*holding{},
		run: func(ctx context.Context, l *Lease) error { <-ctx.Done(); return nil }}
	owners, err := other.owners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.acquire(ctx, g, 0, owners[ownKey("sink.test", 0)]); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.groups["sink.test"].ending[0] == nil {
			return errors.New("a has not seen the partition lost yet")
		}
		return nil
	})
	other.mu.Lock()
	h := g.held[0]
	other.mu.Unlock()
	h.cancel()
	<-h.done // given back: the record is free
	// a looks at the ownership every rebalanceEvery and finds the
	// partition free and its own; three looks without a second run, while
	// the first one is still ending.
	time.Sleep(3 * rebalanceEvery)
	mu.Lock()
	if runs != 1 {
		t.Errorf("the partition ran again (%d runs) while its previous run was ending", runs)
	}
	mu.Unlock()
	close(release)
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if runs != 2 || running != 1 {
			return fmt.Errorf("%d runs, %d running", runs, running)
		}
		return nil
	})
	mu.Lock()
	if overlaps > 0 {
		t.Errorf("%d runs started while another ran", overlaps)
	}
	mu.Unlock()

	// The record names b, which is alive but does not run the partition
	// (it gave it back, and that write was lost): b frees it, a takes it.
	if _, err := a.Own("sink.other", []string{"metrics"}, func(ctx context.Context, l *Lease) error { <-ctx.Done(); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Own("sink.other", []string{"metrics"}, func(ctx context.Context, l *Lease) error { <-ctx.Done(); return nil }); err != nil {
		t.Fatal(err)
	}
	var assigned *Node
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		for _, n := range []*Node{a, other} {
			n.mu.Lock()
			held := n.groups["sink.other"].held[0] != nil
			n.mu.Unlock()
			if held {
				assigned = n
				return nil
			}
		}
		return errors.New("sink.other/0 is not run yet")
	})
	// Name the node it is not assigned to as its owner, as a lost answer
	// to giving it back would leave the record.
	stray := a
	if assigned == a {
		stray = other
	}
	assigned.mu.Lock()
	lease := assigned.groups["sink.other"].held[0].lease
	assigned.mu.Unlock()
	v, _ := json.Marshal(ownRecord{Node: stray.ID(), Epoch: lease.Epoch() + 1})
	if _, err := a.offs.Put(ctx, ownKey("sink.other", 0), v); err != nil {
		t.Fatal(err)
	}
	// Run again, under a newer epoch: by the node it is assigned to, or,
	// should a late heartbeat on a loaded machine change the membership
	// meanwhile, by the other; never left waiting for the stray record.
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		for _, n := range []*Node{assigned, stray} {
			n.mu.Lock()
			h := n.groups["sink.other"].held[0]
			n.mu.Unlock()
			if h != nil && h.lease.Epoch() > lease.Epoch()+1 {
				return nil
			}
		}
		return errors.New("the partition is not run again")
	})
}
