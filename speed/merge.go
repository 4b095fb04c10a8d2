package speed

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// A view whose source partitions are computed by different processes is
// computed in two stages (docs/checkpoint-format.md, "Partials"):
//
//  1. per source partition, an Engine over that partition alone keeps its
//     windows' states, finalising a window when the partition's own
//     watermark passes it, and sends every window state that changed, with
//     the partition's progress, to the view's partials topic, in the
//     partition of the window's group;
//  2. per partition of the view, a merger keeps the latest state of every
//     (group, window) from every source partition, takes the view's
//     watermark over all source partitions from their progress (the rule of
//     watermark.go), and emits the view's rows: the merge of the source
//     partitions' states, final once the watermark passes the window.
//
// Aggregate states merge exactly, so the rows equal those of one engine
// over every partition. A state replaces the one before it from the same
// source partition (it is cumulative), which makes applying a record twice
// harmless; records are ordered per source partition by the source offset
// they are "as of", and one older than what the merger already applied
// from that partition is skipped. A source partition's records come from
// its owner of the moment; a record of an earlier owner (a lower epoch)
// arriving after the new owner's is ignored. Since a partition's states
// depend only on its own events in order, every owner sends the same
// states for the same offsets.

// partial is one record of a partials topic, decoded.
type partial struct {
	source     int
	epoch      uint64
	asOf       int64
	kind       int
	key        string
	start, end int64
	state      []byte
	newest     int64
	seen, idle bool
}

