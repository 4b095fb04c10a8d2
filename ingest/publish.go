package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// result is the answer for one event of a request.
type result struct {
	partition int32
	offset    int64
	duplicate bool
}

// errAppend marks a request failed because an Append of one of its
// batches failed; the cause is wrapped.
var errAppend = errors.New("ingest: append failed")

// publish makes every event of a request durable, or recognises it as a
// duplicate, and returns the per-event results in request order and how
// many events it appended.
//
// Ids a request appends are claimed in the topic's dedup index first, so a
// concurrent request with the same id waits for this one's outcome instead
// of appending it a second time. A request first sends its own claims and
// only then waits for ids claimed by others: two requests each waiting for
// the other's ids cannot deadlock. A wait that ends in the other request's
// failure makes this request append the event itself, in another round.
//
// If an Append fails the request fails as a whole (errAppend). Events of
// it that did become durable stay in the log and in the index, so a retry
// with the same ids answers them as duplicates and appends only the rest.
//
// place says where the events go; placeByKey is HTTP ingest's rule.
func (in *Ingest) publish(ctx context.Context, ts *topicState, events []event.Event, dedupable []bool, place placement, bufs *requestBufs) ([]result, int, error) {
	n := len(events)
	res := make([]result, n)
	var hs []idHash
	var claims []claim
	anyDedup := false
	for i := range events {
		if dedupable[i] {
			if hs == nil {
				hs, claims = make([]idHash, n), make([]claim, n)
			}
			hs[i] = ts.dedup.hash(events[i].ID)
			anyDedup = true
		}
	}
	if !anyDedup {
		// Generated ids only: nothing to claim, nothing to remember.
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		origins, err := in.appendEvents(ts, events, all, place, bufs)
		if err != nil {
			return nil, 0, err
		}
		for i, o := range origins {
			res[i] = result{partition: o.partition, offset: o.offset}
		}
		return res, n, nil
	}

	todo := make([]bool, n) // events this round handles
	for i := range todo {
		todo[i] = true
	}
	want := make([]bool, n)
	send := make([]int, 0, n)
	accepted := 0
	for {
		for i := range want {
			want[i] = todo[i] && dedupable[i]
		}
		owner := new(claimer)
		ts.dedup.reserve(in.now().UnixMicro(), owner, hs, want, claims)

		// Send what this round appends: events without a client id, and
		// the ids this request now owns.
		send = send[:0]
		for i := range n {
			if todo[i] && (!dedupable[i] || claims[i].kind == claimOwn) {
				send = append(send, i)
			}
		}
		origins, err := in.appendEvents(ts, events, send, place, bufs)
		owned := func(i int) (origin, bool) {
			if origins == nil || origins[i].offset < 0 {
				return origin{}, false
			}
			return origins[i], true
		}
		for i := range want {
			want[i] = want[i] && claims[i].kind == claimOwn
		}
		ts.dedup.resolve(in.now().UnixMicro(), owner, hs, want, owned)
		if err != nil {
			return nil, 0, err
		}
		for _, i := range send {
			o := origins[i]
			res[i] = result{partition: o.partition, offset: o.offset}
			accepted++
		}

		var waits []int
		for i := range n {
			if !todo[i] || !dedupable[i] {
				continue
			}
			switch c := claims[i]; c.kind {
			case claimDup:
				res[i] = result{partition: c.orig.partition, offset: c.orig.offset, duplicate: true}
			case claimInReq:
				f := res[c.first]
				res[i] = result{partition: f.partition, offset: f.offset, duplicate: true}
			case claimWait:
				waits = append(waits, i)
			}
		}
		clear(todo)
		if len(waits) == 0 {
			return res, accepted, nil
		}
		for _, i := range waits {
			p := claims[i].p
			select {
			case <-p.done:
			case <-ctx.Done():
				return nil, 0, fmt.Errorf("ingest: waiting for a concurrent request with the same id: %w", ctx.Err())
			}
			if p.ok {
				res[i] = result{partition: p.orig.partition, offset: p.orig.offset, duplicate: true}
			} else {
				todo[i] = true // the other request failed: append it ourselves
			}
		}
	}
}

