package plan

import (
	"slices"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// TimeWindow is one window instance: event times t with Start ≤ t < End, in
// UTC microseconds. (Window is the view's definition in the pipeline file.)
type TimeWindow struct {
	Start, End int64
}

// Windows appends to dst the windows an event at time t (µs) belongs to, in
// order of Start, and returns the extended slice.
//
// Tumbling windows are [k·size, (k+1)·size), aligned to the Unix epoch, so a
// 1h window starts on the hour in UTC. Hopping windows are [k·slide,
// k·slide+size): an event lands in every one that contains it, size/slide of
// them when slide divides size. Session views return dst unchanged: their
// windows depend on the key's other events, see AddSession.
func (p *Plan) Windows(t int64, dst []TimeWindow) []TimeWindow {
	switch p.kind {
	case windowTumbling:
		s := floorDiv(t, p.size) * p.size
		return append(dst, TimeWindow{s, s + p.size})
	case windowHopping:
		last := floorDiv(t, p.slide) * p.slide
		first := ceilDiv(t-p.size+1, p.slide) * p.slide
		for s := first; s <= last; s += p.slide {
			dst = append(dst, TimeWindow{s, s + p.size})
		}
	}
	return dst
}

// WindowStarts returns the first and the last start of the tumbling or
// hopping windows that start in [from, to): windows start on multiples of
// the slide (of the size for tumbling windows) counted from the Unix epoch.
// first > last when no window starts there. Session views have no fixed
// starts: it returns from and to - 1.
func (p *Plan) WindowStarts(from, to int64) (first, last int64) {
	step := p.slide
	switch p.kind {
	case windowTumbling:
		step = p.size
	case windowSession:
		return from, to - 1
	}
	return ceilDiv(from, step) * step, floorDiv(to-1, step) * step
}

// floorDiv is ⌊a/b⌋ for b > 0, also for negative a (times before 1970).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// ceilDiv is ⌈a/b⌉ for b > 0.
func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// Session is one session window of a group key and its aggregate state.
type Session struct {
	TimeWindow
	State *aggregate.State
}

// Sessions holds the session windows of one group key, sorted by Start and
// pairwise disjoint. The zero value is empty and ready to use. It is not safe
// for concurrent use.
//
// A session is the smallest window that contains [t, t+gap) for each of its
// events: it starts at its first event and ends gap after its last. Two
// events belong to one session when fewer than gap microseconds separate them
// (directly or through events in between); a silence of exactly gap starts a
// new session. The sessions of a set of events do not depend on the order in
// which they are added or how partial Sessions are merged.
type Sessions struct {
	list []Session
}

// List returns the sessions in order of Start. The slice is valid until the
// next change.
func (ss *Sessions) List() []Session { return ss.list }

// Len returns the number of sessions.
func (ss *Sessions) Len() int { return len(ss.list) }

// AddSession adds a matched event of one key to its sessions: it starts a new
// session, extends one, or merges those the event bridges (their states are
// merged). It then updates the session's state with the event and returns
// the session. Windows that no longer exist under their Start (absorbed
// sessions, or one whose Start moved earlier) are appended to gone, so that
// results already emitted for them can be retracted.
func (p *Plan) AddSession(ss *Sessions, e *event.Event, gone []TimeWindow) (Session, []TimeWindow) {
	i, gone := p.mergeSession(ss, TimeWindow{e.Time, e.Time + p.gap}, nil, gone)
	p.Update(ss.list[i].State, e)
	return ss.list[i], gone
}

// MergeSessions folds src's sessions into dst (e.g. those of one key from
// several partitions or from a checkpoint): overlapping sessions become one
// with merged state. src's states are merged, not shared, so src stays valid.
// Windows of dst that no longer exist under their Start are appended to gone.
func (p *Plan) MergeSessions(dst, src *Sessions, gone []TimeWindow) []TimeWindow {
	for _, s := range src.list {
		_, gone = p.mergeSession(dst, s.TimeWindow, s.State, gone)
	}
	return gone
}

// mergeSession inserts window w (with state st, or a fresh one when nil)
// into ss, merging every session it overlaps, and returns the index of the
// resulting session.
func (p *Plan) mergeSession(ss *Sessions, w TimeWindow, st *aggregate.State, gone []TimeWindow) (int, []TimeWindow) {
	// Sessions are disjoint and sorted, so those overlapping w are the run
	// [lo, hi) of sessions with End > w.Start and Start < w.End.
	lo, _ := slices.BinarySearchFunc(ss.list, w.Start, func(s Session, t int64) int {
		if s.End <= t {
			return -1
		}
		return 1
	})
	hi := lo
	for hi < len(ss.list) && ss.list[hi].Start < w.End {
		hi++
	}
	if lo == hi {
		ns := Session{TimeWindow: w, State: p.NewState()}
		if st != nil {
			p.Merge(ns.State, st)
		}
		ss.list = slices.Insert(ss.list, lo, ns)
		return lo, gone
	}
	keep := &ss.list[lo]
	merged := TimeWindow{min(keep.Start, w.Start), max(ss.list[hi-1].End, w.End)}
	if merged.Start != keep.Start {
		gone = append(gone, keep.TimeWindow)
	}
	for _, s := range ss.list[lo+1 : hi] {
		gone = append(gone, s.TimeWindow)
		p.Merge(keep.State, s.State)
	}
	if st != nil {
		p.Merge(keep.State, st)
	}
	keep.TimeWindow = merged
	ss.list = slices.Delete(ss.list, lo+1, hi)
	return lo, gone
}

// Close removes the sessions that end at or before watermark (no event at or
// after the watermark can reach them any more) and appends them to dst.
func (ss *Sessions) Close(watermark int64, dst []Session) []Session {
	n := 0
	for _, s := range ss.list {
		if s.End <= watermark {
			dst = append(dst, s)
		} else {
			ss.list[n] = s
			n++
		}
	}
	clear(ss.list[n:])
	ss.list = ss.list[:n]
	return dst
}
