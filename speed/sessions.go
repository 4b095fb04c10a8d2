package speed

import (
	"slices"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
)

// sessionList holds the open sessions of one group key, sorted by start and
// pairwise disjoint, with the rule of plan.Sessions: a session is the
// smallest window containing [t, t+gap) for each of its events, and an
// event that overlaps several sessions merges them.
//
// It exists because a plan.Sessions can only grow by events, while a
// restarted speed layer must rebuild sessions from checkpointed windows and
// states. TestSessionListMatchesPlan checks that both give the same sessions;
// once plan offers a way to insert a (window, state) pair, this type
// should go.
type sessionList []plan.Session

// add inserts window w with state st (merged in, not shared; nil for a new
// empty state), merging every session it overlaps, and returns the index of
// the resulting session. Sessions that no longer exist under their start are
// appended to gone.
func (ss *sessionList) add(p *plan.Plan, w plan.TimeWindow, st *aggregate.State, gone []plan.TimeWindow) (int, []plan.TimeWindow) {
	list := *ss
	// The sessions overlapping w are the run [lo, hi) of those with
	// End > w.Start and Start < w.End.
	lo, _ := slices.BinarySearchFunc(list, w.Start, func(s plan.Session, t int64) int {
		if s.End <= t {
			return -1
		}
		return 1
	})
	hi := lo
	for hi < len(list) && list[hi].Start < w.End {
		hi++
	}
	if lo == hi {
		ns := plan.Session{TimeWindow: w, State: p.NewState()}
		if st != nil {
			p.Merge(ns.State, st)
		}
		*ss = slices.Insert(list, lo, ns)
		return lo, gone
	}
	keep := &list[lo]
	merged := plan.TimeWindow{Start: min(keep.Start, w.Start), End: max(list[hi-1].End, w.End)}
	if merged.Start != keep.Start {
		gone = append(gone, keep.TimeWindow)
	}
	for _, s := range list[lo+1 : hi] {
		gone = append(gone, s.TimeWindow)
		p.Merge(keep.State, s.State)
	}
	if st != nil {
		p.Merge(keep.State, st)
	}
	keep.TimeWindow = merged
	*ss = slices.Delete(list, lo+1, hi)
	return lo, gone
}

// addEvent adds a matched event at its time: [t, t+gap) merged into the
// sessions, then the event into the resulting session's state; it
// returns where that session starts.
func (ss *sessionList) addEvent(p *plan.Plan, gap int64, ev *event.Event, gone []plan.TimeWindow) (start int64, _ []plan.TimeWindow) {
	i, gone := ss.add(p, plan.TimeWindow{Start: ev.Time, End: ev.Time + gap}, nil, gone)
	p.Update((*ss)[i].State, ev)
	return (*ss)[i].Start, gone
}

// closeUntil removes the sessions that end at or before watermark and
// appends them to dst.
func (ss *sessionList) closeUntil(watermark int64, dst []plan.Session) []plan.Session {
	list := *ss
	n := 0
	for _, s := range list {
		if s.End <= watermark {
			dst = append(dst, s)
		} else {
			list[n] = s
			n++
		}
	}
	clear(list[n:])
	*ss = list[:n]
	return dst
}
