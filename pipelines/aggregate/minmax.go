package aggregate

// min(f) and max(f) keep a field's extremes, shared with the other
// aggregates of the field (see fieldStat). Plans also take string and bool
// fields; the pipeline file offers numbers and timestamps.
var (
	minFunc = Func{
		Name:    "min",
		Doc:     "min(f): the smallest value of a numeric or timestamp field",
		Args:    []Arg{{Name: "field", Kind: ArgField, Types: ordered}},
		Takes:   "one field",
		Example: "min(cpu)",
		Result:  same,
		compile: func(b *Builder, op *aggOp) error { return compileExtreme(b, op, true) },
	}
	maxFunc = Func{
		Name:    "max",
		Doc:     "max(f): the largest value of a numeric or timestamp field",
		Args:    []Arg{{Name: "field", Kind: ArgField, Types: ordered}},
		Takes:   "one field",
		Example: "max(cpu)",
		Result:  same,
		compile: func(b *Builder, op *aggOp) error { return compileExtreme(b, op, false) },
	}
)

func compileExtreme(b *Builder, op *aggOp, isMin bool) error {
	b.counted(op)
	op.v = b.statSlot(int(op.st), isMin)
	switch op.class {
	case classInt:
		op.kind = pick(isMin, aggMinInt, aggMaxInt)
	case classFloat:
		op.kind = pick(isMin, aggMinFloat, aggMaxFloat)
	case classString:
		op.kind = pick(isMin, aggMinString, aggMaxString)
	}
	return nil
}