// placement says which partition a request's events go to, and whether a
// partition's events of one request must get consecutive offsets.
type placement struct {
	// partition is where every event goes; -1 places each by its key
	// (the topic's partitioning rule).
	partition int
	// contiguous keeps a request's events of one partition together: when
	// they need more than one log entry, no other request's events come
	// between those entries, so they get consecutive offsets.
	contiguous bool
}

// placeByKey is HTTP ingest's placement.
var placeByKey = placement{partition: -1}

// appendEvents sends events[idx] through their partitions' batchers and
// waits until all are settled. It returns each sent event's origin, by
// index into events (offset -1 where its chunk failed; nil when nothing
// was sent), and an error wrapping errAppend if any chunk failed.
func (in *Ingest) appendEvents(ts *topicState, events []event.Event, idx []int, place placement, bufs *requestBufs) ([]origin, error) {
	if len(idx) == 0 {
		return nil, nil
	}
	// Counting sort by partition keeps each partition's events in request
	// order and needs no per-partition allocations.
	np := len(ts.batchers)
	partOf := make([]int32, len(idx))
	count := make([]int, np+1)
	for k, i := range idx {
		p := place.partition
		if p < 0 {
			p = ts.part.of(&events[i])
		}
		partOf[k] = int32(p)
		count[p+1]++
	}
	for p := 1; p <= np; p++ {
		count[p] += count[p-1]
	}
	order := make([]int, len(idx)) // position in sorted → index into events
	// Each round of a request has its own; only the first may borrow.
	var sorted []event.Event
	if bufs != nil && cap(bufs.sorted) >= len(idx) && len(bufs.sorted) == 0 {
		sorted = bufs.sorted[:len(idx)]
		bufs.sorted = sorted
	} else {
		sorted = make([]event.Event, len(idx))
		if bufs != nil && len(bufs.sorted) == 0 && len(idx) <= maxPooledEvents {
			bufs.sorted = sorted
		}
	}
	next := append([]int(nil), count[:np]...)
	for k, i := range idx {
		p := partOf[k]
		order[next[p]] = i
		sorted[next[p]] = events[i]
		next[p]++
	}
	offs := make([]int64, len(idx))

	// Chunks are cut at max_batch events or maxEntryBytes, whichever comes
	// first, so that each fits one log entry.
	maxBatch := max(in.p.Ingest.MaxBatch, 1)
	var chunks []*chunk
	var parts, bases []int
	var all []*chunk // every chunk; chunks holds the ones submitted
	cut := func(p, lo, hi, size int) {
		c := &chunk{bytes: size, events: sorted[lo:hi:hi], offsets: offs[lo:hi:hi]}
		all = append(all, c)
		parts, bases = append(parts, p), append(bases, lo)
		if prev := len(all) - 2; place.contiguous && prev >= 0 && parts[prev] == p {
			// The batcher appends it right after its predecessor.
			all[prev].next, c.cont = c, true
			return
		}
		chunks = append(chunks, c)
	}
	for p := range np {
		lo, size := count[p], 0
		for k := count[p]; k < count[p+1]; k++ {
			eb := eventBytes(&sorted[k])
			if k > lo && (k-lo >= maxBatch || size+eb > maxEntryBytes) {
				cut(p, lo, k, size)
				lo, size = k, 0
			}
			size += eb
		}
		if hi := count[p+1]; hi > lo {
			cut(p, lo, hi, size)
		}
	}
	c := newCall(len(all))
	for _, ch := range all {
		ch.call = c
	}
	heads := parts
	if len(chunks) != len(all) {
		heads = make([]int, 0, len(chunks))
		for i, ch := range all {
			if !ch.cont {
				heads = append(heads, parts[i])
			}
		}
	}
	if err := in.submit(ts, heads, chunks); err != nil {
		return nil, err
	}
	<-c.done // Appends are bounded by the log's timeouts; see batcher.run

	out := make([]origin, len(events))
	for ci, ch := range all {
		for j := range ch.offsets {
			i := order[bases[ci]+j]
			if ch.ok {
				out[i] = origin{offset: ch.offsets[j], partition: int32(parts[ci]), at: events[i].Ingest}
			} else {
				out[i] = origin{offset: -1}
			}
		}
	}
	if err := c.failure(); err != nil {
		return out, fmt.Errorf("%w: %w", errAppend, err)
	}
	return out, nil
}
