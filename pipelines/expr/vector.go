package expr

import (
	"github.com/expr-lang/expr/ast"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// A batch engine filters a columnar batch at once: Matcher.Filter. The
// native subset of expressions (see compileFast) is evaluated a column at a
// time into one verdict per row; rows where it meets a null it leaves to
// the VM, one event at a time, exactly as Match does.

// Verdicts of a vector predicate per row.
const (
	vFalse   uint8 = 0
	vTrue    uint8 = 1
	vUnknown uint8 = 2 // the VM decides (a null met where compileFast gives up)
)

// vecPred evaluates the native subset over rows of a batch: out[k] is the
// verdict on row rows[k]. sc lends buffers to subexpressions.
type vecPred func(c *event.Columns, rows []int32, out []uint8, sc *vecScratch)

// vecScratch is a stack of verdict buffers for the subexpressions of one
// evaluation.
type vecScratch struct {
	bufs  [][]uint8
	depth int
}

func (sc *vecScratch) push(n int) []uint8 {
	if sc.depth == len(sc.bufs) {
		sc.bufs = append(sc.bufs, nil)
	}
	b := sc.bufs[sc.depth]
	if cap(b) < n {
		b = make([]uint8, n)
		sc.bufs[sc.depth] = b
	}
	sc.depth++
	return b[:n]
}

func (sc *vecScratch) pop() { sc.depth-- }

// Filter appends to out the rows of rows (indices into c) that pass the
// expression and returns it; out may be rows[:0]. A row on which the
// expression fails (see Match) does not pass. c's fields that the
// expression reads must have been read.
func (m *Matcher) Filter(c *event.Columns, schema event.Schema, rows, out []int32) []int32 {
	if m.w == nil {
		return append(out, rows...)
	}
	if m.w.vec == nil {
		for _, r := range rows {
			if m.matchRow(c, schema, r) {
				out = append(out, r)
			}
		}
		return out
	}
	if cap(m.verdicts) < len(rows) {
		m.verdicts = make([]uint8, len(rows))
	}
	v := m.verdicts[:len(rows)]
	m.w.vec(c, rows, v, &m.scratch)
	// out may share rows' memory: it never gets ahead of the reading.
	for k := range v {
		r := rows[k]
		if v[k] == vTrue || v[k] == vUnknown && m.matchRow(c, schema, r) {
			out = append(out, r)
		}
	}
	return out
}

// matchRow runs the VM on row r.
func (m *Matcher) matchRow(c *event.Columns, schema event.Schema, r int32) bool {
	c.Event(int(r), schema, &m.row)
	ok, err := m.run(&m.row)
	return err == nil && ok
}

// compileVector is compileFast a column at a time: the same subset, the
// same verdicts. It returns nil where compileFast does.
func compileVector(n ast.Node, schema event.Schema) vecPred {
	switch n := n.(type) {
	case *ast.BoolNode:
		b := vFalse
		if n.Value {
			b = vTrue
		}
		return func(_ *event.Columns, _ []int32, out []uint8, _ *vecScratch) {
			for k := range out {
				out[k] = b
			}
		}
	case *ast.IdentifierNode:
		i := schema.Index(n.Value)
		if i < 0 || schema[i].Type != event.TypeBool || !schema[i].Required {
			return nil
		}
		return func(c *event.Columns, rows []int32, out []uint8, _ *vecScratch) {
			col := &c.Fields[i]
			for k, r := range rows {
				out[k] = vUnknown
				if !col.Null(int(r)) {
					out[k] = uint8(col.I[r] & 1)
				}
			}
		}
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil
		}
		x := compileVector(n.Node, schema)
		if x == nil {
			return nil
		}
		return func(c *event.Columns, rows []int32, out []uint8, sc *vecScratch) {
			x(c, rows, out, sc)
			for k, v := range out {
				if v != vUnknown {
					out[k] = v ^ 1
				}
			}
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			l, r := compileVector(n.Left, schema), compileVector(n.Right, schema)
			if l == nil || r == nil {
				return nil
			}
			// The left verdict decides unless it is the neutral one
			// (true for &&, false for ||): then the right one does.
			neutral := vTrue
			if n.Operator == "||" || n.Operator == "or" {
				neutral = vFalse
			}
			return func(c *event.Columns, rows []int32, out []uint8, sc *vecScratch) {
				l(c, rows, out, sc)
				rv := sc.push(len(rows))
				r(c, rows, rv, sc)
				for k, v := range out {
					if v == neutral {
						out[k] = rv[k]
					}
				}
				sc.pop()
			}
		}
		op, ok := parseCmpOp(n.Operator)
		if !ok {
			return nil
		}
		if id, ok := n.Left.(*ast.IdentifierNode); ok {
			return vectorCompare(id.Value, op, n.Right, schema)
		}
		if id, ok := n.Right.(*ast.IdentifierNode); ok {
			return vectorCompare(id.Value, op.flip(), n.Left, schema)
		}
	}
	return nil
}

