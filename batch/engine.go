package batch

import (
	"context"
	"math"
	"runtime"
	"sync"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/expr"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
)

// The batch engine computes a span of a tumbling or hopping view over lake
// files column at a time and in parallel:
//
//   - work is a row group of a file: workers (one per CPU) take files in
//     order and hand a file's further row groups to whoever is idle, so
//     one large file is read by all of them;
//   - each batch of a row group is read into typed vectors (columnReader;
//     the pages of a file in memory decoded by the lake's own page
//     decoder, lake_pages.go),
//     filtered by a selection vector (the event-time range, then the where
//     expression a column at a time), its group keys turned into dense ids
//     (plan.Grouper: one lookup per dictionary word, or at most one hash per
//     row), its windows assigned over the time column, and the aggregates
//     updated a column at a time over the rows' states (UpdateColumns), or,
//     for a tumbling view whose states are words alone, into flat slots
//     per (window, group) merged into the states once per batch
//     (tumblingSlots; a batch whose rows are all kept takes
//     Slots.UpdateAll, its loops free of selection vectors and, over
//     columns without nulls, of validity tests, and when grouped by one
//     dictionary-encoded string its slots are keyed by dictionary word,
//     with no group id per row: Grouper.DictKeys);
//   - each worker keeps partial states per window, in an array indexed by
//     group id; at the end they are merged by key with the plan's Merge,
//     which is exact for every aggregate (the result does not depend on how
//     the rows were split).
//
// Session windows depend on each key's other events in order and stay on
// the event-at-a-time path (computer.sessionSpan).

// gridSpan is one run of the engine over the files of a span.
type gridSpan struct {
	c            *computer
	pl           *plan.Plan
	sp           span
	h            int64
	evFrom, evTo int64
	size, slide  int64
	opts         scanOptions
	files        []fileEntry
	pf           *prefetch // opens files, fetching ahead from object storage
	hourOf       []int     // per file, its index in hours
	mu           sync.Mutex
	// more is signalled (under mu) when row groups are offered, a file's
	// opening ends or the run fails: what a worker with nothing to take
	// waits for while another is still opening a file.
	more             sync.Cond
	opening          int        // files being opened, under mu
	next             int        // next file to open
	extra            []rowGroup // row groups waiting for a worker
	opened           []*openFile
	left             []int // per hour, files not yet done
	hoursLeft, total int
	err              error
	cancel           context.CancelFunc
}

// rowGroup is a unit of work: one row group of an open file.
type rowGroup struct {
	f  *openFile
	rg int
}

// openFile is a file some workers read; the last to finish closes it.
type openFile struct {
	lf     *lakeFile
	idx    int  // in gridSpan.files
	left   int  // row groups not yet done, under gridSpan.mu
	closed bool // under gridSpan.mu
}

// winStates are one window's states of one worker, by group id: an array
// while ids are dense enough, a map once the window holds few of many
// groups (memory stays proportional to the states).
type winStates struct {
	end    int64
	states []*aggregate.State
	sparse map[int32]*aggregate.State
	n      int
}

// add returns the state of group id when the array does not hold it: a
// group new to the window, or any group once the window is sparse.
func (ws *winStates) add(pl *plan.Plan, id int32) *aggregate.State {
	if ws.sparse == nil && int(id) >= len(ws.states) {
		if int(id) >= 4*(ws.n+256) {
			ws.sparse = make(map[int32]*aggregate.State, ws.n)
			for i, st := range ws.states {
				if st != nil {
					ws.sparse[int32(i)] = st
				}
			}
			ws.states = nil
		} else {
			ws.states = append(ws.states, make([]*aggregate.State, int(id)+1-len(ws.states))...)
			ws.states = ws.states[:cap(ws.states)]
		}
	}
	if ws.sparse != nil {
		if st := ws.sparse[id]; st != nil {
			return st
		}
		st := pl.NewState()
		ws.sparse[id] = st
		ws.n++
		return st
	}
	st := pl.NewState()
	ws.states[id] = st
	ws.n++
	return st
}

