package speed

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/expr"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// engine computes one view on the stream of its topic: it assigns events to
// windows, keeps the aggregate state of every open window, tracks the
// watermark (see watermark.go), finalises the windows it passes and paces
// the rows of open windows (see pace.go). It is pure: no log, no clock, no
// goroutines; the caller feeds it entries, tells it which partitions are
// idle and collects what changed with Flush, giving it the time. The speed
// layer, pipeline tests and benchmarks all drive the same engine.
//
// An engine is not safe for concurrent use.
type engine struct {
	plan     *plan.Plan
	matcher  *expr.Matcher
	lateness int64
	gap      int64 // session views: µs
	session  bool
	ncols    int
	ngroup   int
	times    []plan.PartitionTime // per partition: what the watermark rule needs
	next     []int64              // per partition: offset of the next event to process
	wm       int64                // the view's watermark; plan.NoWatermark before the first

	// Tumbling and hopping views: the open windows by start, and the same
	// sorted by end for finalisation.
	windows map[int64]*window
	byEnd   []*window
	last    *window // the window of the previous event: the common case
	// groupsHint sizes a new window's groups: how many the last window
	// finalised had, so that a window of many groups does not grow its
	// map (and rehash every group) a dozen times as it fills.
	groupsHint int
	// hash hashes group keys for the windows' indexes (groups.go).
	hash func([]byte) uint64

	// Session views: the open sessions of each key, and a heap of the
	// earliest session end of each key for finalisation.
	keys    map[string]*sessionKey
	closing endHeap

	dirty     []dirtyRef    // windowed slots to show at the next Flush
	dirtyKeys []*sessionKey // session keys to show at the next Flush
	gone      []keyedWindow // session windows that vanished and are not yet shown gone
	pace      pace          // when changed open windows are shown (pace.go)

	stats   Stats
	nopen   int  // open (group, window) states
	partial bool // rows carry states (newPartialEngine)

	keyBuf   []byte
	twBuf    []plan.TimeWindow
	goneBuf  []plan.TimeWindow
	closeBuf []plan.Session
}

// Stats counts the events an engine has seen since it was created.
type Stats struct {
	Events   uint64 // every event of the topic
	Matched  uint64 // events that passed the view's where
	Late     uint64 // matched events left out of at least one window because it was final
	Rejected uint64 // events on which the where expression failed
}

// window is one open tumbling or hopping window and its groups.
type window struct {
	plan.TimeWindow
	groups
	waiting int // slots changed and waiting for their interval
}

// dirtyRef is a slot changed since the last Flush: its window and its
// position there.
type dirtyRef struct {
	w *window
	i int
}

// sessionKey holds the open sessions of one group key.
type sessionKey struct {
	key    string
	ss     sessionList
	queued int64 // the end this key waits under in the closing heap; MaxInt64 if none
	dirty  bool  // changed since its rows were last shown
	// changed: every session changed since the key's rows were last shown
	// starts at or after it (math.MaxInt64: none, math.MinInt64: any), so
	// that a partial engine sends a session that closes unchanged no more
	// (see newPartialEngine).
	changed int64
	listed  bool // in dirtyKeys, to be shown at the next Flush
	closed  bool // every session was finalised and the key removed
	shown   uint32
}

// keyedWindow is a session window of one group key that no longer exists.
type keyedWindow struct {
	k *sessionKey
	plan.TimeWindow
}

// output is what an engine reports from Flush. Its slices are reused by the
// next Flush into the same output; the rows' Group and Aggs are not, so the
// caller may keep those.
type output struct {
	// Open holds the current values of open windows that changed.
	Open []viewrow.Row
	// Final holds the windows that became final, each for the last time.
	Final []viewrow.Row
	// Gone holds tombstones (Deleted) of session windows that no longer
	// exist under their start, because the session absorbed another or
	// grew backwards; their rows must be removed where they were shown.
	// They come with the key's current sessions in Open (or Final), so
	// that both change together. Aggs are nulls.
	Gone []viewrow.Row
	// Watermark is the view's watermark after the Flush (UTC µs), valid
	// when HasWatermark.
	Watermark    int64
	HasWatermark bool

	vals []event.Value
}

// newEngine returns an engine for plan over a topic of the given number of
// partitions, with the view's lateness.
func newEngine(pl *plan.Plan, partitions int) *engine {
	e := &engine{
		plan:     pl,
		matcher:  pl.NewMatcher(),
		lateness: pl.Window().Lateness.D().Microseconds(),
		session:  pl.Session(),
		gap:      pl.Window().Gap.D().Microseconds(),
		ncols:    len(pl.Columns()),
		ngroup:   len(pl.GroupBy()),
		times:    make([]plan.PartitionTime, max(partitions, 1)),
		next:     make([]int64, max(partitions, 1)),
		wm:       plan.NoWatermark,
		windows:  map[int64]*window{},
		keys:     map[string]*sessionKey{},
		hash:     keyHash(),
	}
	return e
}