// partialRecord encodes a partial as an event of the partials topic.
func (pr *partial) event() event.Event {
	vals := []event.Value{
		{I: int64(pr.source), Valid: true},
		{I: int64(pr.epoch), Valid: true},
		{I: pr.asOf, Valid: true},
		{I: int64(pr.kind), Valid: true},
		{}, {}, {}, {}, {}, {},
	}
	if pr.kind == pipelines.PartialMark {
		if pr.seen {
			vals[8] = event.Value{I: pr.newest, Valid: true}
		}
		vals[9] = event.Value{I: b2i(pr.idle), Valid: true}
	} else {
		vals[4] = event.Value{S: pr.key, Valid: true}
		vals[5] = event.Value{I: pr.start, Valid: true}
		vals[6] = event.Value{I: pr.end, Valid: true}
		if pr.state != nil {
			vals[7] = event.Value{S: string(pr.state), Valid: true}
		}
	}
	return event.Event{Values: vals}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// decodePartial reads an event of the partials topic; ok is false for an
// event that is not one (it is skipped).
func decodePartial(ev *event.Event) (partial, bool) {
	v := ev.Values
	if len(v) < 10 || !v[0].Valid || !v[1].Valid || !v[2].Valid || !v[3].Valid {
		return partial{}, false
	}
	pr := partial{source: int(v[0].I), epoch: uint64(v[1].I), asOf: v[2].I, kind: int(v[3].I)}
	if pr.kind == pipelines.PartialMark {
		pr.newest, pr.seen = v[8].I, v[8].Valid
		pr.idle = v[9].Valid && v[9].I != 0
		return pr, true
	}
	if !v[4].Valid || !v[5].Valid || !v[6].Valid {
		return partial{}, false
	}
	pr.key, pr.start, pr.end = v[4].S, v[5].I, v[6].I
	if v[7].Valid {
		pr.state = []byte(v[7].S)
	}
	return pr, true
}

// sourceState is what a merger knows of one source partition.
type sourceState struct {
	epoch   uint64 // of the newest owner seen
	asOf    int64  // the newest as-of applied
	newest  int64
	seen    bool // an event was seen (newest valid)
	idle    bool
	reports bool // a record arrived: its progress is known
	// unread: the log was found to hold events of the partition past
	// asOf, the position it reported being idle at (see watermark); it
	// holds while asOf does not move.
	unread   bool
	unreadAt int64
}

// unitKey names one window of one group.
type unitKey struct {
	key   string
	start int64
}

// unit is one window of one group with the state of each source partition
// that has events in it.
type unit struct {
	end    int64
	states map[int]*aggregate.State
	dirty  bool   // changed since its row was last shown
	shown  uint32 // when its row was last shown (pace.go)
}

// merger is stage 2 of a view for one partition of the view (see above).
// It is pure, like the engine: the caller feeds it records and collects rows
// with Flush. Not safe for concurrent use.
type merger struct {
	plan     *plan.Plan
	lateness int64
	session  bool
	ngroup   int
	ncols    int
	sources  []sourceState
	times    []plan.PartitionTime // scratch for watermark
	// idleFor is the idle rule's duration (Options.Idle); when every source
	// partition was idle and one resumes, the others count as active again
	// until idleFor has passed since (resumedAt, on the Flush clock), so
	// that the partition read first cannot move the watermark past the
	// others' events of the same instant. 0: no such hold (tests).
	idleFor   time.Duration
	now       time.Time // the clock of the last Flush
	resumedAt time.Time
	wm        int64
	// logEnd returns where source partition i ends in the log now (the
	// offset of its next event), false when the log cannot tell: a
	// partition reported idle is left out of the watermark only while it
	// has read up to there (see watermark). nil: not checked (tests of the
	// merger alone).
	logEnd func(i int) (int64, bool)

	units map[unitKey]*unit
	pace  pace // when changed open windows are shown (pace.go)
	// keyShown is when each session key's rows were last shown (pace.go);
	// a key without an entry is due at once.
	keyShown map[string]uint32
	// Session views: the windows of each key, for merging the source
	// partitions' sessions, and the merged sessions last shown.
	keyUnits map[string][]unitKey
	shown    map[string][]plan.TimeWindow
	dirty    map[string]bool // keys with a changed unit (session views)

	late uint64 // records for windows already final: dropped
	vals []event.Value
}

// newMerger returns a merger for plan over a source of the given number of
// partitions.
func newMerger(pl *plan.Plan, sources int) *merger {
	return &merger{
		plan:     pl,
		lateness: pl.Window().Lateness.D().Microseconds(),
		session:  pl.Session(),
		ngroup:   len(pl.GroupBy()),
		ncols:    len(pl.Columns()),
		sources:  make([]sourceState, max(sources, 1)),
		wm:       plan.NoWatermark,
		units:    map[unitKey]*unit{},
		keyUnits: map[string][]unitKey{},
		shown:    map[string][]plan.TimeWindow{},
		dirty:    map[string]bool{},
		keyShown: map[string]uint32{},
	}
}

// newViewMerger returns the merger of a partition of view vs, paced by
// the view's emit.interval.
func newViewMerger(vs *viewSpec, idle time.Duration) *merger {
	m := newMerger(vs.plan, max(vs.topic.Partitions, 1))
	m.idleFor = idle
	every, _ := vs.view.Emit.Open()
	m.SetEmitInterval(every)
	return m
}

// SetEmitInterval makes the merger show a changed open window's row at
// most once per d (see pace); 0, the default, at every Flush. Final rows
// and the tombstones of a key shown are never held back.
func (m *merger) SetEmitInterval(d time.Duration) { m.pace.setInterval(d) }

// showWaiting makes the next Flush show every waiting row, due or not: a
// checkpoint or a soft stop leaves the store and the view's topic current.
func (m *merger) showWaiting() { m.pace.all = true }

// Watermark returns the view's watermark as this merger knows it.
func (m *merger) Watermark() (int64, bool) { return m.wm, m.wm != plan.NoWatermark }

// Late returns how many records came for windows already final.
func (m *merger) Late() uint64 { return m.late }

// OpenWindows returns how many (group, window) units it holds.
func (m *merger) OpenWindows() int { return len(m.units) }

// Apply takes one record. Records of a source partition that are older
// than what was applied from it, or from an earlier owner, are skipped.
func (m *merger) Apply(pr *partial) error {
	if pr.source < 0 || pr.source >= len(m.sources) {
		return nil // a partition added to the topic after this merger was made: restarts add it
	}
	s := &m.sources[pr.source]
	switch {
	case pr.epoch < s.epoch:
		return nil
	case pr.epoch > s.epoch:
		s.epoch = pr.epoch
	}
	if pr.asOf < s.asOf {
		return nil
	}
	s.asOf = pr.asOf
	s.reports = true
	if pr.kind == pipelines.PartialMark {
		if !pr.idle && m.allIdle() {
			m.resumedAt = m.now
		}
		s.newest, s.seen, s.idle = pr.newest, pr.seen, pr.idle
		return nil
	}
	uk := unitKey{pr.key, pr.start}
	if pr.kind == pipelines.PartialGone {
		if u := m.units[uk]; u != nil {
			delete(u.states, pr.source)
			m.touch(uk, u)
		}
		return nil
	}
	// A window the view has finalised already: late (a source partition
	// left out of the watermark as idle came back).
	if pr.end <= m.wm {
		m.late++
		return nil
	}
	st, err := m.plan.UnmarshalState(pr.state)
	if err != nil {
		return err
	}
	u := m.units[uk]
	if u == nil {
		u = &unit{end: pr.end, states: map[int]*aggregate.State{}, shown: m.pace.never()}
		m.units[uk] = u
		if m.session {
			m.keyUnits[pr.key] = append(m.keyUnits[pr.key], uk)
		}
	}
	u.end = max(u.end, pr.end)
	u.states[pr.source] = st
	m.touch(uk, u)
	return nil
}

func (m *merger) touch(uk unitKey, u *unit) {
	u.dirty = true
	if m.session {
		m.dirty[uk.key] = true
	}
}

// Flush moves the watermark, finalises the windows it passed and fills
// out with the final rows and, paced by the emit interval (pace.go), the
// rows of open windows that changed and the tombstones of the session keys
// shown. now is the caller's clock, for the pace.
func (m *merger) Flush(now time.Time, out *output) {
	out.Open, out.Final, out.Gone, out.vals = out.Open[:0], out.Final[:0], out.Gone[:0], nil
	m.pace.at(now)
	m.now = now
	defer func() { m.pace.all = false }()
	m.wm = m.watermark()
	out.Watermark, out.HasWatermark = m.wm, m.wm != plan.NoWatermark
	if m.session {
		m.flushSessions(out)
		return
	}
	for uk, u := range m.units {
		if len(u.states) == 0 {
			delete(m.units, uk)
			continue
		}
		switch {
		case u.end <= m.wm:
			out.Final = append(out.Final, m.row(out, uk.key, plan.TimeWindow{Start: uk.start, End: u.end}, u.states, true))
			delete(m.units, uk)
		case u.dirty && m.pace.due(u.shown):
			out.Open = append(out.Open, m.row(out, uk.key, plan.TimeWindow{Start: uk.start, End: u.end}, u.states, false))
			u.dirty, u.shown = false, m.pace.now
		}
	}
	sortRows(out.Final)
}

// watermark applies the view rule (plan.CombineWatermarks) over the source
// partitions' progress. A partition that has not reported yet holds the
// watermark back (it has no owner yet, or its owner has not caught up with
// it): only a reported idle partition is left out, and only while the log
// holds nothing of it past the position it was idle at.
//
// That last check is what keeps in-order events from being late: the
// records of the partitions that are busy can reach this merger before
// those of a partition that was idle and has just received events of the
// same instant (its stage 1 may be in another process, and its records
// take their own way through the partials topic). Its report of being idle
// is then stale, and leaving it out would move the watermark past the
// events it is about to send. The log tells: its end moved past the
// position of the report (the inverse too: events appended after the
// partition reported idle). The check asks the log only when leaving an
// idle partition out would move the watermark, and a partition found
// behind is not asked about again until it reports anew.
func (m *merger) watermark() int64 {
	m.times = m.times[:0]
	held := m.idleFor > 0 && !m.resumedAt.IsZero() && m.now.Sub(m.resumedAt) < m.idleFor
	left := false
	for _, s := range m.sources {
		idle := s.idle && s.reports && !held && !(s.unread && s.unreadAt == s.asOf)
		left = left || idle
		m.times = append(m.times, plan.PartitionTime{Seen: s.seen, Newest: s.newest, Idle: idle})
	}
	wm := plan.CombineWatermarks(m.times, m.lateness, m.wm)
	if !left || m.logEnd == nil || wm == m.wm || wm == m.holding() {
		return wm
	}
	for i := range m.times {
		if !m.times[i].Idle {
			continue
		}
		s := &m.sources[i]
		end, ok := m.logEnd(i)
		if ok && end <= s.asOf {
			continue // it has read the whole log: idle indeed
		}
		m.times[i].Idle = false
		if ok {
			s.unread, s.unreadAt = true, s.asOf
		}
	}
	return plan.CombineWatermarks(m.times, m.lateness, m.wm)
}

// holding returns the watermark with no source partition left out.
func (m *merger) holding() int64 {
	low := int64(math.MaxInt64)
	for i := range m.times {
		low = min(low, m.times[i].Watermark(m.lateness))
	}
	return max(m.wm, low)
}

// allIdle reports whether every source partition reported being idle.
func (m *merger) allIdle() bool {
	for _, s := range m.sources {
		if !s.reports || !s.idle {
			return false
		}
	}
	return true
}

// flushSessions merges each changed key's sessions over the source
// partitions and finalises merged sessions the watermark passed.
func (m *merger) flushSessions(out *output) {
	keys := make([]string, 0, len(m.dirty))
	for k := range m.dirty {
		if shown, ok := m.keyShown[k]; !ok || m.pace.due(shown) {
			keys = append(keys, k)
		}
	}
	// Keys with a session the watermark passed are looked at too.
	for k, uks := range m.keyUnits {
		if slices.Contains(keys, k) {
			continue
		}
		for _, uk := range uks {
			if u := m.units[uk]; u != nil && u.end <= m.wm {
				keys = append(keys, k)
				break
			}
		}
	}
	for _, k := range keys {
		delete(m.dirty, k)
		m.keyShown[k] = m.pace.now
		var merged sessionList
		var live []unitKey
		for _, uk := range m.keyUnits[k] {
			u := m.units[uk]
			if u == nil || len(u.states) == 0 {
				delete(m.units, uk)
				continue
			}
			live = append(live, uk)
			for _, st := range u.states {
				merged.add(m.plan, plan.TimeWindow{Start: uk.start, End: u.end}, st, nil)
			}
		}
		var now []plan.TimeWindow
		for _, s := range merged {
			if s.End <= m.wm {
				out.Final = append(out.Final, m.sessionRow(out, k, s, true))
				// Its units are done.
				live = slices.DeleteFunc(live, func(uk unitKey) bool {
					if uk.start >= s.Start && uk.start < s.End {
						delete(m.units, uk)
						return true
					}
					return false
				})
				continue
			}
			now = append(now, s.TimeWindow)
			out.Open = append(out.Open, m.sessionRow(out, k, s, false))
		}
		for _, old := range m.shown[k] {
			if !showsSession(k, old.Start, now, out.Final) {
				out.Gone = append(out.Gone, viewrow.Row{Start: old.Start, End: old.End, Key: k, Group: m.group(k),
					Aggs: make([]event.Value, m.ncols), Deleted: true})
			}
		}
		if len(live) == 0 {
			delete(m.keyUnits, k)
			delete(m.shown, k)
			delete(m.keyShown, k)
			delete(m.dirty, k)
			continue
		}
		m.keyUnits[k], m.shown[k] = live, now
	}
	sortRows(out.Final)
}

// showsSession reports whether the session of key starting at start is
// among the open sessions now (of that key) or the final rows: if not, a
// row shown for it is a tombstone's.
func showsSession(key string, start int64, now []plan.TimeWindow, final []viewrow.Row) bool {
	return slices.ContainsFunc(now, func(w plan.TimeWindow) bool { return w.Start == start }) ||
		slices.ContainsFunc(final, func(r viewrow.Row) bool { return r.Key == key && r.Start == start })
}

func sortRows(rows []viewrow.Row) {
	slices.SortFunc(rows, func(a, b viewrow.Row) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.Key, b.Key))
	})
}

