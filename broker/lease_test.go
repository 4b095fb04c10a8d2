package broker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// leaseNode opens a broker on a server of its own with topic metrics (one
// partition) and joins a node that owns nothing.
func leaseNode(t *testing.T) (*Broker, *Node) {
	t.Helper()
	ns := runServer(t)
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	p.Broker.URL = ns.ClientURL()
	b := openBroker(t, p, Options{})
	return b, joinT(t, b, "a")
}

// leaseT is a lease of partition 0 of consumer sink.test over topic
// metrics, of the given node id and epoch, on node n (which owns nothing
// by itself, so that only the test moves the partition): its own record
// is written as a take would, and nothing is fenced yet.
func leaseT(t *testing.T, n *Node, node string, epoch uint64) *Lease {
	t.Helper()
	putOwn(t, n, ownRecord{Node: node, Epoch: epoch})
	return &Lease{n: n, node: node, consumer: "sink.test", part: 0, epoch: epoch,
		commits: map[string]*leaseCommit{}, lost: make(chan struct{})}
}

// putOwn writes the own record of sink.test's partition 0.
func putOwn(t *testing.T, n *Node, rec ownRecord) {
	t.Helper()
	v, _ := json.Marshal(rec)
	if _, err := n.offs.Put(context.Background(), ownKey("sink.test", 0), v); err != nil {
		t.Fatal(err)
	}
}

// readCommit reads the commit record of sink.test on metrics/0.
func readCommit(t *testing.T, n *Node) commitRecord {
	t.Helper()
	e, err := n.offs.Get(context.Background(), commitKey("sink.test", "metrics", 0))
	if err != nil {
		t.Fatal(err)
	}
	var rec commitRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func isLost(l *Lease) bool {
	select {
	case <-l.Lost():
		return true
	default:
		return false
	}
}

// TestFenceAfterNewerOwner: a take whose fence lands after a newer owner's
// (the older take was slow, its compare-and-set refused and read again
// after the newer owner had fenced) must not write its lower epoch over
// the newer one's: the newer owner's commits would then read the record
// as a replica behind, again and again, and never land. The older lease
// learns it is fenced instead; the owner commits.
func TestFenceAfterNewerOwner(t *testing.T) {
	b, n := leaseNode(t)
	ctx := context.Background()

	older := leaseT(t, n, "x-1", 5) // took the partition, its fence not stored yet
	newer := leaseT(t, n, "y-1", 6) // took it from x-1, and fenced first
	if err := newer.fence(ctx, "metrics"); err != nil {
		t.Fatal(err)
	}
	err := older.fence(ctx, "metrics")
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("fence of epoch 5 over epoch 6's record: %v, want ErrFenced", err)
	}
	if !strings.Contains(err.Error(), `"y-1" epoch 6`) {
		t.Errorf("error %q does not say what it saw", err)
	}
	if rec := readCommit(t, n); rec.Owner != "y-1" || rec.Epoch != 6 {
		t.Fatalf("commit record names %q epoch %d after the older fence, want y-1 epoch 6", rec.Owner, rec.Epoch)
	}
	if err := newer.Commit(ctx, "metrics", 10, 0, ""); err != nil {
		t.Fatalf("the owner's commit: %v", err)
	}
	if off, ok, _ := b.Committed(ctx, "sink.test", "metrics", 0); !ok || off != 10 {
		t.Fatalf("committed %d %v, want 10", off, ok)
	}
}

// TestCommitOverPersistentOlderRecord: a record of an older epoch that
// stays, read after read, is no replica behind (one server has none): a
// writer without an epoch (Broker.Commit) or an older lease wrote it after
// the owner's fence. The own record decides: while it names the lease,
// the commit lands over it (fencing the record again); once it names a
// newer owner whose fence is not stored yet, the lease is lost.
func TestCommitOverPersistentOlderRecord(t *testing.T) {
	b, n := leaseNode(t)
	ctx := context.Background()

	l := leaseT(t, n, "x-1", 3)
	if err := l.fence(ctx, "metrics"); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx, "metrics", 10, 0, ""); err != nil {
		t.Fatal(err)
	}
	// A writer without an epoch, behind the lease's back.
	if err := b.Commit(ctx, "sink.test", "metrics", 0, 7, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx, "metrics", 20, 0, ""); err != nil {
		t.Fatalf("commit over an epoch-less record while the own record names the lease: %v", err)
	}
	if rec := readCommit(t, n); rec.Offset != 20 || rec.Owner != "x-1" || rec.Epoch != 3 {
		t.Fatalf("commit record %+v, want offset 20 by x-1 epoch 3", rec)
	}
	if isLost(l) {
		t.Fatal("the owner's lease was lost")
	}

	// A newer owner took the partition and has not fenced the record yet;
	// meanwhile an epoch-less write came.
	putOwn(t, n, ownRecord{Node: "y-1", Epoch: 4})
	if err := b.Commit(ctx, "sink.test", "metrics", 0, 7, 0); err != nil {
		t.Fatal(err)
	}
	err := l.Commit(ctx, "metrics", 30, 0, "")
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("commit after the partition moved: %v, want ErrFenced", err)
	}
	if !strings.Contains(err.Error(), `"y-1" epoch 4`) || !strings.Contains(err.Error(), `"" epoch 0`) {
		t.Errorf("error %q does not say what it saw", err)
	}
	if !isLost(l) {
		t.Fatal("the lease is not lost")
	}
	if rec := readCommit(t, n); rec.Offset != 7 || rec.Epoch != 0 {
		t.Fatalf("commit record %+v, want the epoch-less offset 7 untouched", rec)
	}
	// The newer owner fences and commits from there.
	newer := leaseT(t, n, "y-1", 4)
	if err := newer.fence(ctx, "metrics"); err != nil {
		t.Fatal(err)
	}
	if err := newer.Commit(ctx, "metrics", 8, 0, ""); err != nil {
		t.Fatal(err)
	}
}
