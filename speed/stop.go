package speed

import (
	"context"
	"fmt"
	"sync"
)

// A soft stop leaves the stopping process's rows whole: what it shows in
// its store, appends to the view's topic and checkpoints includes every
// event its stages 1 read. Stage 2 of a partition merges the records that
// the stages 1 of every source partition sent to the partials topic, and
// its reader is only ever somewhat behind them; so on a soft stop stage 2
// applies the partials topic to its end (catchUp) before its last rows and
// checkpoint, after its own stage 1's last records are durable. When the
// whole process stops (Run's context ended), every partition run of a view
// here stops at once, each stage 1 sending last records to the partials of
// the others: the runs of a view then wait for each other (stopGroup), so
// that each stage 2 reads to the end only once no stage 1 here has anything
// left to send. A partition that moves alone (rebalancing) does not wait:
// the others go on applying what it sent.
//
// A flush that waits for the log when the stop comes (stage 1's batch for
// room in the appender's queue, stage 2's rows for their appender) keeps
// what it was handing over (partRun.unsent, the emitter's pending rows)
// and the run goes on to its soft stop, which sends it. Returning the
// context's error there instead would skip the soft stop, and the batch
// would be lost to this process: the engine sends a window's state once per
// change.

// stopGroup coordinates the soft stops of the partition runs of each view
// in this process.
type stopGroup struct {
	mu  sync.Mutex
	all bool // Run is stopping: every run here stops
	// sending counts, per view, the runs here whose stage 1 may still send
	// records to the partials topic.
	sending map[string]int
	// waiting counts, per view, the runs waiting for the others (wait),
	// for tests.
	waiting map[string]int
	changed chan struct{} // closed and replaced at every change
}

func newStopGroup() *stopGroup {
	return &stopGroup{sending: map[string]int{}, waiting: map[string]int{}, changed: make(chan struct{})}
}

func (g *stopGroup) notify() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// start counts a run of view as sending; the run calls sent (any number of
// times) once its stage 1 sends nothing more: after its last records are
// durable, or when it returns.
func (g *stopGroup) start(view string) (sent func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sending[view]++
	return sync.OnceFunc(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.sending[view]--
		g.notify()
	})
}

// stopAll says that every run here is stopping (Run's context ended), before
// their contexts end.
func (g *stopGroup) stopAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.all = true
	g.notify()
}

// wait returns, when the whole process stops, once no run of view here
// may send a record any more (the caller has called its sent); at once
// when only the caller's partition stops.
func (g *stopGroup) wait(ctx context.Context, view string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.all && g.sending[view] > 0 {
		changed := g.changed
		g.waiting[view]++
		g.mu.Unlock()
		var err error
		select {
		case <-changed:
		case <-ctx.Done():
			err = ctx.Err()
		}
		g.mu.Lock()
		g.waiting[view]--
		if err != nil {
			return fmt.Errorf("%w (waiting for the other partitions of the view to send their last partial states)", err)
		}
	}
	return nil
}

// waiters reports how many runs of view wait in wait.
func (g *stopGroup) waiters(view string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting[view]
}

// catchUp applies the partials topic's partition from the next offset to
// its end as the soft stop finds it (stages 1 of other processes may go on
// appending), for the last rows and checkpoint.
func (r *partRun) catchUp(ctx context.Context) error {
	fail := func(err error) error {
		return fmt.Errorf("speed: view %q: read %q partition %d to its end: %w", r.vs.view.Name, r.partials, r.part, err)
	}
	end, err := r.s.log.End(ctx, r.partials, r.part)
	if err != nil {
		return fail(err)
	}
	for r.next2 < end {
		entries, err := r.s.log.Fetch(ctx, r.partials, r.part, r.next2, 10000)
		if err != nil {
			return fail(err)
		}
		from := r.next2
		for _, ent := range entries {
			r.applyPartials(ent)
		}
		if r.next2 == from {
			return nil
		}
	}
	return nil
}
