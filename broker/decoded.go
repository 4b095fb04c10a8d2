package broker

import (
	"sync"
	"time"
	"unsafe"
	"weak"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// decodedSlots is how many recently decoded entries a partition remembers.
// Readers of one partition (the lake writer, every view of the speed layer,
// sinks) run close together, within the few hundred entries each reads
// ahead; an entry found here is one decoding saved per extra reader.
const decodedSlots = 256

// decodedCache lets the Readers and fetches of one partition share the
// events of the entries they decode. It holds them weakly: an entry no
// consumer still holds is left to the garbage collector, so the cache costs
// no memory beyond its slots, and a hit needs a reader close enough behind
// another that the entry was not yet collected.
//
// Entries are found by stream sequence, store time and payload size
// together, so that a stream created again under the same partition (its
// sequences starting over) is never mistaken for the old one, and by the
// schema they were decoded with. Events returned from here are shared:
// consumers of Entry.Events read them, never write them.
type decodedCache struct {
	mu    sync.Mutex
	slots []decodedSlot
}

type decodedSlot struct {
	seq      uint64
	appended int64 // store time, Unix nanoseconds
	size     int
	schema   *event.Field
	n        int
	first    weak.Pointer[event.Event]
}

// get returns the events decoded before of the entry at seq, or nil.
func (c *decodedCache) get(seq uint64, appended time.Time, size int, schema event.Schema) []event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots == nil {
		return nil
	}
	s := &c.slots[seq%decodedSlots]
	if s.seq != seq || s.appended != appended.UnixNano() || s.size != size || s.schema != unsafe.SliceData(schema) || s.n == 0 {
		return nil
	}
	p := s.first.Value()
	if p == nil {
		return nil
	}
	return unsafe.Slice(p, s.n)
}

// put remembers events, decoded from the entry at seq.
func (c *decodedCache) put(seq uint64, appended time.Time, size int, schema event.Schema, events []event.Event) {
	if len(events) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots == nil {
		c.slots = make([]decodedSlot, decodedSlots)
	}
	c.slots[seq%decodedSlots] = decodedSlot{seq: seq, appended: appended.UnixNano(), size: size,
		schema: unsafe.SliceData(schema), n: len(events), first: weak.Make(&events[0])}
}
