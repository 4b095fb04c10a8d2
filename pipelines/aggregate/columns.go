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

// UpdateColumns adds rows of a columnar batch to states: row rows[k] of c
// to states[k] (a state may take many rows of a batch). The caller has
// already checked Match and assigned each row to its state's key and
// window. The states end as Update of the rows' events in order would leave
// them.
func (p *Set) UpdateColumns(states []*State, rows []int32, c *event.Columns) {
	if p.custom {
		var e event.Event
		for k, r := range rows {
			c.Event(int(r), p.schema, &e)
			p.Update(states[k], &e)
		}
		return
	}
	rowPass := false
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
		if isRowOp(op) || op.upd != statNone && p.rowStats[op.st] {
			rowPass = true
			continue
		}
		if op.upd != statNone {
			p.statsColumn(states, rows, col, op)
		}
	}
	if rowPass {
		p.updateRows(states, rows, c)
	}
}

// statsColumn counts a column's non-null values into the stats of op's
// field.
func (p *Set) statsColumn(states []*State, rows []int32, col *event.Column, op *aggOp) {
	switch op.class {
	case classInt:
		for k, r := range rows {
			if col.Valid == nil || col.Valid[r] {
				w := p.words(states[k])
				n := w[op.n]
				minMaxInt(w, op, n, col.I[r])
				w[op.n] = n + 1
			}
		}
	case classFloat:
		for k, r := range rows {
			if x := col.F[r]; (col.Valid == nil || col.Valid[r]) && x == x {
				w := p.words(states[k])
				n := w[op.n]
				minMaxFloat(w, op, n, math.Float64bits(x))
				w[op.n] = n + 1
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
func (p *Set) updateRows(states []*State, rows []int32, c *event.Columns) {
	for k, r := range rows {
		s := states[k]
		w := p.words(s)
		for i := range p.upd {
			op := &p.upd[i]
			row := isRowOp(op)
			stats := op.upd != statNone && p.rowStats[op.st]
			if !row && !stats {
				continue
			}
			col := &c.Fields[op.field]
			if col.Null(int(r)) {
				continue
			}
			v := col.Value(int(r), op.typ)
			if op.class == classFloat && v.F != v.F {
				continue
			}
			if row {
				var id string
				if c.ID != nil {
					id = c.ID[r]
				}
				p.updateOp(s, w, op, &v, c.Time[r], id, nil)
			}
			if stats {
				p.updateStats(s, w, op, &v)
			}
		}
	}
}
