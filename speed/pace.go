package speed

import "time"

// pace decides when the row of a changed open window is shown (put in
// output.Open, whence the emitter shows it in the store and appends it to
// the view's topic), so that each row is shown at most once per emit
// interval without the engine building a row for every change:
//
//   - a row not shown within the last interval (a new one, or one quiet
//     for a while) is shown at the next Flush;
//   - a row shown more recently waits: the change only marks it, and a
//     sweep of the open windows, at most every quarter interval, shows the
//     marked rows whose interval has passed. A change is so shown within
//     1.25 intervals (plus the time to the next Flush), and a row that
//     changes all the time once per interval.
//
// A final row is never held back, and neither is a tombstone once its key
// is shown. An interval of 0 shows every change at the next Flush (pipeline
// tests).
//
// Times are milliseconds since the engine's first Flush in a uint32, which
// a slot keeps in its padding, compared modulo 2^32: a row unchanged for
// 49.7 days may wait one interval longer than it should.
type pace struct {
	every     uint32 // ms; 0: every change at the next Flush
	epoch     time.Time
	started   bool
	now       uint32 // the clock at the last Flush
	lastSweep uint32

	waiting     int  // windowed slots changed and waiting for their interval
	waitingKeys int  // session keys changed and waiting for their interval
	all         bool // the next Flush shows every waiting row (showWaiting)
}

// SetEmitInterval makes the engine show a changed open window's row at
// most once per d (see pace); 0, the default, at every Flush.
func (e *engine) SetEmitInterval(d time.Duration) { e.pace.setInterval(d) }

// setInterval sets the emit interval; the merger of a view computed in
// partitions paces its rows by the same rule.
func (p *pace) setInterval(d time.Duration) { p.every = uint32(min(max(d.Milliseconds(), 0), 1<<31)) }

// at sets the clock of a Flush. A clock that goes back leaves it where it
// was.
func (p *pace) at(now time.Time) {
	if !p.started {
		p.epoch, p.started = now, true
	}
	if d := now.Sub(p.epoch).Milliseconds(); d >= 0 {
		p.now = uint32(d) // modulo 2^32
	}
}

// due reports whether a row last shown at shown may be shown now.
func (p *pace) due(shown uint32) bool { return p.every == 0 || p.all || p.now-shown >= p.every }

// never is the shown time of a row not shown yet: due at once.
func (p *pace) never() uint32 { return p.now - p.every }

// sweepDue reports whether rows wait and the last sweep was a quarter
// interval ago.
func (p *pace) sweepDue() bool {
	return (p.waiting > 0 || p.waitingKeys > 0) && (p.all || p.now-p.lastSweep >= max(p.every/4, 1))
}

// showWaiting makes the next Flush show every waiting row, due or not: a
// soft stop leaves the store and the view's topic current.
func (e *engine) showWaiting() { e.pace.all = true }

// showMerged makes the next Flush show the session keys whose tombstones
// wait with them. A checkpoint is taken only after that: the restarted
// engine would not know of the vanished sessions, and their rows would
// stay in the sinks.
func (e *engine) showMerged() {
	for _, g := range e.gone {
		if k := g.k; k.dirty && !k.listed && !k.closed {
			k.listed = true
			e.pace.waitingKeys--
			e.dirtyKeys = append(e.dirtyKeys, k)
		}
	}
}

// sweep shows the waiting rows whose interval has passed. It visits the
// open windows that have waiting rows (every session key, for a session
// view), not every change.
func (e *engine) sweep(out *output) {
	e.pace.lastSweep = e.pace.now
	if e.session {
		for _, k := range e.keys {
			if k.dirty && !k.listed && e.pace.due(k.shown) {
				e.pace.waitingKeys--
				out.Open = e.showKey(out, k)
			}
		}
		return
	}
	for _, w := range e.byEnd {
		if w.waiting == 0 {
			continue
		}
		for i := range w.slots {
			if s := &w.slots[i]; s.dirty && e.pace.due(s.shown) {
				w.waiting--
				e.pace.waiting--
				out.Open = e.showSlot(out, w, i)
			}
		}
	}
}