// newPartialEngine returns the engine of one source partition of a view
// computed in parts (stage 1, see merge.go): it reads that partition alone,
// so its watermark is the partition's own, and its rows carry the group key
// and the encoded aggregate state instead of values (partialRow). A window
// that becomes final is sent again only if its state changed since it was
// last sent: the merger keeps every state until the view's watermark passes
// the window, and the same state again, arriving after the view closed the
// window (the partition was left out as idle, or is behind the others),
// would be counted late though it holds no event the view lacks.
func newPartialEngine(pl *plan.Plan) *engine {
	e := newEngine(pl, 1)
	e.partial = true
	return e
}

// Plan returns the engine's plan.
func (e *engine) Plan() *plan.Plan { return e.plan }

// Stats returns the engine's counters.
func (e *engine) Stats() Stats { return e.stats }

// Partitions returns the number of partitions the engine reads.
func (e *engine) Partitions() int { return len(e.times) }

// Next returns the offset of the next event the engine expects from
// partition part.
func (e *engine) Next(part int) int64 { return e.next[part] }

// MaxTime returns the newest event time seen in partition part; ok is false
// before its first event.
func (e *engine) MaxTime(part int) (t int64, ok bool) {
	return e.times[part].Newest, e.times[part].Seen
}

// Watermark returns the view's watermark (UTC µs); ok is false before there
// is one.
func (e *engine) Watermark() (int64, bool) { return e.wm, e.wm != plan.NoWatermark }

// OpenWindows returns how many (group, window) states the engine holds.
func (e *engine) OpenWindows() int { return e.nopen }

// Process adds the events of one log entry of partition part, whose first
// event has the given offset. Events before the partition's next offset
// were processed already and are skipped, so replaying an entry twice
// counts it once. An entry makes an idle partition active again; resumed
// reports that every partition was idle before it, so that they are all
// active again (plan.Activate) and their idleness counts from now.
func (e *engine) Process(part int, offset int64, events []event.Event) (resumed bool) {
	p := &e.times[part]
	if skip := e.next[part] - offset; skip > 0 {
		if skip >= int64(len(events)) {
			return false
		}
		events = events[skip:]
		offset = e.next[part]
	}
	if len(events) == 0 {
		return false
	}
	resumed = plan.Activate(e.times, part)
	bound := max(p.Watermark(e.lateness), e.wm)
	for i := range events {
		ev := &events[i]
		e.stats.Events++
		switch ok, err := e.matcher.Match(ev); {
		case err != nil:
			e.stats.Rejected++
		case ok:
			e.stats.Matched++
			if e.session {
				e.addSession(ev, bound)
			} else {
				e.addWindowed(ev, bound)
			}
		}
		if !p.Seen || ev.Time > p.Newest {
			p.Newest, p.Seen = ev.Time, true
			bound = max(p.Watermark(e.lateness), e.wm)
		}
	}
	e.next[part] = offset + int64(len(events))
	return resumed
}

// addWindowed adds a matched event to its tumbling or hopping windows,
// except those that end at or before bound: they are final (or will be
// before this partition could add to them), so the event is late for them.
func (e *engine) addWindowed(ev *event.Event, bound int64) {
	e.keyBuf = e.plan.Key(ev, e.keyBuf)
	e.twBuf = e.plan.Windows(ev.Time, e.twBuf[:0])
	late := false
	var h uint64
	hashed := false
	for _, tw := range e.twBuf {
		if tw.End <= bound {
			late = true
			continue
		}
		if !hashed {
			h, hashed = e.hash(e.keyBuf), true
		}
		w := e.window(tw)
		i, added := w.lookup(h, e.keyBuf)
		s := &w.slots[i]
		if added {
			s.state, s.shown = *e.plan.NewState(), e.pace.never()
			e.nopen++
		}
		e.plan.Update(&s.state, ev)
		if !s.dirty {
			s.dirty = true
			if e.pace.due(s.shown) {
				e.dirty = append(e.dirty, dirtyRef{w, i})
			} else {
				w.waiting++
				e.pace.waiting++
			}
		}
	}
	if late {
		e.stats.Late++
	}
}

// window returns the open window tw, creating it.
func (e *engine) window(tw plan.TimeWindow) *window {
	if w := e.last; w != nil && w.Start == tw.Start && w.End == tw.End {
		return w
	}
	w := e.windows[tw.Start]
	if w == nil {
		w = &window{TimeWindow: tw, groups: newGroups(e.hash, e.groupsHint)}
		e.windows[tw.Start] = w
		i, _ := slices.BinarySearchFunc(e.byEnd, w, compareWindows)
		e.byEnd = slices.Insert(e.byEnd, i, w)
	}
	e.last = w
	return w
}

