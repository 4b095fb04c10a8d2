package ingest

import "sync/atomic"

// arrivals counts the requests of one topic on their way to its batchers:
// read, decoded and validated, their chunks not yet submitted. A batcher
// holding events while no Append of its partition runs waits for company
// only while one is on its way; with none, nothing could join its batch,
// and lingering would only add latency (one client posting one event at a
// time would wait the whole linger on every request).
type arrivals struct {
	n        atomic.Int64
	batchers []*batcher
}

// arrive counts one request on its way; the caller leaves once its chunks
// are submitted, or it fails before.
func (a *arrivals) arrive() *arrival {
	a.n.Add(1)
	return &arrival{of: a}
}

// quiet reports whether no request is on its way.
func (a *arrivals) quiet() bool { return a.n.Load() == 0 }

// arrival is one request counted in arrivals. Not safe for concurrent use:
// it belongs to the request's goroutine.
type arrival struct {
	of   *arrivals
	left bool
}

// leave uncounts the request, once; the last one to leave wakes the
// batchers that wait for company. A nil arrival does nothing.
func (a *arrival) leave() {
	if a == nil || a.left {
		return
	}
	a.left = true
	if a.of.n.Add(-1) != 0 {
		return
	}
	// A batcher sets lingering before it looks at n, and this looks at
	// lingering after n reached zero: one of the two sees the other, so a
	// batcher never waits for a request that has already left.
	for _, b := range a.of.batchers {
		if b.lingering.Load() {
			select {
			case b.wake <- struct{}{}:
			default: // already woken
			}
		}
	}
}
