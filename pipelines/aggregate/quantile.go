package aggregate

import "fmt"

// quantile(f, q) is the value at rank ⌊q·(n−1)⌋ of a numeric field's sorted
// values: exact for few values, then a DDSketch (see sketch.go).
var quantileFunc = Func{
	Name: "quantile",
	Doc:  "quantile(f, q): the q-quantile (0 < q < 1) of a numeric field; exact up to 16 values, then DDSketch (≤ 1% relative error)",
	Args: []Arg{
		{Name: "field", Kind: ArgField, Types: numeric},
		{Name: "q", Kind: ArgNumber, Check: func(q float64) string {
			if q > 0 && q < 1 {
				return ""
			}
			return "must be between 0 and 1 (exclusive)"
		}},
	},
	Takes:   "a field and q",
	Example: "quantile(cpu, 0.95)",
	Result:  double,
	compile: func(b *Builder, op *aggOp) error {
		if err := b.needNumeric("quantile", op); err != nil {
			return err
		}
		// Plans also take the bounds 0 and 1 (the minimum and maximum).
		if !(op.q >= 0 && op.q <= 1) {
			return fmt.Errorf("quantile(%s, %v): q must be between 0 and 1", b.s.schema[op.field].Name, op.q)
		}
		op.kind = aggQuantile
		b.counted(op)
		l := &b.s.layout
		if op.class == classFloat {
			op.mn = b.statSlot(int(op.st), true)
			op.mx = b.statSlot(int(op.st), false)
		} else {
			// The field's min and max are integers; the quantile's are
			// doubles, kept apart.
			op.ownMinMax = true
			op.mn = b.alloc(&l.nw, 2)
			op.mx = op.mn + 1
		}
		op.x = b.alloc(&l.nq, 1)
		return nil
	},
}
