package ingest

import (
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
// Deduplication is the log's (broker.AppendUnique): each partition's
// appender checks the ids of the events it appends (where dedupable) against
// the ids the partition holds, whichever process appended them, and against
// the events before them in the same entry. Since one partition's appends
// are serialised, a repeat, in this request or in a concurrent one, is
// answered with the first one's offset.
//
// If an Append fails the request fails as a whole (errAppend). Events of
// it that did become durable stay in the log, so a retry with the same ids
// answers them as duplicates and appends only the rest.
//
// place says where the events go; placeByKey is HTTP ingest's rule. arr
// (may be nil) is the request's count in the topic's arrivals, left as
// soon as its events are with the batchers.
func (in *Ingest) publish(ts *topicState, events []event.Event, dedupable []bool, place placement, bufs *requestBufs, arr *arrival) ([]result, int, error) {
	n := len(events)
	origins, err := in.appendEvents(ts, events, dedupable, place, bufs, arr)
	if err != nil {
		return nil, 0, err
	}
	res := make([]result, n)
	accepted := 0
	for i, o := range origins {
		res[i] = result{partition: o.partition, offset: o.offset, duplicate: o.duplicate}
		if !o.duplicate {
			accepted++
		}
	}
	return res, accepted, nil
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

// origin is where one event of a request is in the log.
type origin struct {
	offset    int64
	partition int32
	duplicate bool
}

// appendEvents sends events through their partitions' batchers and waits
// until all are settled. It returns each event's origin, by index into
// events, or an error wrapping errAppend if any chunk failed.
func (in *Ingest) appendEvents(ts *topicState, events []event.Event, dedupable []bool, place placement, bufs *requestBufs, arr *arrival) ([]origin, error) {
	if len(events) == 0 {
		arr.leave()
		return nil, nil
	}
	// Counting sort by partition keeps each partition's events in request
	// order and needs no per-partition allocations.
	np := len(ts.batchers)
	partOf := make([]int32, len(events))
	count := make([]int, np+1)
	for i := range events {
		p := place.partition
		if p < 0 {
			p = ts.part.of(&events[i])
		}
		partOf[i] = int32(p)
		count[p+1]++
	}
	for p := 1; p <= np; p++ {
		count[p] += count[p-1]
	}
	order := make([]int, len(events)) // position in sorted → index into events
	var sorted []event.Event
	if bufs != nil && cap(bufs.sorted) >= len(events) {
		sorted = bufs.sorted[:len(events)]
	} else {
		sorted = make([]event.Event, len(events))
		if bufs != nil && len(events) <= maxPooledEvents {
			bufs.sorted = sorted
		}
	}
	unique := make([]bool, len(events))
	next := append([]int(nil), count[:np]...)
	for i := range events {
		p := partOf[i]
		order[next[p]] = i
		sorted[next[p]] = events[i]
		unique[next[p]] = dedupable[i]
		next[p]++
	}
	offs := make([]int64, len(events))
	dups := make([]bool, len(events))
	placedIn := make([]int32, len(events))

	// Chunks are cut at max_batch events or maxEntryBytes, whichever comes
	// first, so that each fits one log entry.
	maxBatch := max(in.p.Ingest.MaxBatch, 1)
	var chunks []*chunk    // the chunks submitted
	var all []*chunk       // every chunk, successors of contiguous ones too
	var parts, bases []int // per chunk of all: its partition, its first index in sorted
	cut := func(p, lo, hi, size int) {
		c := &chunk{bytes: size, events: sorted[lo:hi:hi], unique: unique[lo:hi:hi],
			offsets: offs[lo:hi:hi], dups: dups[lo:hi:hi], parts: placedIn[lo:hi:hi]}
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
	err := in.submit(ts, heads, chunks)
	arr.leave()
	if err != nil {
		return nil, err
	}
	<-c.done // Appends are bounded by the log's timeouts; see batcher.run
	if err := c.failure(); err != nil {
		return nil, fmt.Errorf("%w: %w", errAppend, err)
	}
	out := make([]origin, len(events))
	for ci, ch := range all {
		for j := range ch.offsets {
			i := order[bases[ci]+j]
			out[i] = origin{offset: ch.offsets[j], partition: ch.parts[j], duplicate: ch.dups[j]}
		}
	}
	return out, nil
}
