package aggregate

import "github.com/lambdaflow/lambdaflow/pipelines/event"

// sum(f) adds the values of a numeric field: exactly in 128 bits for long
// and int (saturating at the int64 limits), exactly rounded for double (see
// fsum).
var sumFunc = Func{
	Name:    "sum",
	Doc:     "sum(f): the sum of a numeric field; long for long and int fields, double for double",
	Args:    []Arg{{Name: "field", Kind: ArgField, Types: numeric}},
	Takes:   "one field",
	Example: "sum(bytes)",
	Result: func(f event.FieldType) event.FieldType {
		if f == event.TypeLong || f == event.TypeInt {
			return event.TypeLong
		}
		return event.TypeDouble
	},
	compile: func(b *Builder, op *aggOp) error {
		if err := b.needNumeric("sum", op); err != nil {
			return err
		}
		if op.class == classFloat {
			op.kind = aggSumFloat
			op.f = b.alloc(&b.s.layout.nf, 1)
			return nil
		}
		op.kind = aggSumInt
		op.w = b.alloc(&b.s.layout.nw, 2)
		return nil
	},
}
