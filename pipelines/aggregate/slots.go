package aggregate

import (
	"math"
	"math/bits"
	"unsafe"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Slots are partial states of a Set laid out one after another in a flat
// array of words, indexed by slot number: a batch engine gives each
// (window, group) pair a batch touches a slot, updates the slots a column at
// a time with plain array indexing (no state pointer to load per row and
// aggregate), and then merges each slot into its state once per batch.
// The states end as UpdateColumns would leave them, because merging is
// exact and the aggregates are independent of order (see UpdateColumns).
//
// Only a Set whose states are words alone can have Slots: counts, integer
// sums and averages, and the minimum and maximum of integer and double
// fields (NewSlots). Exact double sums, strings and sketches need their own
// memory per state, and keep to UpdateColumns. Slots are not safe for
// concurrent use: each goroutine has its own.
type Slots struct {
	p  *Set
	nw int      // words per slot
	w  []uint64 // slot i is w[i*nw : (i+1)*nw], laid out as a state's block
	n  int
	// iota is rows 0 … n-1, for UpdateAll's columns with nulls.
	iota []int32
	// view is the State MergeInto hands Merge: a slot seen as a state's
	// block (the same words in the same places).
	view State
}

// NewSlots returns Slots for the Set's states, or nil when its states hold
// more than words.
func (p *Set) NewSlots() *Slots {
	l := &p.layout
	if p.custom || l.na+l.ns+l.nf+l.nd+l.nq > 0 || l.nw == 0 || l.offW != 0 ||
		l.typ.Size() != uintptr(l.nw)*8 {
		return nil
	}
	for i := range p.upd {
		if isRowOp(&p.upd[i]) {
			return nil
		}
	}
	return &Slots{p: p, nw: l.nw}
}

// Reset makes n empty slots, 0 … n-1. The extremes of each slot start
// at a sentinel no value can equal (a NaN's bits for doubles, which never
// reach a state, the far end of the range for integers), so the loops over
// columns without nulls compare without asking whether the slot has a
// value yet; a slot's count says whether its extremes mean anything, as
// Merge reads it.
func (s *Slots) Reset(n int) {
	size := n * s.nw
	if cap(s.w) < size {
		s.w = make([]uint64, size)
	}
	s.w = s.w[:size]
	clear(s.w)
	s.n = n
	for i := range s.p.upd {
		op := &s.p.upd[i]
		if op.upd == statNone || op.class == classString {
			continue
		}
		lo, hi := sentinels(op.class)
		for b := 0; b < size; b += s.nw {
			if op.statMin >= 0 {
				s.w[b+int(op.statMin)] = lo
			}
			if op.statMax >= 0 {
				s.w[b+int(op.statMax)] = hi
			}
		}
	}
}

// sentinels are the words a slot's minimum and maximum start at: above
// and below every value of the class in the order the loops compare in.
func sentinels(c valClass) (lo, hi uint64) {
	if c == classFloat {
		// floatKey of these NaNs is the largest and the smallest key.
		return 0x7fff_ffff_ffff_ffff, 0xffff_ffff_ffff_ffff
	}
	return math.MaxInt64, 1 << 63 // math.MinInt64
}

// Len returns the number of slots.
func (s *Slots) Len() int { return s.n }

// Update adds row rows[k] of c to slot slots[k], as UpdateColumns adds it
// to a state (a slot may take many rows of a batch).
func (s *Slots) Update(slots, rows []int32, c *event.Columns) {
	s.update(slots[:len(rows)], rows, c)
}

// UpdateAll is Update of every row of c in order: row k to slot slots[k],
// for k < len(slots). Its loops index the columns directly, and over a
// column without nulls (Valid nil) test nothing per row but NaN.
func (s *Slots) UpdateAll(slots []int32, c *event.Columns) {
	s.update(slots, nil, c)
}

// update is Update, or UpdateAll when rows is nil.
func (s *Slots) update(slots, rows []int32, c *event.Columns) {
	p, nw, w := s.p, s.nw, s.w
	for i := range p.upd {
		op := &p.upd[i]
		if op.kind == aggCount {
			o := int(op.w)
			for _, sl := range slots {
				w[int(sl)*nw+o]++
			}
			continue
		}
		col := &c.Fields[op.field]
		if !col.Read {
			continue // null in every row
		}
		if rows == nil && col.Valid == nil {
			s.updateDense(slots, col, op)
			continue
		}
		rows := rows
		if rows == nil {
			rows = s.all(len(slots))
		}
		switch op.kind {
		case aggSumInt, aggAvgInt:
			// A 128-bit sum, low word then high (addInt128), its
			// column and null flags in registers.
			o, vals, valid := int(op.w), col.I, col.Valid
			for k, r := range rows {
				if valid == nil || valid[r] {
					x, j := vals[r], int(slots[k])*nw+o
					lo, carry := bits.Add64(w[j], uint64(x), 0)
					w[j] = lo
					w[j+1] += uint64(x>>63) + carry
				}
			}
		}
		if op.upd != statNone {
			s.stats(slots, rows, col, op)
		}
	}
}

// all returns the rows 0 … n-1.
func (s *Slots) all(n int) []int32 {
	for len(s.iota) < n {
		s.iota = append(s.iota, int32(len(s.iota)))
	}
	return s.iota[:n]
}

// updateDense is update's op over rows 0 … len(slots)-1 of a column
// without nulls: a loop per kind and extreme, no test per row but NaN.
func (s *Slots) updateDense(slots []int32, col *event.Column, op *aggOp) {
	nw, w := s.nw, s.w
	switch op.kind {
	case aggSumInt, aggAvgInt:
		o, vals := int(op.w), col.I[:len(slots)]
		for k, sl := range slots {
			x, j := vals[k], int(sl)*nw+o
			lo, carry := bits.Add64(w[j], uint64(x), 0)
			w[j] = lo
			w[j+1] += uint64(x>>63) + carry
		}
	}
	if op.upd == statNone {
		return
	}
	cnt, lo, hi := int(op.n), int(op.statMin), int(op.statMax)
	switch op.class {
	case classInt:
		vals := col.I[:len(slots)]
		switch {
		case lo >= 0 && hi >= 0:
			for k, sl := range slots {
				b, x := int(sl)*nw, vals[k]
				if x < int64(w[b+lo]) {
					w[b+lo] = uint64(x)
				}
				if x > int64(w[b+hi]) {
					w[b+hi] = uint64(x)
				}
				w[b+cnt]++
			}
		case lo >= 0:
			for k, sl := range slots {
				b, x := int(sl)*nw, vals[k]
				if x < int64(w[b+lo]) {
					w[b+lo] = uint64(x)
				}
				w[b+cnt]++
			}
		case hi >= 0:
			for k, sl := range slots {
				b, x := int(sl)*nw, vals[k]
				if x > int64(w[b+hi]) {
					w[b+hi] = uint64(x)
				}
				w[b+cnt]++
			}
		default:
			for _, sl := range slots {
				w[int(sl)*nw+cnt]++
			}
		}
	case classFloat:
		// NaN counts as null (value): skipped.
		vals := col.F[:len(slots)]
		switch {
		case lo >= 0 && hi >= 0:
			for k, sl := range slots {
				x := vals[k]
				if x != x {
					continue
				}
				b, bits := int(sl)*nw, math.Float64bits(x)
				key := floatKey(bits)
				if key < floatKey(w[b+lo]) {
					w[b+lo] = bits
				}
				if key > floatKey(w[b+hi]) {
					w[b+hi] = bits
				}
				w[b+cnt]++
			}
		case lo >= 0:
			for k, sl := range slots {
				x := vals[k]
				if x != x {
					continue
				}
				b, bits := int(sl)*nw, math.Float64bits(x)
				if floatKey(bits) < floatKey(w[b+lo]) {
					w[b+lo] = bits
				}
				w[b+cnt]++
			}
		case hi >= 0:
			for k, sl := range slots {
				x := vals[k]
				if x != x {
					continue
				}
				b, bits := int(sl)*nw, math.Float64bits(x)
				if floatKey(bits) > floatKey(w[b+hi]) {
					w[b+hi] = bits
				}
				w[b+cnt]++
			}
		default:
			for k, sl := range slots {
				if x := vals[k]; x == x {
					w[int(sl)*nw+cnt]++
				}
			}
		}
	default:
		// A string field's count.
		for _, sl := range slots {
			w[int(sl)*nw+cnt]++
		}
	}
}

// stats is statsColumn over slots.
func (s *Slots) stats(slots, rows []int32, col *event.Column, op *aggOp) {
	nw, w, valid := s.nw, s.w, col.Valid
	cnt, lo, hi := int(op.n), int(op.statMin), int(op.statMax)
	switch op.class {
	case classInt:
		vals := col.I
		for k, r := range rows {
			if valid == nil || valid[r] {
				b := int(slots[k]) * nw
				n, x := w[b+cnt], vals[r]
				if lo >= 0 && (n == 0 || x < int64(w[b+lo])) {
					w[b+lo] = uint64(x)
				}
				if hi >= 0 && (n == 0 || x > int64(w[b+hi])) {
					w[b+hi] = uint64(x)
				}
				w[b+cnt] = n + 1
			}
		}
	case classFloat:
		vals := col.F
		for k, r := range rows {
			if x := vals[r]; (valid == nil || valid[r]) && x == x {
				b := int(slots[k]) * nw
				n, bits := w[b+cnt], math.Float64bits(x)
				key := floatKey(bits)
				if lo >= 0 && (n == 0 || key < floatKey(w[b+lo])) {
					w[b+lo] = bits
				}
				if hi >= 0 && (n == 0 || key > floatKey(w[b+hi])) {
					w[b+hi] = bits
				}
				w[b+cnt] = n + 1
			}
		}
	default:
		// A string field's count (its extremes are strings: no Slots).
		for k, r := range rows {
			if valid == nil || valid[r] {
				w[int(slots[k])*nw+cnt]++
			}
		}
	}
}

// MergeInto merges slot i into dst, as Merge of a state holding the slot's
// rows would.
func (s *Slots) MergeInto(dst *State, i int) {
	s.view = State{p: s.p, b: unsafe.Pointer(&s.w[i*s.nw])}
	s.p.Merge(dst, &s.view)
	s.view.b = nil
}
