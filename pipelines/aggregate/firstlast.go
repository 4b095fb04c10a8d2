package aggregate

// first(f) and last(f) keep the value of the event with the smallest or
// largest event time; ties go by event id, then by value, so arrival order
// never matters.
var (
	firstFunc = Func{
		Name:       "first",
		Doc:        "first(f): the field's value in the earliest event (by event time, then id)",
		Args:       []Arg{anyField},
		Takes:      "one field",
		Example:    "first(host)",
		Result:     same,
		EventOrder: true,
		compile:    func(b *Builder, op *aggOp) error { return compileFirstLast(b, op, aggFirst) },
	}
	lastFunc = Func{
		Name:       "last",
		Doc:        "last(f): the field's value in the latest event (by event time, then id)",
		Args:       []Arg{anyField},
		Takes:      "one field",
		Example:    "last(host)",
		Result:     same,
		EventOrder: true,
		compile:    func(b *Builder, op *aggOp) error { return compileFirstLast(b, op, aggLast) },
	}
)

func compileFirstLast(b *Builder, op *aggOp, kind aggKind) error {
	op.kind = kind
	b.counted(op)
	l := &b.s.layout
	if op.class == classString {
		op.w = b.alloc(&l.nw, 1)
		op.s = b.allocStr(strPair)
	} else {
		op.w = b.alloc(&l.nw, 2)
		op.s = b.allocStr(strPlain)
	}
	return nil
}
