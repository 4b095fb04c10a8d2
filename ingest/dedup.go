package ingest

import (
	"hash/maphash"
	"slices"
	"sync"
)

// idHash identifies an event id in the dedup index: two independently seeded
// 64-bit hashes. Keeping 16 bytes instead of the id string bounds the index
// at dedup_max_ids × ~70 bytes whatever the ids look like, and keeps request
// bodies (which ids are sliced from) from being retained. A false duplicate
// needs a 128-bit collision: ~1e-25 at five million ids.
type idHash [2]uint64

// origin is where an id was first appended.
type origin struct {
	offset    int64
	at        int64 // ingest time, UTC microseconds
	partition int32
}

// pendingID is an id being appended by one request; others with the same id
// wait on done and then read ok and orig.
type pendingID struct {
	owner *claimer // the request (round) appending it
	first int      // index of the event in the owner's request
	done  chan struct{}
	ok    bool
	orig  origin
}

// claimer identifies one request's claims; it has a size so that every
// new one has its own address.
type claimer struct{ _ byte }

// claimKind is what reserve found for one id.
type claimKind uint8

const (
	claimOwn   claimKind = iota + 1 // new: this request appends it
	claimDup                        // already durable: orig
	claimInReq                      // a repeat of event first of the same request
	claimWait                       // another request is appending it: wait on p
)

type claim struct {
	kind  claimKind
	orig  origin
	first int
	p     *pendingID
}

// dedupIndex remembers, per topic, where each event id landed, for
// ingest.dedup_window and at most ingest.dedup_max_ids ids; the oldest are
// forgotten first. It is goroutine-safe; each method takes the lock once per
// request, not once per event.
type dedupIndex struct {
	seeds  [2]maphash.Seed
	window int64 // microseconds
	maxIDs int

	mu      sync.Mutex
	ids     map[idHash]origin
	order   []fifoEntry // insertion order, oldest first from head
	head    int
	pending map[idHash]*pendingID
}

type fifoEntry struct {
	h  idHash
	at int64
}

func newDedupIndex(window int64, maxIDs int) *dedupIndex {
	return &dedupIndex{
		seeds:   [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		window:  window,
		maxIDs:  max(maxIDs, 1),
		ids:     make(map[idHash]origin),
		pending: make(map[idHash]*pendingID),
	}
}

func (x *dedupIndex) hash(id string) idHash {
	return idHash{maphash.String(x.seeds[0], id), maphash.String(x.seeds[1], id)}
}

// reserve claims the ids hs[i] for which want(i) is true on behalf of owner,
// writing what it found to out[i]. Ids it returns as claimOwn must be given
// back with resolve.
func (x *dedupIndex) reserve(now int64, owner *claimer, hs []idHash, want []bool, out []claim) {
	horizon := now - x.window
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, h := range hs {
		if !want[i] {
			continue
		}
		if o, ok := x.ids[h]; ok && o.at >= horizon {
			out[i] = claim{kind: claimDup, orig: o}
			continue
		}
		if p, ok := x.pending[h]; ok {
			if p.owner == owner {
				out[i] = claim{kind: claimInReq, first: p.first}
			} else {
				out[i] = claim{kind: claimWait, p: p}
			}
			continue
		}
		x.pending[h] = &pendingID{owner: owner, first: i, done: make(chan struct{})}
		out[i] = claim{kind: claimOwn}
	}
}

// resolve settles the ids hs[i] that owner claimed (where owned[i]):
// remembered at the origin ok(i) gives where it reports true, released
// otherwise so that a waiting request appends them itself.
func (x *dedupIndex) resolve(now int64, owner *claimer, hs []idHash, owned []bool, ok func(i int) (origin, bool)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, h := range hs {
		if !owned[i] {
			continue
		}
		p := x.pending[h]
		if p == nil || p.owner != owner {
			continue
		}
		delete(x.pending, h)
		if o, good := ok(i); good {
			p.ok, p.orig = true, o
			x.insertLocked(h, o)
		}
		close(p.done)
	}
	x.evictLocked(now)
}

// insertLocked remembers h; the caller evicts.
func (x *dedupIndex) insertLocked(h idHash, o origin) {
	x.ids[h] = o
	x.order = append(x.order, fifoEntry{h: h, at: o.at})
}

// evictLocked forgets ids past the window or beyond maxIDs, oldest first.
// An id remembered again after it expired has a newer fifo entry too; only
// the entry matching the map's time deletes it.
func (x *dedupIndex) evictLocked(now int64) {
	horizon := now - x.window
	for x.head < len(x.order) {
		e := x.order[x.head]
		if e.at >= horizon && len(x.order)-x.head <= x.maxIDs {
			break
		}
		if o, ok := x.ids[e.h]; ok && o.at == e.at {
			delete(x.ids, e.h)
		}
		x.order[x.head] = fifoEntry{}
		x.head++
	}
	// Reclaim the consumed front once it is half the slice.
	if x.head > 1024 && x.head*2 >= len(x.order) {
		n := copy(x.order, x.order[x.head:])
		clear(x.order[n:])
		x.order = x.order[:n]
		x.head = 0
	}
}

// load fills the index from what the log holds; entries may come in any
// order and are sorted by ingest time so that eviction stays oldest first.
func (x *dedupIndex) load(now int64, entries []loadedID) {
	slices.SortStableFunc(entries, func(a, b loadedID) int {
		switch {
		case a.orig.at < b.orig.at:
			return -1
		case a.orig.at > b.orig.at:
			return 1
		}
		return 0
	})
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range entries {
		if _, dup := x.ids[e.h]; dup {
			// An id appended twice (by a producer that bypassed ingest):
			// the first landing is the original.
			continue
		}
		x.insertLocked(e.h, e.orig)
	}
	x.evictLocked(now)
}

type loadedID struct {
	h    idHash
	orig origin
}

// size reports how many ids are remembered, for tests.
func (x *dedupIndex) size() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.ids)
}
