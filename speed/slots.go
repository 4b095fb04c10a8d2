package speed

import "sync"

// slots tells the replicas of a view's partitions (replica.go) which
// partitions this process computes itself: a partition's owner shows its
// rows in the store, so its replica waits meanwhile, and takes over again
// when the partition moves to another process.
type slots struct {
	mu    sync.Mutex
	owned map[viewPart]bool
	moved chan struct{} // closed and replaced at every change
}

type viewPart struct {
	view string
	part int
}

func newSlots() *slots { return &slots{owned: map[viewPart]bool{}, moved: make(chan struct{})} }

func (s *slots) set(view string, part int, owned bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owned[viewPart{view, part}] = owned
	close(s.moved)
	s.moved = make(chan struct{})
}

// own marks the partition as computed here; release as not.
func (s *slots) own(view string, part int)     { s.set(view, part, true) }
func (s *slots) release(view string, part int) { s.set(view, part, false) }

// state reports whether the partition is computed here, and a channel
// closed at the next change.
func (s *slots) state(view string, part int) (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owned[viewPart{view, part}], s.moved
}
