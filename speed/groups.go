package speed

import (
	"hash/maphash"
	"unsafe"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
)

// groups holds the groups of one open tumbling or hopping window: a slot
// per group, dense in the order the groups first came, their keys in one
// arena, and an open-addressing index from a key's hash to its slot.
//
// It replaces a map[string]*slot, whose lookup was a quarter of the speed
// layer's time with 100,000 groups: the caller hashes an event's raw key
// bytes once (for every window the event falls in), the index is a flat
// array of words (the upper half of the hash, to skip most key
// comparisons, and the slot's position), and the slots, their keys and
// the index are a handful of allocations per window rather than one per
// group. Groups are only ever added: a window's groups go all together
// when it is finalised, so the index never deletes.
//
// The key arena is written once: a key's bytes never change after they are
// appended (growing the arena copies it and leaves the old array to the
// strings that point into it), so key returns substrings of it without a
// copy, which rows may keep.
type groups struct {
	slots []slot
	keys  []byte
	// index has a power-of-two length; an entry is 0 when empty, else the
	// upper 32 bits of the key's hash above the slot's position + 1.
	index []uint64
	hash  func([]byte) uint64 // rehashes keys when the index grows
}

// slot is the state of one group in one window and where its key sits in
// the window's arena. A window's keys total less than 4 GiB (uint32
// offsets): that many keys would take a hundred times more memory in
// state than any process has.
type slot struct {
	state  aggregate.State
	at, to uint32 // the key: groups.keys[at:to]
	shown  uint32 // when its row was last shown (pace.go)
	dirty  bool   // changed since its row was last shown
}

// newGroups returns the groups of a new window, sized for hint groups.
func newGroups(hash func([]byte) uint64, hint int) groups {
	g := groups{hash: hash}
	if hint > 0 {
		g.slots = make([]slot, 0, hint)
		g.index = make([]uint64, indexSize(hint))
	}
	return g
}

// indexSize is the index length for n groups: a power of two at most
// seven eighths full: linear probing stays within a cache line or two at
// that load, and a smaller index misses the cache less (the index word is
// most of a lookup's time).
func indexSize(n int) int {
	size := 8
	for size*7 < n*8 {
		size *= 2
	}
	return size
}

// len returns the number of groups.
func (g *groups) len() int { return len(g.slots) }

// key returns the key of slot i; the string shares the arena's bytes.
func (g *groups) key(i int) string {
	s := &g.slots[i]
	return unsafe.String(unsafe.SliceData(g.keys[s.at:s.to]), int(s.to-s.at))
}

// lookup returns the position of the slot of key, whose hash is h, adding
// a zero slot for it when there is none (added).
func (g *groups) lookup(h uint64, key []byte) (i int, added bool) {
	if len(g.slots)*8 >= len(g.index)*7 {
		g.grow()
	}
	mask := uint64(len(g.index) - 1)
	tag := h &^ (1<<32 - 1)
	for p := h & mask; ; p = (p + 1) & mask {
		ent := g.index[p]
		if ent == 0 {
			i = len(g.slots)
			g.index[p] = tag | uint64(i+1)
			at := len(g.keys)
			g.keys = append(g.keys, key...)
			g.slots = append(g.slots, slot{at: uint32(at), to: uint32(len(g.keys))})
			return i, true
		}
		if ent&^(1<<32-1) == tag {
			i = int(ent&(1<<32-1)) - 1
			if s := &g.slots[i]; string(g.keys[s.at:s.to]) == string(key) {
				return i, false
			}
		}
	}
}

// grow doubles the index (or makes the first) and puts every slot back.
func (g *groups) grow() {
	g.index = make([]uint64, max(2*len(g.index), indexSize(len(g.slots)+1)))
	mask := uint64(len(g.index) - 1)
	for i := range g.slots {
		s := &g.slots[i]
		h := g.hash(g.keys[s.at:s.to])
		p := h & mask
		for g.index[p] != 0 {
			p = (p + 1) & mask
		}
		g.index[p] = h&^(1<<32-1) | uint64(i+1)
	}
}

// keyHash returns the hash function of an engine's group keys: maphash
// with a seed of its own, so that keys an attacker picks cannot be made to
// collide in every process alike.
func keyHash() func([]byte) uint64 {
	seed := maphash.MakeSeed()
	return func(b []byte) uint64 { return maphash.Bytes(seed, b) }
}
