package speed

import (
	"fmt"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Local runs the speed layer of a pipeline in process and without a log:
// events are handed to it directly, and it shows its rows in a Store. It
// drives the same engine and the same emission to the store as Speed, one
// call at a time, with a clock of its own that only moves when told to;
// pipeline tests (`lambdaflow test`) run on it. Final rows are not
// appended anywhere and nothing is checkpointed.
//
// A Local is not safe for concurrent use.
type Local struct {
	now   time.Time
	idle  time.Duration
	views []*localView
	next  map[string][]int64 // per topic and partition: the next offset
}

type localView struct {
	vs *viewSpec
	e  *engine
	em *emitter
	// lastEntry is the clock time of each partition's last entry (or the
	// start): with no log there is no backlog, so a partition is always
	// caught up, and idle once it has had no entry for the idle time.
	lastEntry []time.Time
	out       output
}

// NewLocal returns a Local for every view of p, showing rows in store, with
// its clock at start and the given idle time (zero: DefaultIdle).
func NewLocal(p *pipelines.Pipeline, store Store, start time.Time, idle time.Duration) (*Local, error) {
	specs, err := compileViews(p)
	if err != nil {
		return nil, err
	}
	if idle <= 0 {
		idle = DefaultIdle
	}
	l := &Local{now: start, idle: idle, next: map[string][]int64{}}
	for i := range p.Topics {
		l.next[p.Topics[i].Name] = make([]int64, max(p.Topics[i].Partitions, 1))
	}
	for _, vs := range specs {
		parts := max(vs.topic.Partitions, 1)
		lv := &localView{vs: vs, e: newEngine(vs.plan, parts), em: newEmitter(p, vs.view, store), lastEntry: make([]time.Time, parts)}
		for i := range lv.lastEntry {
			lv.lastEntry[i] = start
		}
		l.views = append(l.views, lv)
	}
	return l, nil
}

// Now returns the Local's clock.
func (l *Local) Now() time.Time { return l.now }

// Append hands events to every view of topic as one log entry of partition
// part and shows the result. Each event's Time must be set (the topic's
// time field, or the ingest time for topics without one).
func (l *Local) Append(topic string, part int, events []event.Event) error {
	next, ok := l.next[topic]
	if !ok {
		return fmt.Errorf("speed: unknown topic %q", topic)
	}
	if part < 0 || part >= len(next) {
		return fmt.Errorf("speed: topic %q has no partition %d (it has %d)", topic, part, len(next))
	}
	if len(events) == 0 {
		return nil
	}
	off := next[part]
	next[part] += int64(len(events))
	for _, lv := range l.views {
		if lv.vs.topic.Name != topic {
			continue
		}
		if lv.e.Process(part, off, events) {
			// Every partition is active again; idleness counts from now.
			for p := range lv.lastEntry {
				lv.lastEntry[p] = l.now
			}
		}
		lv.lastEntry[part] = l.now
		lv.flush(l.now)
	}
	return nil
}

// Advance moves the clock by d, applies the idle rule and shows the result.
func (l *Local) Advance(d time.Duration) {
	l.now = l.now.Add(d)
	for _, lv := range l.views {
		for p, last := range lv.lastEntry {
			if !lv.e.Idle(p) && isIdle(true, last, l.now, l.idle) {
				lv.e.SetIdle(p, true)
			}
		}
		lv.flush(l.now)
	}
}

// AdvanceWatermark moves the watermark of every view to at least t and
// shows the result: windows ending at or before t become final.
func (l *Local) AdvanceWatermark(t time.Time) {
	for _, lv := range l.views {
		lv.e.AdvanceWatermark(t.UnixMicro())
		lv.flush(l.now)
	}
}

// Stats returns the counters of a view's engine; ok is false for an
// unknown view.
func (l *Local) Stats(view string) (s Stats, ok bool) {
	if e := l.engineOf(view); e != nil {
		return e.Stats(), true
	}
	return Stats{}, false
}

// engineOf returns the engine of a view, nil for an unknown view.
func (l *Local) engineOf(view string) *engine {
	for _, lv := range l.views {
		if lv.vs.view.Name == view {
			return lv.e
		}
	}
	return nil
}

func (lv *localView) flush(now time.Time) {
	lv.e.Flush(now, &lv.out)
	lv.em.emit(&lv.out) // no log: nothing to append
}
