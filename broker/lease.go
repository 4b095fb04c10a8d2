package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lambdaflow/lambdaflow/internal/retry"
)

// Lease is a partition owned by this process for one consumer. Its
// methods are safe for concurrent use.
type Lease struct {
	n        *Node
	node     string
	consumer string
	part     int
	epoch    uint64

	mu      sync.Mutex
	commits map[string]*leaseCommit // by topic

	lostOnce sync.Once
	lost     chan struct{}
	// stop ends the run working under the lease (its context): a lease
	// lost for any reason (a fenced commit, another owner seen, the node
	// fenced) stops its work, so that no run goes on without being able
	// to commit.
	stop context.CancelFunc
}

type leaseCommit struct {
	rev   uint64
	rec   commitRecord
	found bool // a commit (not only a registration) was there at the start
}

// Partition returns the leased partition.
func (l *Lease) Partition() int { return l.part }

// Epoch returns the lease's epoch: it grows every time the partition
// changes hands, so an owner's work can be told from a predecessor's.
func (l *Lease) Epoch() uint64 { return l.epoch }

// Consumer returns the consumer the lease is for.
func (l *Lease) Consumer() string { return l.consumer }

// Committed returns the position committed for topic's partition when the
// lease was taken (or since, by this lease): the next offset and the
// checkpoint named with it. ok is false when nothing was committed.
func (l *Lease) Committed(topic string) (offset int64, checkpoint string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.commits[topic]
	if c == nil || !c.found {
		return 0, "", false
	}
	return c.rec.Offset, c.rec.Checkpoint, true
}

// Lost is closed when the lease is no longer this process's: another took
// the partition, or this node stopped its work (given back or fenced).
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Valid reports whether the lease still holds: not lost, and the node's
// last heartbeat is recent enough that no other process can have taken the
// partition. Check it before an effect the log cannot fence (a write to a
// database).
func (l *Lease) Valid() bool {
	if l.isLost() {
		return false
	}
	l.n.mu.Lock()
	defer l.n.mu.Unlock()
	return l.n.id == l.node && time.Since(l.n.lastBeat) < fenceAfter
}

func (l *Lease) isLost() bool {
	select {
	case <-l.lost:
		return true
	default:
		return false
	}
}

func (l *Lease) markLost() {
	l.lostOnce.Do(func() {
		close(l.lost)
		if l.stop != nil {
			l.stop()
		}
	})
}

// fence writes the lease's node and epoch into topic's commit record, so
// that the previous owner's next commit fails.
func (l *Lease) fence(ctx context.Context, topic string) error {
	key := commitKey(l.consumer, topic, l.part)
	staleRead := retry.Backoff{Base: 20 * time.Millisecond, Cap: 500 * time.Millisecond}
	for attempt := 0; attempt < commitAttempts; attempt++ {
		var rec commitRecord
		var rev uint64
		e, err := l.n.offs.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		case err != nil:
			return fmt.Errorf("fence %s: %w", key, unavailable(err))
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return fmt.Errorf("fence %s: %w", key, err)
			}
		}
		if rev != 0 && l.supersededBy(rec) {
			// A newer lease fenced the record while this one was being
			// taken (a slow take, retried after a conflict): writing this
			// lease's lower epoch over it would make the newer owner's
			// commits read as a stale replica forever. Epochs in a commit
			// record only grow; this lease is lost.
			return fmt.Errorf("fence %s: %w (the record names %q epoch %d at revision %d; this lease is %q epoch %d)",
				key, ErrFenced, rec.Owner, rec.Epoch, rev, l.node, l.epoch)
		}
		found := rev != 0 && !rec.Registered
		next := rec
		next.Owner, next.Epoch = l.node, l.epoch
		v, _ := json.Marshal(next)
		var nrev uint64
		if rev == 0 {
			nrev, err = l.n.offs.Create(ctx, key, v)
		} else {
			nrev, err = l.n.offs.Update(ctx, key, v, rev)
		}
		if conflict(err) {
			// The previous owner committed meanwhile, or the record was
			// read from a replica behind: read again.
			if err := staleRead.Wait(ctx, attempt+1); err != nil {
				return fmt.Errorf("fence %s: %w", key, unavailable(err))
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("fence %s: %w", key, unavailable(err))
		}
		l.mu.Lock()
		l.commits[topic] = &leaseCommit{rev: nrev, rec: next, found: found}
		l.mu.Unlock()
		return nil
	}
	return fmt.Errorf("fence %s: %w: the record kept changing", key, ErrUnavailable)
}