func (m *merger) sessionRow(out *output, key string, s plan.Session, final bool) viewrow.Row {
	return m.finish(out, key, s.TimeWindow, s.State, final)
}

// row merges a window's states over the source partitions.
func (m *merger) row(out *output, key string, tw plan.TimeWindow, states map[int]*aggregate.State, final bool) viewrow.Row {
	st := m.plan.NewState()
	for _, s := range states {
		m.plan.Merge(st, s)
	}
	return m.finish(out, key, tw, st, final)
}

func (m *merger) finish(out *output, key string, tw plan.TimeWindow, st *aggregate.State, final bool) viewrow.Row {
	return out.row(m.plan, m.ngroup+m.ncols, tw, key, key, st, final)
}

func (m *merger) group(key string) []event.Value {
	return appendGroup(m.plan, make([]event.Value, 0, m.ngroup), key)
}

// partialRow is a row of a partial engine: Key set, and Aggs holding one
// value, the encoded aggregate state (nil Aggs if it cannot be encoded).
func partialRow(tw plan.TimeWindow, key string, group []event.Value, st *aggregate.State, final bool) viewrow.Row {
	r := viewrow.Row{Start: tw.Start, End: tw.End, Key: key, Group: group, Final: final}
	if b, err := st.AppendBinary(nil); err == nil {
		r.Aggs = []event.Value{{S: string(b), Valid: true}}
	}
	return r
}
