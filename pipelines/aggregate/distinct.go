package aggregate

// count_distinct(f) counts the distinct values of a field: exactly up to
// distinctExactMax 64-bit hashes, then with a HyperLogLog (see hll.go).
var countDistinctFunc = Func{
	Name:    "count_distinct",
	Doc:     "count_distinct(f): the number of distinct values of a field; exact up to 1024, then HyperLogLog (≤ 2% error)",
	Args:    []Arg{anyField},
	Takes:   "one field",
	Example: "count_distinct(host)",
	Result:  long,
	compile: func(b *Builder, op *aggOp) error {
		op.kind = aggDistinct
		op.w = b.alloc(&b.s.layout.nw, 1)
		op.x = b.alloc(&b.s.layout.nd, 1)
		return nil
	},
}
