package aggregate

// avg(f) is the exact sum of a numeric field divided by its count of
// non-null values.
var avgFunc = Func{
	Name:    "avg",
	Doc:     "avg(f): the mean of a numeric field, as a double",
	Args:    []Arg{{Name: "field", Kind: ArgField, Types: numeric}},
	Takes:   "one field",
	Example: "avg(cpu)",
	Result:  double,
	compile: func(b *Builder, op *aggOp) error {
		if err := b.needNumeric("avg", op); err != nil {
			return err
		}
		b.counted(op)
		if op.class == classFloat {
			op.kind = aggAvgFloat
			op.f = b.alloc(&b.s.layout.nf, 1)
		} else {
			op.kind = aggAvgInt
			op.w = b.alloc(&b.s.layout.nw, 2)
		}
		return nil
	},
}
