package aggregate

// count() counts events; count(f), which plans accept but the pipeline file
// does not offer, counts the non-null values of f.
var countFunc = Func{
	Name:    "count",
	Doc:     "count(): the number of events",
	Takes:   "no arguments",
	Example: "count()",
	Hint:    "use count_distinct(field) to count distinct values",
	Result:  long,
	compile: func(b *Builder, op *aggOp) error {
		if op.field < 0 {
			op.kind = aggCount
			op.w = b.alloc(&b.s.layout.nw, 1)
			return nil
		}
		op.kind = aggCountField
		b.counted(op)
		return nil
	},
}
