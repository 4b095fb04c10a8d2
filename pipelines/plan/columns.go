package plan

import (
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// A batch engine runs a plan over columnar batches (event.Columns) instead
// of events one at a time: the matcher's Filter, WindowGrid for window
// assignment over the time column, a Grouper for dense group ids and
// NewColumnar's UpdateColumns for the aggregates a column at a time. The results are
// those of Match, Windows, Key and Update on each row's event.

// WindowGrid returns the grid of a tumbling or hopping view's windows:
// [k·slide, k·slide+size) for every integer k, slide = size for tumbling
// windows. Windows(t) gives the grid's windows that hold t. ok is false for
// session windows.
func (p *Plan) WindowGrid() (size, slide int64, ok bool) {
	switch p.kind {
	case windowTumbling:
		return p.size, p.size, true
	case windowHopping:
		return p.size, p.slide, true
	}
	return 0, 0, false
}

// GridSlot returns the start of the slot of a grid with the given slide
// (WindowGrid) that holds t: the largest multiple of slide counted from the
// Unix epoch that is ≤ t, also before 1970.
func GridSlot(t, slide int64) int64 { return floorDiv(t, slide) * slide }

// NewColumnar returns what updates the view's states a column at a time
// (aggregate.Columnar.UpdateColumns), one per goroutine.
func (p *Plan) NewColumnar() *aggregate.Columnar { return p.aggs.NewColumnar() }

// NewSlots returns the view's aggregate.Slots (partial states in one flat
// array, for a batch engine that merges them into states once per batch),
// or nil when its states hold more than words. One per goroutine.
func (p *Plan) NewSlots() *aggregate.Slots { return p.aggs.NewSlots() }

// Grouper gives the group keys of the rows of columnar batches dense ids,
// 0, 1, 2 … in order of first appearance, so that a batch engine keeps
// states in arrays indexed by id instead of maps keyed by the key. Key(id)
// is the key Plan.Key gives the rows of that group. Rows are hashed at most
// once each; a single dictionary-encoded string field is looked up once per
// dictionary word, not per row. A Grouper is not safe for concurrent use.
type Grouper struct {
	p    *Plan
	ids  map[string]int32
	keys []string
	buf  []byte
	// The current dictionary of a single string group-by field and the
	// group of each of its words (-1: not looked up yet). Holding words
	// keeps its array from being reused for another dictionary.
	words  []string
	wordID []int32
}

// NewGrouper returns an empty Grouper of the plan's group keys.
func (p *Plan) NewGrouper() *Grouper {
	return &Grouper{p: p, ids: map[string]int32{}}
}

// Len returns the number of groups seen.
func (g *Grouper) Len() int { return len(g.keys) }

// Key returns the group key of id, as Plan.Key encodes it.
func (g *Grouper) Key(id int32) string { return g.keys[id] }

// id returns the id of a key, adding it.
func (g *Grouper) id(key []byte) int32 {
	if id, ok := g.ids[string(key)]; ok {
		return id
	}
	id := int32(len(g.keys))
	k := string(key)
	g.ids[k] = id
	g.keys = append(g.keys, k)
	return id
}

// Groups sets out[k] to the group id of row rows[k] of c and returns out,
// resized to len(rows). c must hold the group-by fields.
func (g *Grouper) Groups(c *event.Columns, rows []int32, out []int32) []int32 {
	if cap(out) < len(rows) {
		out = make([]int32, len(rows))
	}
	out = out[:len(rows)]
	group := g.p.group
	if len(group) == 0 {
		id := g.id(nil)
		for k := range out {
			out[k] = id
		}
		return out
	}
	if len(group) == 1 && group[0].typ == event.TypeString && c.Fields[group[0].field].Idx != nil {
		g.groupsDict(&c.Fields[group[0].field], rows, out)
		return out
	}
	// Rows mostly come in runs of one key (a lake file is in time order
	// per partition, often per host): a key equal to the row before's
	// needs no lookup.
	var last []byte
	lastID := int32(-1)
	for k, r := range rows {
		g.buf = g.buf[:0]
		for _, f := range group {
			v := c.Fields[f.field].Value(int(r), f.typ)
			g.buf = appendKeyValue(g.buf, f.typ, &v)
		}
		if lastID < 0 || string(g.buf) != string(last) {
			lastID = g.id(g.buf)
			last = append(last[:0], g.buf...)
		}
		out[k] = lastID
	}
	return out
}

// groupsDict is Groups for one dictionary-encoded string field.
func (g *Grouper) groupsDict(col *event.Column, rows []int32, out []int32) {
	g.useWords(col)
	nullID := int32(-1)
	for k, r := range rows {
		if col.Valid != nil && !col.Valid[r] {
			if nullID < 0 {
				nullID = g.id(appendKeyValue(g.buf[:0], event.TypeString, nil))
			}
			out[k] = nullID
			continue
		}
		w := col.Idx[r]
		id := g.wordID[w]
		if id < 0 {
			id = g.wordGroup(col, w)
		}
		out[k] = id
	}
}

// useWords makes col's dictionary the current one, its words' groups not
// looked up yet when it is another than before.
func (g *Grouper) useWords(col *event.Column) {
	if len(g.words) != len(col.Words) || len(col.Words) > 0 && &g.words[0] != &col.Words[0] {
		g.words = col.Words
		if cap(g.wordID) < len(col.Words) {
			g.wordID = make([]int32, len(col.Words))
		}
		g.wordID = g.wordID[:len(col.Words)]
		for i := range g.wordID {
			g.wordID[i] = -1
		}
	}
}

// wordGroup looks up the group of word w of the current dictionary.
func (g *Grouper) wordGroup(col *event.Column, w int32) int32 {
	v := event.Value{S: col.Words[w], Valid: true}
	g.buf = appendKeyValue(g.buf[:0], event.TypeString, &v)
	id := g.id(g.buf)
	g.wordID[w] = id
	return id
}

// DictKeys returns the group-by field's dictionary indices of c's rows,
// and the number of its words, when the plan groups by that one string
// field alone and c holds it as dictionary indices without nulls: rows
// with the same index are in the same group, which WordID names. A batch
// engine can then key its per-batch work by word instead of asking Groups
// for every row. ok is false otherwise.
func (g *Grouper) DictKeys(c *event.Columns) (idx []int32, words int, ok bool) {
	group := g.p.group
	if len(group) != 1 || group[0].typ != event.TypeString {
		return nil, 0, false
	}
	col := &c.Fields[group[0].field]
	if col.Idx == nil || col.Valid != nil || !col.Read {
		return nil, 0, false
	}
	return col.Idx[:c.Len], len(col.Words), true
}

// WordID returns the group id of word w of the dictionary of c's group-by
// field, for a batch DictKeys accepted.
func (g *Grouper) WordID(c *event.Columns, w int32) int32 {
	col := &c.Fields[g.p.group[0].field]
	g.useWords(col)
	if id := g.wordID[w]; id >= 0 {
		return id
	}
	return g.wordGroup(col, w)
}