// get returns the state of group id, adding it if new.
func (ws *winStates) get(pl *plan.Plan, id int32) *aggregate.State {
	if ws.sparse == nil && int(id) < len(ws.states) {
		if st := ws.states[id]; st != nil {
			return st
		}
	}
	return ws.add(pl, id)
}

// each calls fn for every state of the window.
func (ws *winStates) each(fn func(id int32, st *aggregate.State)) {
	if ws.sparse != nil {
		for id, st := range ws.sparse {
			fn(id, st)
		}
		return
	}
	for id, st := range ws.states {
		if st != nil {
			fn(int32(id), st)
		}
	}
}

// worker is one goroutine's part of a gridSpan: its reader, matcher,
// group ids and partial states, and the buffers of its batches.
type worker struct {
	g       *gridSpan
	r       columnReader
	match   *expr.Matcher
	groups  *plan.Grouper
	aggs    *aggregate.Columnar
	windows map[int64]*winStates
	// the window of the row before, and whether it is outside the span
	curStart    int64
	cur         *winStates
	curOut, set bool
	rows, in    []int32
	ids         []int32
	states      []*aggregate.State
	read        int64
	// slots: the plan's flat partial states (nil when its states hold
	// more than words); see tumblingSlots.
	slots      *aggregate.Slots
	slotOf     []int32     // per group id, its slot in the current run (-1: none)
	wordSlot   []int32     // the same per dictionary word (tumblingSlots with DictKeys)
	owners     []slotOwner // per slot, its window and group
	rowSlot    []int32
	slotStates []*aggregate.State
	iota       []int32 // 0, 1, 2 …: the rows of a batch kept whole
}

// slotOwner is what a slot of a batch holds: rows of group id in the
// window ws.
type slotOwner struct {
	ws *winStates
	id int32
}

// gridRows runs the engine over files (of the hours listed, in order) and
// returns each worker's partial results.
func (c *computer) gridSpan(ctx context.Context, files []fileEntry, hourOf []int, hours int, sp span, h int64) ([]*worker, error) {
	pl := c.vj.plan
	size, slide, _ := pl.WindowGrid()
	evFrom, evTo := c.vj.eventRange(sp, h)
	g := &gridSpan{c: c, pl: pl, sp: sp, h: h, evFrom: evFrom, evTo: evTo, size: size, slide: slide,
		opts: scanOptions{Fields: c.vj.fields, IDs: c.vj.ids}, files: files, hourOf: hourOf,
		left: make([]int, hours), hoursLeft: hours}
	g.more.L = &g.mu
	for _, hi := range hourOf {
		g.left[hi]++
	}
	// Hours without files are done at once.
	for hi := range g.left {
		if g.left[hi] == 0 {
			g.hourDone()
		}
	}
	ctx, g.cancel = context.WithCancel(ctx)
	defer g.cancel()
	g.pf = c.vj.tl.prefetchFiles(ctx, files)
	defer g.pf.stop()
	// One worker per CPU, also for fewer files than CPUs: a file's further
	// row groups go to the workers waiting while it is opened (take).
	n := max(1, runtime.GOMAXPROCS(0))
	workers := make([]*worker, n)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{g: g, match: pl.NewMatcher(), groups: pl.NewGrouper(), aggs: pl.NewColumnar(), slots: pl.NewSlots(),
			windows: map[int64]*winStates{}}
		workers[i] = w
		wg.Go(func() { g.fail(w.run(ctx)) })
	}
	wg.Wait()
	// Files a failed run left open.
	for _, f := range g.opened {
		if !f.closed {
			f.lf.close()
		}
	}
	if g.err != nil {
		return nil, g.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return workers, nil
}

// fail records the first error and stops the other workers.
func (g *gridSpan) fail(err error) {
	if err == nil {
		return
	}
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.more.Broadcast()
	g.mu.Unlock()
	g.cancel()
}

// hourDone counts one more hour done, for the job's progress. Called with
// g.mu held (or before the workers start).
func (g *gridSpan) hourDone() {
	g.c.done++
	g.c.j.progress(g.c.done, g.c.total, g.c.rows)
}

