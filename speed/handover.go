package speed

import (
	"context"
	"sync"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// In a process, the rows of a partition of a view are shown in the store by
// a succession of stage 2 mergers: a replica, the partition's own run when
// the partition moves here, a replica again when it moves away or when a
// replica starts again from a newer checkpoint. Each starts from a
// checkpoint and knows only the sessions that checkpoint holds, so an open
// session row its predecessor showed, and that has since merged into
// another (or was retracted by the view's new owner), would stay in the
// store for good: nothing would ever delete it. So the mergers of a
// partition take turns (one at a time shows the partition in the store),
// each handing the open session rows it leaves in the store to the next,
// which deletes from the store those it does not show itself after its
// first Flush (staleRows).

// handovers holds the turn and the open session rows of each partition of
// each view in this process's store.
type handovers struct {
	mu    sync.Mutex
	parts map[viewPart]*handover
}

// handover is the turn to show one partition in the store (a semaphore of
// one) and the open session rows left there, by group key, by the last
// merger that had it.
type handover struct {
	turn chan struct{}
	rows map[string][]plan.TimeWindow
	// current is the merger of the turn once it has taken over the rows
	// (reconcile); until then they stay with the handover.
	current  *merger
	retained map[string]bool // rowIDs of final rows shown from the view's topic this turn
}

func newHandovers() *handovers { return &handovers{parts: map[viewPart]*handover{}} }

// take waits for the turn of partition part of view and returns it, with
// the open session rows the previous merger left in the store. The caller
// gives it back (give) when its merger stops showing the partition.
func (h *handovers) take(ctx context.Context, view string, part int) (*handover, error) {
	h.mu.Lock()
	ho := h.parts[viewPart{view, part}]
	if ho == nil {
		ho = &handover{turn: make(chan struct{}, 1)}
		h.parts[viewPart{view, part}] = ho
	}
	h.mu.Unlock()
	select {
	case ho.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if len(ho.rows) > 0 {
		ho.retained = map[string]bool{}
	}
	return ho, nil
}

// retainedIDs is where showRetained notes the final rows it shows, or nil
// when no row was handed over.
func (ho *handover) retainedIDs() map[string]bool { return ho.retained }

// reconcile is called after the first Flush of m (first, its output, which
// the caller has shown): it deletes from store the open session rows
// handed over that m does not show (staleRows), and m takes over.
func (ho *handover) reconcile(m *merger, first *output, store Store, view string) {
	if stale := m.staleRows(ho.rows, first, ho.retained); len(stale) > 0 {
		store.DeleteSpeed(view, stale)
	}
	ho.rows, ho.retained, ho.current = nil, nil, m
}

// give ends the turn, leaving the open session rows in the store to the
// next merger: those of the merger that took over, or else those handed
// over, still there.
func (ho *handover) give() {
	if ho.current != nil {
		ho.rows, ho.current = ho.current.shown, nil
	}
	ho.retained = nil
	<-ho.turn
}

// staleRows returns, after the first Flush of a merger that replaces
// another in the store (first, its output), the tombstones of the open
// session rows prev the other one left there that this one does not show:
// neither as an open row, nor as a final row of first, nor as a final row
// read back from the view's topic (retained, by rowID). They go to the
// store only: the view's topic is its owner's, and consistent with its
// checkpoints.
func (m *merger) staleRows(prev map[string][]plan.TimeWindow, first *output, retained map[string]bool) []viewrow.Row {
	var stale []viewrow.Row
	for k, ws := range prev {
		for _, w := range ws {
			if showsSession(k, w.Start, m.shown[k], first.Final) {
				continue
			}
			r := viewrow.Row{Start: w.Start, End: w.End, Key: k, Group: m.group(k), Deleted: true}
			if retained[rowID(r)] {
				continue
			}
			r.Aggs = make([]event.Value, m.ncols)
			stale = append(stale, r)
		}
	}
	return stale
}