func compareWindows(a, b *window) int {
	if a.End != b.End {
		return cmp.Compare(a.End, b.End)
	}
	return cmp.Compare(a.Start, b.Start)
}

// addSession adds a matched event to its key's sessions unless it is before
// bound: a session that reached the watermark is final, and an event at or
// after the watermark can never touch one (sessions are [first, last+gap)).
func (e *engine) addSession(ev *event.Event, bound int64) {
	if ev.Time < bound {
		e.stats.Late++
		return
	}
	e.keyBuf = e.plan.Key(ev, e.keyBuf)
	k := e.keys[string(e.keyBuf)]
	if k == nil {
		k = &sessionKey{key: string(e.keyBuf), queued: math.MaxInt64, shown: e.pace.never(), changed: math.MaxInt64}
		e.keys[k.key] = k
	}
	n := len(k.ss)
	var start int64
	start, e.goneBuf = k.ss.addEvent(e.plan, e.gap, ev, e.goneBuf[:0])
	k.changed = min(k.changed, start)
	e.nopen += len(k.ss) - n
	for _, g := range e.goneBuf {
		e.gone = append(e.gone, keyedWindow{k: k, TimeWindow: g})
	}
	e.touch(k)
}

// touch marks a session key changed and keeps its place in the closing heap.
func (e *engine) touch(k *sessionKey) {
	if !k.dirty {
		k.dirty = true
		if e.pace.due(k.shown) {
			k.listed = true
			e.dirtyKeys = append(e.dirtyKeys, k)
		} else {
			e.pace.waitingKeys++
		}
	}
	if first := k.ss[0].End; first < k.queued {
		k.queued = first
		heap.Push(&e.closing, closingItem{end: first, key: k})
	}
}

// SetIdle marks partition part idle (it no longer holds the watermark back)
// or active. Process makes a partition active by itself.
func (e *engine) SetIdle(part int, idle bool) { e.times[part].Idle = idle }

// Idle reports whether partition part is marked idle.
func (e *engine) Idle(part int) bool { return e.times[part].Idle }

// IdlePartitions returns how many partitions are marked idle.
func (e *engine) IdlePartitions() int {
	n := 0
	for i := range e.times {
		if e.times[i].Idle {
			n++
		}
	}
	return n
}

// AdvanceWatermark moves the view's watermark to at least t, as if every
// partition had passed it. Pipeline tests use it to close windows; events
// before it become late.
func (e *engine) AdvanceWatermark(t int64) { e.wm = max(e.wm, t) }

// Flush moves the watermark, finalises the windows that end at or before
// it and fills out with what changed since the previous Flush: final rows,
// and, paced by the emit interval (pace.go), the current values of changed
// open windows and the vanished session windows of the keys shown. now is
// the caller's clock, for the pace.
func (e *engine) Flush(now time.Time, out *output) {
	out.Open, out.Final, out.Gone, out.vals = out.Open[:0], out.Final[:0], out.Gone[:0], nil
	e.pace.at(now)
	e.wm = plan.CombineWatermarks(e.times, e.lateness, e.wm)
	out.Watermark, out.HasWatermark = e.wm, e.wm != plan.NoWatermark
	if e.session {
		e.finalizeSessions(out)
	} else {
		e.finalizeWindows(out)
	}
	for _, d := range e.dirty {
		if d.w.slots[d.i].dirty {
			out.Open = e.showSlot(out, d.w, d.i)
		}
	}
	clear(e.dirty)
	e.dirty = e.dirty[:0]
	for _, k := range e.dirtyKeys {
		k.listed = false
		if k.dirty && !k.closed {
			out.Open = e.showKey(out, k)
		}
	}
	clear(e.dirtyKeys)
	e.dirtyKeys = e.dirtyKeys[:0]
	if e.pace.sweepDue() {
		e.sweep(out)
	}
	e.pace.all = false
	e.showGone(out)
}

// showSlot appends the row of slot i of an open window to out.Open.
func (e *engine) showSlot(out *output, w *window, i int) []viewrow.Row {
	s := &w.slots[i]
	s.dirty, s.shown = false, e.pace.now
	return append(out.Open, e.row(out, w.TimeWindow, w.key(i), "", &s.state, false))
}

// showKey appends the rows of a session key's open sessions to out.Open.
func (e *engine) showKey(out *output, k *sessionKey) []viewrow.Row {
	k.dirty, k.shown, k.changed = false, e.pace.now, math.MaxInt64
	for _, s := range k.ss {
		out.Open = append(out.Open, e.row(out, s.TimeWindow, k.key, k.key, s.State, false))
	}
	return out.Open
}

