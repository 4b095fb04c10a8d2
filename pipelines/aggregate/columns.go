package aggregate

import (
	"math"
	"unsafe"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// A batch engine updates states a column at a time: UpdateColumns runs one
// tight loop per aggregate over a batch's rows instead of every aggregate
// per row. That gives the same states as Update of the rows one by one
// because the aggregates are independent of order (counts, exact sums,
// extremes, sets of hashes and sketches are functions of the multiset of
// values), with one coupling: quantile, first and last read their field's
// shared stats (count, minimum, maximum) as they were before the value.
// Those aggregates, and the stats they read, are updated row by row in
// Update's order; everything else column by column.

// isRowOp reports whether op has state of its own that reads its field's
// stats or is too varied to pay for a loop of its own.
func isRowOp(op *aggOp) bool {
	switch op.kind {
	case aggDistinct, aggQuantile, aggFirst, aggLast, aggCustom:
		return true
	}
	return false
}

// planColumns marks the stats that UpdateColumns keeps row by row.
func (p *Set) planColumns() {
	p.rowStats = make([]bool, len(p.stats))
	for i := range p.upd {
		op := &p.upd[i]
		if op.kind == aggCustom {
			p.custom = true
		}
		if isRowOp(op) && op.st >= 0 {
			p.rowStats[op.st] = true
		}
	}
}

// word returns word i of a state's block.
func (p *Set) word(s *State, i int32) *uint64 {
	return (*uint64)(unsafe.Add(s.b, p.layout.offW+uintptr(i)*8))
}

// Columnar updates states of one Set a column at a time (UpdateColumns).
// It keeps what it can reuse from batch to batch (the hashes of a
// dictionary's words for count_distinct, buffers), so each goroutine has
// its own; it is not safe for concurrent use.
type Columnar struct {
	p   *Set
	ops []rowOp
	// hashes of the words of the last dictionary of each count_distinct
	// (by index in Set.upd); holding the words keeps their array from being
	// reused for another dictionary.
	dicts map[int]*wordHashes
	// dd and ddIndex (dd.index as a value, made once) serve the quantiles'
	// bucket indexes.
	dd      *ddCache
	ddIndex func(float64) int32
}

type wordHashes struct {
	words  []string
	hashes []uint64
}

// rowOp is an aggregate the row pass visits, with its column.
type rowOp struct {
	op         *aggOp
	col        *event.Column
	row, stats bool     // updateOp, updateStats
	hashes     []uint64 // count_distinct of dictionary strings: per word
}

// NewColumnar returns a Columnar of the Set.
func (p *Set) NewColumnar() *Columnar {
	dd := new(ddCache)
	return &Columnar{p: p, dicts: map[int]*wordHashes{}, dd: dd, ddIndex: dd.index}
}

// UpdateColumns adds rows of a columnar batch to states: row rows[k] of c
// to states[k] (a state may take many rows of a batch). The caller has
// already checked Match and assigned each row to its state's key and
// window. The states end as Update of the rows' events in order would leave
// them.
func (u *Columnar) UpdateColumns(states []*State, rows []int32, c *event.Columns) {
	p := u.p
	if p.custom {
		var e event.Event
		for k, r := range rows {
			c.Event(int(r), p.schema, &e)
			p.Update(states[k], &e)
		}
		return
	}
	u.ops = u.ops[:0]
	for i := range p.upd {
		op := &p.upd[i]
		if op.kind == aggCount {
			for k := range rows {
				*p.word(states[k], op.w)++
			}
			continue
		}
		col := &c.Fields[op.field]
		if !col.Read {
			continue // null in every row
		}
		switch op.kind {
		case aggSumInt, aggAvgInt:
			for k, r := range rows {
				if col.Valid == nil || col.Valid[r] {
					addInt128(p.words(states[k])[op.w:], col.I[r])
				}
			}
		case aggSumFloat, aggAvgFloat:
			for k, r := range rows {
				if x := col.F[r]; (col.Valid == nil || col.Valid[r]) && x == x {
					p.fsums(states[k])[op.f].add(x)
				}
			}
		}
		row, stats := isRowOp(op), op.upd != statNone && p.rowStats[op.st]
		if row || stats {
			ro := rowOp{op: op, col: col, row: row, stats: stats}
			if op.kind == aggDistinct && col.Idx != nil {
				ro.hashes = u.wordHashes(i, op, col.Words)
			}
			u.ops = append(u.ops, ro)
			continue
		}
		if op.upd != statNone {
			p.statsColumn(states, rows, col, op)
		}
	}
	if len(u.ops) > 0 {
		u.updateRows(states, rows, c)
	}
}

// wordHashes returns the count_distinct hashes of a dictionary's words,
// computed once per dictionary.
func (u *Columnar) wordHashes(i int, op *aggOp, words []string) []uint64 {
	wh := u.dicts[i]
	if wh == nil {
		wh = &wordHashes{}
		u.dicts[i] = wh
	}
	if len(wh.words) != len(words) || len(words) > 0 && &wh.words[0] != &words[0] {
		wh.words = words
		wh.hashes = wh.hashes[:0]
		for _, w := range words {
			v := event.Value{S: w, Valid: true}
			wh.hashes = append(wh.hashes, hashValue(op.typ, &v))
		}
	}
	return wh.hashes
}

// statsColumn counts a column's non-null values into the stats of op's
// field.
func (p *Set) statsColumn(states []*State, rows []int32, col *event.Column, op *aggOp) {
	// The loops of numbers are minMaxInt and minMaxFloat written out with
	// the op's word indices in registers: they run for every row.
	cnt, lo, hi := op.n, op.statMin, op.statMax
	switch op.class {
	case classInt:
		for k, r := range rows {
			if col.Valid == nil || col.Valid[r] {
				w := p.words(states[k])
				n, x := w[cnt], col.I[r]
				if lo >= 0 && (n == 0 || x < int64(w[lo])) {
					w[lo] = uint64(x)
				}
				if hi >= 0 && (n == 0 || x > int64(w[hi])) {
					w[hi] = uint64(x)
				}
				w[cnt] = n + 1
			}
		}
	case classFloat:
		for k, r := range rows {
			if x := col.F[r]; (col.Valid == nil || col.Valid[r]) && x == x {
				w := p.words(states[k])
				n, bits := w[cnt], math.Float64bits(x)
				key := floatKey(bits)
				if lo >= 0 && (n == 0 || key < floatKey(w[lo])) {
					w[lo] = bits
				}
				if hi >= 0 && (n == 0 || key > floatKey(w[hi])) {
					w[hi] = bits
				}
				w[cnt] = n + 1
			}
		}
	default:
		for k, r := range rows {
			if col.Valid == nil || col.Valid[r] {
				w := p.words(states[k])
				n := w[op.n]
				if op.upd == statString {
					p.updateStringExtremes(states[k], op, n, col.Str(int(r)))
				}
				w[op.n] = n + 1
			}
		}
	}
}

// updateRows is the row-by-row part of UpdateColumns: the aggregates that
// read their field's stats, and those stats, in Update's order.
func (u *Columnar) updateRows(states []*State, rows []int32, c *event.Columns) {
	p := u.p
	// One Value for all rows: its address goes where the compiler cannot
	// follow (an Accumulator), so a Value per row would be allocated.
	var v event.Value
	for k, r := range rows {
		s := states[k]
		w := p.words(s)
		for i := range u.ops {
			ro := &u.ops[i]
			op, col := ro.op, ro.col
			if col.Valid != nil && !col.Valid[r] {
				continue
			}
			if ro.hashes != nil {
				h := ro.hashes[col.Idx[r]]
				if d := p.distinctSet(s, op.x); d != nil {
					d.add(h)
				} else {
					p.addDistinct(s, w, op, h)
				}
				continue
			}
			v = col.Value(int(r), op.typ)
			if op.class == classFloat && v.F != v.F {
				continue
			}
			if ro.row && op.kind == aggQuantile && !op.ownMinMax {
				// addQuantile's common case (a busy window's sketch)
				// with the cache's bucket indexes.
				if q := p.quantileSet(s, op.x); q != nil && q.sk != nil {
					x := v.F
					if op.class != classFloat {
						x = float64(v.I)
					}
					q.sk.insertWith(x, 1, u.ddIndex)
					if ro.stats {
						p.updateStats(s, w, op, &v)
					}
					continue
				}
			}
			if ro.row {
				var id string
				if c.ID != nil {
					id = c.ID[r]
				}
				p.updateOp(s, w, op, &v, c.Time[r], id, nil)
			}
			if ro.stats {
				p.updateStats(s, w, op, &v)
			}
		}
	}
}