// take returns the next unit of work: a row group of a file another worker
// opened, else the next file to open (rg < 0); ok is false when nothing is
// left. With nothing to take while another worker is opening a file, it
// waits for that file's further row groups (the last file of a span, or
// its only one, is then still read by every worker).
func (g *gridSpan) take() (u rowGroup, file int, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		if n := len(g.extra); n > 0 {
			u = g.extra[0]
			g.extra = g.extra[1:]
			return u, -1, true
		}
		if g.next < len(g.files) {
			g.next++
			g.opening++
			return rowGroup{}, g.next - 1, true
		}
		if g.opening == 0 || g.err != nil {
			return rowGroup{}, -1, false
		}
		g.more.Wait()
	}
}

// openDone ends the opening of a file that take handed out, whether or not
// it opened, and wakes the workers waiting for its row groups.
func (g *gridSpan) openDone() {
	g.mu.Lock()
	g.opening--
	g.more.Broadcast()
	g.mu.Unlock()
}

// finish counts a row group of f done, closing f and counting its hour
// when it was the last.
func (g *gridSpan) finish(f *openFile, rows int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.rows += rows
	f.left--
	if f.left > 0 {
		return
	}
	f.lf.close()
	f.closed = true
	hi := g.hourOf[f.idx]
	g.left[hi]--
	if g.left[hi] == 0 {
		g.hourDone()
	}
}

// open opens file i of the span and offers its further row groups to the
// other workers.
func (g *gridSpan) open(ctx context.Context, i int) (*openFile, error) {
	lf, err := g.pf.openLakeFile(ctx, i, g.opts)
	if err != nil {
		return nil, err
	}
	f := &openFile{lf: lf, idx: i, left: lf.rowGroups()}
	if f.left == 0 {
		f.left = 1 // an empty file is one unit of no rows
	}
	g.mu.Lock()
	g.opened = append(g.opened, f)
	for rg := 1; rg < lf.rowGroups(); rg++ {
		g.extra = append(g.extra, rowGroup{f: f, rg: rg})
	}
	g.mu.Unlock()
	return f, nil
}

// run works until nothing is left or something failed.
func (w *worker) run(ctx context.Context) error {
	g := w.g
	for {
		if err := ctx.Err(); err != nil {
			return nil // the caller reports why
		}
		u, file, ok := g.take()
		if !ok {
			return nil
		}
		if file >= 0 {
			f, err := g.open(ctx, file)
			g.openDone()
			if err != nil {
				return err
			}
			u = rowGroup{f: f, rg: 0}
			if f.lf.rowGroups() == 0 {
				g.finish(f, 0)
				continue
			}
		}
		w.read = 0
		err := w.r.scanRowGroup(ctx, u.f.lf, u.rg, w.batch)
		if err != nil {
			return err
		}
		g.finish(u.f, w.read)
	}
}