// showGone appends to out.Gone the tombstones of vanished sessions whose
// key was shown (or finalised): those of a key still waiting for its
// interval wait with it, so that a sink never lacks both the old session's
// row and the merged one.
func (e *engine) showGone(out *output) {
	n := 0
	for _, g := range e.gone {
		if g.k.dirty && !g.k.closed {
			e.gone[n] = g
			n++
			continue
		}
		out.Gone = append(out.Gone, viewrow.Row{Start: g.Start, End: g.End, Key: g.k.key, Group: e.group(g.k.key),
			Aggs: make([]event.Value, e.ncols), Deleted: true})
	}
	clear(e.gone[n:])
	e.gone = e.gone[:n]
}

func (e *engine) finalizeWindows(out *output) {
	n := 0
	for n < len(e.byEnd) && e.byEnd[n].End <= e.wm {
		w := e.byEnd[n]
		n++
		delete(e.windows, w.Start)
		if e.last == w {
			e.last = nil
		}
		e.nopen -= w.len()
		e.groupsHint = w.len()
		e.pace.waiting -= w.waiting
		for i := range w.slots {
			s := &w.slots[i]
			sent := e.partial && !s.dirty
			s.dirty = false
			if sent {
				// The next stage has this state already (see
				// newPartialEngine).
				continue
			}
			key := w.key(i)
			out.Final = append(out.Final, e.row(out, w.TimeWindow, key, key, &s.state, true))
		}
	}
	if n > 0 {
		e.byEnd = slices.Delete(e.byEnd, 0, n)
	}
}

func (e *engine) finalizeSessions(out *output) {
	for e.closing.Len() > 0 && e.closing[0].end <= e.wm {
		it := heap.Pop(&e.closing).(closingItem)
		k := it.key
		if k.closed || it.end != k.queued {
			continue // stale: the key was re-queued under an earlier end
		}
		k.queued = math.MaxInt64
		e.closeBuf = k.ss.closeUntil(e.wm, e.closeBuf[:0])
		e.nopen -= len(e.closeBuf)
		for _, s := range e.closeBuf {
			if e.partial && s.Start < k.changed {
				continue // sent already, unchanged (see newPartialEngine)
			}
			out.Final = append(out.Final, e.row(out, s.TimeWindow, k.key, k.key, s.State, true))
		}
		clear(e.closeBuf)
		if len(k.ss) == 0 {
			k.closed = true
			if k.dirty && !k.listed {
				e.pace.waitingKeys--
			}
			delete(e.keys, k.key)
			continue
		}
		k.queued = k.ss[0].End
		heap.Push(&e.closing, closingItem{end: k.queued, key: k})
	}
}

// row builds one output row (see output.row).
func (e *engine) row(out *output, tw plan.TimeWindow, key, keyText string, st *aggregate.State, final bool) viewrow.Row {
	if e.partial {
		return partialRow(tw, key, e.group(key), st, final)
	}
	return out.row(e.plan, e.ngroup+e.ncols, tw, key, keyText, st, final)
}

// group decodes a group key into values of their own.
func (e *engine) group(key string) []event.Value {
	return appendGroup(e.plan, make([]event.Value, 0, e.ngroup), key)
}

// row builds the row of a window of the group key with state st. Its group
// values (whose strings are substrings of key) and aggregates live in
// out's shared backing array, which the next Flush leaves to the rows and
// replaces: a row costs no allocation of its own. n is the number of
// group and aggregate values; keyText is the key as Row.Key shows it, or "".
func (out *output) row(pl *plan.Plan, n int, tw plan.TimeWindow, key, keyText string, st *aggregate.State, final bool) viewrow.Row {
	if cap(out.vals)-len(out.vals) < n {
		out.vals = make([]event.Value, 0, max(256, 4*n))
	}
	start := len(out.vals)
	out.vals = appendGroup(pl, out.vals, key)
	mid := len(out.vals)
	out.vals = pl.AppendFinal(out.vals, st)
	return viewrow.Row{Start: tw.Start, End: tw.End, Key: keyText, Group: out.vals[start:mid:mid],
		Aggs: out.vals[mid:len(out.vals):len(out.vals)], Final: final}
}

// appendGroup appends the values of a group key to dst (plan.AppendGroup).
func appendGroup(pl *plan.Plan, dst []event.Value, key string) []event.Value {
	n := len(dst)
	dst, err := pl.AppendGroup(dst, key)
	if err != nil {
		// Unreachable: keys come from Plan.Key, or from a checkpoint or a
		// partials record whose keys were decoded when they were read.
		return append(dst[:n], make([]event.Value, len(pl.GroupBy()))...)
	}
	return dst
}

// closingItem is a session key waiting in the heap under its earliest end.
type closingItem struct {
	end int64
	key *sessionKey
}

type endHeap []closingItem

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i].end < h[j].end }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(closingItem)) }
func (h *endHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = closingItem{}
	*h = old[:len(old)-1]
	return it
}
