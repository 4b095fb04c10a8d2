package batch

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// durableWait bounds how long a recompute waits for the lake writers to
// make the log durable up to its end before it computes what the lake holds.
const durableWait = 30 * time.Second

// flushRequest asks a partition's lake writer to make every offset below
// until durable in the lake now, without waiting for its roll.
type flushRequest struct {
	until int64
	done  chan error // buffered: the writer never blocks on it
}

// flushRequests are a topic's channels to its partition writers, one per
// partition; owned[p] is set while partition p's writer runs in this
// process (with several processes, each writes the partitions it owns).
type flushRequests struct {
	owned []atomic.Bool
	parts []chan *flushRequest
}

func newFlushRequests(partitions int) *flushRequests {
	f := &flushRequests{parts: make([]chan *flushRequest, partitions), owned: make([]atomic.Bool, partitions)}
	for i := range f.parts {
		f.parts[i] = make(chan *flushRequest, 16)
	}
	return f
}

// errNoLakeWriter is returned by makeDurable when the writers of the
// partitions behind do not run in this process.
var errNoLakeWriter = errors.New("the lake writer does not run in this process")

// makeDurable makes the topic's lake hold the log up to the log's end as
// of now: each partition writer behind it flushes what it read and reads on
// to that end. It says what it did: how many events it made durable, or
// why there was nothing to do.
func (b *Batch) makeDurable(ctx context.Context, tl *topicLake) (string, error) {
	topic := tl.topic.Name
	if b.log == nil {
		return "", errors.New("no log to read the end offsets from")
	}
	infos, err := b.log.Topics(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the log's end offsets: %w", err)
	}
	ends := map[int]int64{}
	for _, ti := range infos {
		if ti.Name == topic {
			for _, pi := range ti.Partitions {
				ends[pi.Partition] = pi.EndOffset
			}
		}
	}
	wctx, cancel := context.WithTimeout(ctx, durableWait)
	defer cancel()
	m := tl.ms.snapshot()
	var behind int64
	var wait []*flushRequest
	var elsewhere []int
	for p := range tl.topic.Partitions {
		end, next := ends[p], m.partition(p).Next
		if next >= end {
			continue
		}
		behind += end - next
		if !tl.flush.owned[p].Load() {
			elsewhere = append(elsewhere, p)
			continue
		}
		req := &flushRequest{until: end, done: make(chan error, 1)}
		select {
		case tl.flush.parts[p] <- req:
			wait = append(wait, req)
		case <-wctx.Done():
			return "", fmt.Errorf("the lake writer of partition %d did not take the request within %s", p, durableWait)
		}
	}
	var total int64
	for _, e := range ends {
		total += e
	}
	if behind == 0 {
		return fmt.Sprintf("the lake already held topic %s up to the log's end (%d events)", topic, total), nil
	}
	if len(wait) == 0 {
		return "", fmt.Errorf("%w: %d events of topic %s are in the log but not yet in the lake", errNoLakeWriter, behind, topic)
	}
	for _, req := range wait {
		select {
		case err := <-req.done:
			if err != nil {
				return "", err
			}
		case <-wctx.Done():
			return "", fmt.Errorf("the lake writer did not reach the log's end within %s (%d events of topic %s were behind)", durableWait, behind, topic)
		}
	}
	if len(elsewhere) > 0 {
		// Their writers run in other processes: their events become
		// durable at those writers' roll.
		return fmt.Sprintf("made the partitions of topic %s written here durable up to the log's end; partitions %v are written by other processes and become durable at their roll (lake.roll)", topic, elsewhere), nil
	}
	return fmt.Sprintf("made %d events of topic %s durable in the lake, up to the log's end (%d events)", behind, topic, total), nil
}

// pendingFlushes are the flush requests a partition writer holds until it
// has read up to their offsets.
type pendingFlushes []*flushRequest

// take adds the requests waiting on ch.
func (p *pendingFlushes) take(ch chan *flushRequest) {
	for {
		select {
		case r := <-ch:
			*p = append(*p, r)
		default:
			return
		}
	}
}

// due reports whether a request waits for offsets below end, which are
// all read: the open files must be flushed now.
func (p pendingFlushes) due(end int64) bool {
	for _, r := range p {
		if end >= r.until {
			return true
		}
	}
	return false
}

// answer tells the requests satisfied by what the lake holds (offsets below
// durable), or all of them the error when err is not nil.
func (p *pendingFlushes) answer(durable int64, err error) {
	keep := (*p)[:0]
	for _, r := range *p {
		switch {
		case err != nil:
			r.done <- err
		case durable >= r.until:
			r.done <- nil
		default:
			keep = append(keep, r)
		}
	}
	*p = keep
}