// vectorCompare is compileCompare a column at a time.
func vectorCompare(name string, op cmpOp, lit ast.Node, schema event.Schema) vecPred {
	c, ok := parseCompare(name, op, lit, schema)
	if !ok {
		return nil
	}
	i := c.field
	switch c.kind {
	case cmpNull:
		isNull := op == opEq
		return func(cs *event.Columns, rows []int32, out []uint8, _ *vecScratch) {
			col := &cs.Fields[i]
			for k, r := range rows {
				out[k] = verdict(col.Null(int(r)) == isNull)
			}
		}
	case cmpString:
		return func(cs *event.Columns, rows []int32, out []uint8, sc *vecScratch) {
			col := &cs.Fields[i]
			if col.Idx != nil && len(col.Words) <= len(rows) {
				// Once per dictionary word, then a lookup per row.
				words := sc.push(len(col.Words))
				for w, x := range col.Words {
					words[w] = verdict(compareOp(op, x, c.s))
				}
				for k, r := range rows {
					out[k] = vUnknown
					if !col.Null(int(r)) {
						out[k] = words[col.Idx[r]]
					}
				}
				sc.pop()
				return
			}
			for k, r := range rows {
				out[k] = vUnknown
				if !col.Null(int(r)) {
					out[k] = verdict(compareOp(op, col.Str(int(r)), c.s))
				}
			}
		}
	case cmpBool:
		return compareInts(i, func(x int64) bool { return compareOp(op, x&1, c.n) })
	case cmpInt:
		return compareInts(i, func(x int64) bool { return compareOp(op, x, c.n) })
	case cmpIntFloat:
		return compareInts(i, func(x int64) bool { return compareOp(op, float64(x), c.f) })
	}
	// cmpDouble
	f := c.f
	return func(cs *event.Columns, rows []int32, out []uint8, _ *vecScratch) {
		col := &cs.Fields[i]
		if col.Valid == nil && col.Read {
			xs := col.F
			switch op { // the usual filters, without a call per row
			case opGe:
				for k, r := range rows {
					out[k] = verdict(xs[r] >= f)
				}
				return
			case opGt:
				for k, r := range rows {
					out[k] = verdict(xs[r] > f)
				}
				return
			}
		}
		for k, r := range rows {
			out[k] = vUnknown
			if !col.Null(int(r)) {
				out[k] = verdict(compareOp(op, col.F[r], f))
			}
		}
	}
}

// compareInts is a comparison of an integer column by cmp.
func compareInts(i int, cmp func(int64) bool) vecPred {
	return func(c *event.Columns, rows []int32, out []uint8, _ *vecScratch) {
		col := &c.Fields[i]
		for k, r := range rows {
			out[k] = vUnknown
			if !col.Null(int(r)) {
				out[k] = verdict(cmp(col.I[r]))
			}
		}
	}
}

func verdict(b bool) uint8 {
	if b {
		return vTrue
	}
	return vFalse
}