// Commit records that the consumer has consumed topic's leased partition
// up to, not including, offset (eventTime: the event time of the last
// event, UTC µs, 0 if unknown), and names the checkpoint that holds the
// consumer's state at that offset (empty if none). It is a compare-and-set
// on this lease's last write: when another process has taken the partition
// it fails with an error wrapping ErrFenced, the lease is lost and its run
// stopped.
//
// A refused compare-and-set alone does not mean the partition moved: an
// earlier commit of this lease may have been stored with its answer lost
// (its revision is then newer than the one the lease knows), and the
// record read back to tell may come from a replica that has not applied
// the lease's last writes yet (key-value reads may be served by any
// replica). So the record decides by its epoch: a higher one, or this
// epoch under another node, is a new owner; this node and epoch are this
// lease (commit again on that revision); a lower epoch is a stale read
// (read again). Epochs only grow, and the lease wrote its own when it took
// the partition. A lower epoch that stays through commitAttempts reads is
// no replica behind but a record written without this lease's fence (a
// writer without an epoch): the own record decides then (see reclaim).
func (l *Lease) Commit(ctx context.Context, topic string, offset, eventTime int64, checkpoint string) error {
	if offset < 0 {
		return fmt.Errorf("broker: commit %s %q/%d: negative offset %d", l.consumer, topic, l.part, offset)
	}
	if l.isLost() {
		return fmt.Errorf("broker: commit %s %q/%d: %w", l.consumer, topic, l.part, ErrFenced)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.commits[topic]
	if c == nil {
		return fmt.Errorf("broker: commit %s %q/%d: the lease does not cover the topic", l.consumer, topic, l.part)
	}
	key := commitKey(l.consumer, topic, l.part)
	rec := commitRecord{Offset: offset, EventTime: eventTime, CommittedAt: l.n.b.now().UnixMicro(),
		Owner: l.node, Epoch: l.epoch, Checkpoint: checkpoint}
	v, _ := json.Marshal(rec)
	staleRead := retry.Backoff{Base: 20 * time.Millisecond, Cap: 500 * time.Millisecond}
	fail := func(err error) error {
		return fmt.Errorf("broker: commit %s %q/%d: %w", l.consumer, topic, l.part, err)
	}
	stale, reclaimed, saw := 0, false, ""
	// Every pass either ends, or adopts a newer revision of this lease's
	// own, or counts a stale read: bounded by twice commitAttempts.
	for pass := 0; pass < 2*commitAttempts; pass++ {
		nrev, err := l.n.offs.Update(ctx, key, v, c.rev)
		if err == nil {
			c.rev, c.rec, c.found = nrev, rec, true
			return nil
		}
		if !conflict(err) {
			return fail(unavailable(err))
		}
		e, gerr := l.n.offs.Get(ctx, key)
		if gerr != nil {
			return fail(unavailable(gerr))
		}
		var cur commitRecord
		if err := json.Unmarshal(e.Value(), &cur); err != nil {
			return fail(fmt.Errorf("reading the record: %w", err))
		}
		saw = fmt.Sprintf("the record names %q epoch %d at revision %d; this lease is %q epoch %d, last wrote revision %d",
			cur.Owner, cur.Epoch, e.Revision(), l.node, l.epoch, c.rev)
		switch {
		case l.supersededBy(cur):
			l.markLost()
			return fail(fmt.Errorf("%w (%s)", ErrFenced, saw))
		case cur.Epoch == l.epoch && e.Revision() > c.rev:
			c.rev = e.Revision() // a commit of ours stored unanswered
			continue
		}
		stale++
		if stale < commitAttempts {
			// A replica behind this lease's own writes: read again.
			if err := staleRead.Wait(ctx, stale); err != nil {
				return fail(unavailable(err))
			}
			continue
		}
		if reclaimed {
			break
		}
		// The same older record read after read: ask the own record.
		if err := l.reclaim(ctx, saw); err != nil {
			return fail(err)
		}
		reclaimed = true
		c.rev = e.Revision() // commit over it: the write fences it again
	}
	return fail(fmt.Errorf("%w: the record kept changing under this lease's writes (last %s)", ErrUnavailable, saw))
}

// supersededBy reports whether rec, a commit record, was written by a
// newer lease of the partition: a higher epoch, or this epoch under
// another node.
func (l *Lease) supersededBy(rec commitRecord) bool {
	return rec.Epoch > l.epoch || (rec.Epoch == l.epoch && rec.Owner != l.node)
}

// reclaim decides a commit record of an older epoch that does not go away
// (saw describes it): a replica behind would have caught up, so it was
// written after this lease's fence by a writer that carries no epoch, or
// by an older lease. The partition's own record says whether this lease
// still holds: if it names this node and epoch, nil (the caller commits
// over the record, which fences it again: no newer owner has fenced it,
// or its epoch would show, and one that fences later still wins by its
// compare-and-set); if it names a newer owner or none, the lease is lost
// (ErrFenced); an older epoch there is a replica behind (ErrUnavailable,
// the caller retries later).
func (l *Lease) reclaim(ctx context.Context, saw string) error {
	key := ownKey(l.consumer, l.part)
	e, err := l.n.offs.Get(ctx, key)
	var own ownRecord
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
	case err != nil:
		return fmt.Errorf("%s: %w", key, unavailable(err))
	default:
		if err := json.Unmarshal(e.Value(), &own); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	switch {
	case own.Node == l.node && own.Epoch == l.epoch:
		l.n.log.Warn("cluster: a commit record of an older epoch stayed under this lease's writes; committing over it",
			"consumer", l.consumer, "partition", l.part, "saw", saw)
		return nil
	case own.Epoch < l.epoch && e != nil:
		return fmt.Errorf("%w: %s names %q epoch %d, older than this lease (a replica behind); %s",
			ErrUnavailable, key, own.Node, own.Epoch, saw)
	}
	l.markLost()
	return fmt.Errorf("%w (%s names %q epoch %d; %s)", ErrFenced, key, own.Node, own.Epoch, saw)
}

// commitAttempts bounds the compare-and-sets of one Commit or fence.
const commitAttempts = 8
