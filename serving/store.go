// Package serving owns the view store and the query API: it keeps the rows the
// speed layer and the batch layer produce and answers queries by merging them
// at the batch horizon — batch rows for windows that end at or before the
// horizon, speed rows after it.
//
// It imports nothing of ours but the pipeline packages (pipelines, event,
// viewrow) and the HTTP surface (api, internal/httpapi): the layers push
// rows (viewrow.Row, the one view-row type) into a
// Store; it never reads the log, the lake or checkpoints itself.
package serving

import (
	"sort"
	"sync"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// rowSet holds a layer's rows of one view, indexed by group first so that the
// common query — one key over a time range — touches only that key's rows.
type rowSet map[string]map[int64]viewrow.Row

func (rs rowSet) put(r viewrow.Row) {
	g := event.GroupKey(r.Group)
	s := rs[g]
	if s == nil {
		s = map[int64]viewrow.Row{}
		rs[g] = s
	}
	s[r.Start] = r
}

func (rs rowSet) get(group string, start int64) (viewrow.Row, bool) {
	r, ok := rs[group][start]
	return r, ok
}

type viewRows struct {
	spec     *pipelines.View
	speed    rowSet
	batch    rowSet
	horizon  int64 // batch horizon, UTC µs; valid when hasBatch
	hasBatch bool
	drift    uint64
}

// Store holds every view's rows. It is safe for concurrent use.
type Store struct {
	mu    sync.RWMutex
	views map[string]*viewRows
	names []string
}

// NewStore returns a store for the pipeline's views.
func NewStore(p *pipelines.Pipeline) *Store {
	s := &Store{views: make(map[string]*viewRows, len(p.Views))}
	for i := range p.Views {
		v := &p.Views[i]
		s.views[v.Name] = &viewRows{spec: v, speed: rowSet{}, batch: rowSet{}}
		s.names = append(s.names, v.Name)
	}
	return s
}

// Views lists the view names in pipeline order.
func (s *Store) Views() []string { return append([]string(nil), s.names...) }

// View returns a view's definition, or nil.
func (s *Store) View(name string) *pipelines.View {
	if v := s.views[name]; v != nil {
		return v.spec
	}
	return nil
}

// PutSpeed records the speed layer's current values of windows (open or
// final), replacing earlier values of the same windows.
func (s *Store) PutSpeed(view string, rows []viewrow.Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.views[view]
	if v == nil {
		return
	}
	for _, r := range rows {
		r.Layer = viewrow.LayerSpeed
		r.Key = "" // the speed layer's own; the store would only keep it alive
		v.speed.put(r)
	}
}

// DeleteSpeed removes the speed rows of windows that no longer exist, each
// identified by its Group and Start: a session window that merged into
// another or whose start moved earlier.
func (s *Store) DeleteSpeed(view string, rows []viewrow.Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.views[view]
	if v == nil {
		return
	}
	for _, r := range rows {
		g := event.GroupKey(r.Group)
		if set := v.speed[g]; set != nil {
			delete(set, r.Start)
			if len(set) == 0 {
				delete(v.speed, g)
			}
		}
	}
}

// EvictSpeed drops speed rows of windows that ended before the given time;
// the speed layer calls it when final windows pass their retention.
func (s *Store) EvictSpeed(view string, endBefore int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.views[view]
	if v == nil {
		return 0
	}
	n := 0
	for g, s := range v.speed {
		for start, r := range s {
			if r.End < endBefore {
				delete(s, start)
				n++
			}
		}
		if len(s) == 0 {
			delete(v.speed, g)
		}
	}
	return n
}

// PutBatch installs a batch run's result: every batch row of windows starting
// in [from, to) is replaced by rows, and the horizon moves to horizon (it
// never moves back). It returns how many closed windows differ from the speed
// layer's values (drift), counting only windows both layers hold.
func (s *Store) PutBatch(view string, from, to, horizon int64, rows []viewrow.Row) (drift int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.views[view]
	if v == nil {
		return 0
	}
	for g, s := range v.batch {
		for start := range s {
			if start >= from && start < to {
				delete(s, start)
			}
		}
		if len(s) == 0 {
			delete(v.batch, g)
		}
	}
	for _, r := range rows {
		r.Layer = viewrow.LayerBatch
		r.Final = true
		v.batch.put(r)
		if sp, ok := v.speed.get(event.GroupKey(r.Group), r.Start); ok && sp.Final && !sameValues(sp.Aggs, r.Aggs) {
			drift++
		}
	}
	if !v.hasBatch || horizon > v.horizon {
		v.horizon, v.hasBatch = horizon, true
	}
	v.drift += uint64(drift)
	return drift
}

func sameValues(a, b []event.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Valid != y.Valid || x.S != y.S || x.I != y.I {
			return false
		}
		if x.F != y.F && !closeEnough(x.F, y.F) {
			return false
		}
	}
	return true
}