// batch runs the view's plan over one batch of rows.
func (w *worker) batch(b *colBatch) error {
	g := w.g
	w.read += int64(b.Len)
	rows := w.rows[:0]
	if b.TimeBounded && b.TimeLo >= g.evFrom && b.TimeHi < g.evTo || within(b.Time, g.evFrom, g.evTo) {
		// The whole row group, or at least the batch, is inside the
		// range: every row, copied from the rows 0, 1, 2 … kept.
		for len(w.iota) < b.Len {
			w.iota = append(w.iota, int32(len(w.iota)))
		}
		rows = append(rows, w.iota[:b.Len]...)
	} else {
		for i, t := range b.Time {
			if t >= g.evFrom && t < g.evTo {
				rows = append(rows, int32(i))
			}
		}
	}
	rows = w.match.Filter(&b.Columns, g.c.vj.topic.Schema, rows, rows[:0])
	w.rows = rows
	if g.size == g.slide && w.slots != nil {
		// Every row of a batch grouped by one dictionary-encoded
		// string: slots keyed by dictionary word, no group id per row.
		keys, nkeys, dict := w.groups.DictKeys(&b.Columns)
		if !dict || len(rows) != b.Len {
			w.ids = w.groups.Groups(&b.Columns, rows, w.ids)
			keys, nkeys, dict = w.ids, w.groups.Len(), false
		}
		w.tumblingSlots(b, rows, keys, nkeys, dict)
		return nil
	}
	w.ids = w.groups.Groups(&b.Columns, rows, w.ids)
	if g.size == g.slide {
		w.tumbling(b, rows)
		return nil
	}
	// A row lies in the windows starting at its slot of the grid and at
	// each slide before it that still holds it (just the one for tumbling
	// windows).
	for back := int64(0); back < g.size; back += g.slide {
		in, states := w.in[:0], w.states[:0]
		slot := int64(math.MinInt64) // the grid slot of the row before
		for k, r := range rows {
			t := b.Time[r]
			// Rows mostly come in time order: most are in the slot of
			// the row before, which saves a division.
			if t < slot || t >= slot+g.slide {
				slot = plan.GridSlot(t, g.slide)
			}
			start := slot - back
			if t >= start+g.size {
				continue
			}
			if !w.set || start != w.curStart {
				w.window(start)
			}
			if w.curOut {
				continue
			}
			// winStates.get, its fast path written out: this is the
			// loop of every row.
			id, cur := w.ids[k], w.cur
			var st *aggregate.State
			if cur.sparse == nil && int(id) < len(cur.states) {
				st = cur.states[id]
			}
			if st == nil {
				st = cur.add(g.pl, id)
			}
			in = append(in, r)
			states = append(states, st)
		}
		w.aggs.UpdateColumns(states, in, &b.Columns)
		w.in, w.states = in, states
	}
	return nil
}

// within reports whether every time is in [from, to): a loop without
// stores, cheaper than building the selection row by row when (as mostly)
// the answer is yes.
func within(times []int64, from, to int64) bool {
	for _, t := range times {
		if t < from || t >= to {
			return false
		}
	}
	return true
}

// tumbling is batch's row loop for tumbling windows, where a row lies in
// one window: rows mostly come in time order, so it goes run by run of
// rows in one window, and the loop of every row only looks up its state.
func (w *worker) tumbling(b *colBatch, rows []int32) {
	g := w.g
	ids := w.ids[:len(rows)]
	in, states := resize(w.in, len(rows)), resize(w.states, len(rows))
	n := 0
	for k, to := 0, 0; k < len(rows); k = to {
		var cur *winStates
		if to, cur = w.windowRun(b.Time, rows, k); cur == nil {
			continue
		}
		for j := k; j < to; j++ {
			id := ids[j]
			var st *aggregate.State
			if cur.sparse == nil && int(id) < len(cur.states) {
				st = cur.states[id]
			}
			if st == nil {
				st = cur.add(g.pl, id)
			}
			in[n], states[n] = rows[j], st
			n++
		}
	}
	w.aggs.UpdateColumns(states[:n], in[:n], &b.Columns)
	w.in, w.states = in, states
}

// windowRun returns the end of the run of rows from rows[k] on that lie in one
// window, and that window's states, nil when the window is outside the
// span (the run is skipped).
func (w *worker) windowRun(times []int64, rows []int32, k int) (int, *winStates) {
	g := w.g
	start := plan.GridSlot(times[rows[k]], g.slide)
	end := start + g.slide
	if !w.set || start != w.curStart {
		w.window(start)
	}
	j := k + 1
	for j < len(rows) && times[rows[j]] >= start && times[rows[j]] < end {
		j++
	}
	if w.curOut {
		return j, nil
	}
	return j, w.cur
}