// closeEnough tolerates the last bits of floating-point sums, which differ
// with the order events were added in.
func closeEnough(a, b float64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	m := a
	if m < 0 {
		m = -m
	}
	if bb := b; bb < 0 && -bb > m {
		m = -bb
	} else if bb > m {
		m = bb
	}
	return d <= 1e-9*m
}

// Horizon returns a view's batch horizon and whether a batch run has set one.
func (s *Store) Horizon(view string) (int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v := s.views[view]; v != nil {
		return v.horizon, v.hasBatch
	}
	return 0, false
}

// Drift returns how many closed windows of a view differed between layers.
func (s *Store) Drift(view string) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v := s.views[view]; v != nil {
		return v.drift
	}
	return 0
}

// Filter selects rows: Group maps group-by field index to the wanted value;
// From and To bound window starts (From inclusive, To exclusive; 0 = open).
type Filter struct {
	Group    map[int]event.Value
	From, To int64
}

// Query returns a view's merged rows ordered by window start then group:
// batch rows for windows ending at or before the horizon, speed rows for the
// rest. ok is false for an unknown view.
func (s *Store) Query(view string, f Filter) (rows []viewrow.Row, horizon int64, hasHorizon, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := s.views[view]
	if v == nil {
		return nil, 0, false, false
	}
	inRange := func(r viewrow.Row) bool {
		return (f.From == 0 || r.Start >= f.From) && (f.To == 0 || r.Start < f.To)
	}
	groupMatch := func(r viewrow.Row) bool {
		for i, want := range f.Group {
			if i >= len(r.Group) || !sameValues([]event.Value{r.Group[i]}, []event.Value{want}) {
				return false
			}
		}
		return true
	}
	// With every group-by field filtered the group is known: look it up.
	exact, exactOK := "", len(f.Group) == len(v.spec.GroupBy)
	if exactOK {
		vals := make([]event.Value, len(v.spec.GroupBy))
		for i, val := range f.Group {
			vals[i] = val
		}
		exact = event.GroupKey(vals)
	}
	collect := func(rs rowSet, keep func(viewrow.Row) bool) {
		if exactOK {
			for _, r := range rs[exact] {
				if inRange(r) && keep(r) {
					rows = append(rows, r)
				}
			}
			return
		}
		for _, s := range rs {
			for _, r := range s {
				if inRange(r) && groupMatch(r) && keep(r) {
					rows = append(rows, r)
				}
			}
		}
	}
	if v.hasBatch {
		collect(v.batch, func(r viewrow.Row) bool { return r.End <= v.horizon })
	}
	collect(v.speed, func(r viewrow.Row) bool { return !v.hasBatch || r.End > v.horizon })
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Start != rows[j].Start {
			return rows[i].Start < rows[j].Start
		}
		return event.GroupKey(rows[i].Group) < event.GroupKey(rows[j].Group)
	})
	return rows, v.horizon, v.hasBatch, true
}