// tumblingSlots is tumbling for a plan with Slots: each (window, group)
// the batch touches gets a slot, the aggregates are updated a column at a
// time into the slots, and each slot is then merged into its state, once
// per batch instead of a state pointer per row and aggregate. When most
// rows have a slot of their own (many groups, few rows each) merging would
// cost more than it saves, and the rows go to their states directly.
//
// keys[k] names the group of row rows[k], below nkeys: its group id, or,
// with dict, the word of the group-by field's dictionary (every row of
// the batch, DictKeys), turned into a group id once per slot.
func (w *worker) tumblingSlots(b *colBatch, rows, keys []int32, nkeys int, dict bool) {
	g := w.g
	keys = keys[:len(rows)]
	in, slots := resize(w.in, len(rows)), resize(w.rowSlot, len(rows))
	slotOf := &w.slotOf
	if dict {
		slotOf = &w.wordSlot
	}
	for len(*slotOf) < nkeys {
		*slotOf = append(*slotOf, -1)
	}
	// owners[i].id is the slot's key until the rows are placed.
	slotOfKey, owners := *slotOf, w.owners[:0]
	// The rows kept are rows itself until a run is skipped (a window
	// outside the span); from then on they are copied into in.
	n, skipped := 0, false
	for k, to := 0, 0; k < len(rows); k = to {
		var cur *winStates
		if to, cur = w.windowRun(b.Time, rows, k); cur == nil {
			if !skipped {
				copy(in, rows[:n])
				skipped = true
			}
			continue
		}
		if skipped {
			copy(in[n:], rows[k:to])
		}
		first := len(owners)
		for j := k; j < to; {
			j += placeRun(keys[j:to], slotOfKey, slots[n+j-k:])
			if j < to {
				// A key without a slot yet in this run.
				slotOfKey[keys[j]] = int32(len(owners))
				owners = append(owners, slotOwner{ws: cur, id: keys[j]})
			}
		}
		n += to - k
		// The next run (another window) starts with no slots.
		for _, o := range owners[first:] {
			slotOfKey[o.id] = -1
		}
	}
	if dict {
		for i := range owners {
			owners[i].id = w.groups.WordID(&b.Columns, owners[i].id)
		}
	}
	w.in, w.rowSlot, w.owners = in, slots, owners
	kept := rows
	if skipped {
		kept = in[:n]
	}
	slots = slots[:n]
	if 4*len(owners) > n {
		byslot, states := resize(w.slotStates, len(owners)), resize(w.states, n)
		for i, o := range owners {
			byslot[i] = o.ws.get(g.pl, o.id)
		}
		for k, sl := range slots {
			states[k] = byslot[sl]
		}
		w.aggs.UpdateColumns(states, kept, &b.Columns)
		w.slotStates, w.states = byslot, states
		return
	}
	w.slots.Reset(len(owners))
	if n == b.Len {
		// Every row of the batch, in order (rows is a selection
		// vector: increasing).
		w.slots.UpdateAll(slots, &b.Columns)
	} else {
		w.slots.Update(slots, kept, &b.Columns)
	}
	for i, o := range owners {
		w.slots.MergeInto(o.ws.get(g.pl, o.id), i)
	}
}

// placeRun sets out[j] to the slot of keys[j] up to the first key without
// one, and returns how many it set: the loop of every row, in a function
// of its own so that its few variables stay in registers.
func placeRun(keys, slotOf, out []int32) int {
	out = out[:len(keys)]
	for j, key := range keys {
		sl := slotOf[key]
		if sl < 0 {
			return j
		}
		out[j] = sl
	}
	return len(keys)
}

// window makes the window starting at start the current one.
func (w *worker) window(start int64) {
	g := w.g
	w.set, w.curStart = true, start
	end := start + g.size
	w.curOut = start < g.sp.from || start >= g.sp.to || end > g.h
	if w.curOut {
		w.cur = nil
		return
	}
	ws := w.windows[start]
	if ws == nil {
		ws = &winStates{end: end}
		w.windows[start] = ws
	}
	w.cur = ws
}

// mergeWorkers merges the workers' partial states by window and group key.
func mergeWorkers(pl *plan.Plan, workers []*worker) map[int64]map[string]*aggregate.State {
	out := map[int64]map[string]*aggregate.State{}
	for _, w := range workers {
		for start, ws := range w.windows {
			byKey := out[start]
			if byKey == nil {
				byKey = map[string]*aggregate.State{}
				out[start] = byKey
			}
			ws.each(func(id int32, st *aggregate.State) {
				key := w.groups.Key(id)
				if dst := byKey[key]; dst != nil {
					pl.Merge(dst, st)
				} else {
					byKey[key] = st
				}
			})
		}
	}
	return out
}
