package expr

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	exprlang "github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Error is a where expression that does not compile or type-check.
// Line and Col (1-based) locate the problem inside the expression.
type Error struct {
	Line, Col int
	Msg       string
	Snippet   string // the expression with a marker under the problem
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (at %d:%d in the expression)", e.Msg, e.Line, e.Col)
}

// CheckWhere type-checks a where expression against a schema without
// compiling it for matching, so validation can report it. It returns nil or
// an *Error.
func CheckWhere(where string, schema event.Schema) error {
	_, err := Compile(where, schema)
	return err
}

// Where is a compiled where expression. It is immutable and safe for
// concurrent use; its Matchers are not.
type Where struct {
	prog   *vm.Program
	fast   fastPred     // nil unless the expression is in the native subset
	vec    vecPred      // the same a column at a time (Matcher.Filter)
	fields []whereField // fields the expression reads
	pool   sync.Pool    // *Matcher for Match
}

type whereField struct {
	name  string
	field int
	typ   event.FieldType
}

// fieldRefs records the identifiers an expression uses, so that Match fills
// only those fields into the environment.
type fieldRefs map[string]bool

func (r fieldRefs) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		r[id.Value] = true
	}
}

// Compile type-checks src against schema and compiles it for matching. It
// returns an *Error when src does not compile or is not boolean.
func Compile(src string, schema event.Schema) (*Where, error) {
	types := make(map[string]any, len(schema))
	for _, f := range schema {
		types[f.Name] = exprType(f)
	}
	refs := fieldRefs{}
	prog, err := exprlang.Compile(src,
		exprlang.Env(types),
		exprlang.AsBool(),
		exprlang.DisableBuiltin("now"),
		exprlang.Timezone("UTC"),
		exprlang.Patch(refs),
	)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &Error{Line: fe.Line, Col: fe.Column + 1, Msg: exprTypeNames.Replace(fe.Message), Snippet: fe.Snippet}
		}
		return nil, &Error{Line: 1, Col: 1, Msg: exprTypeNames.Replace(err.Error())}
	}
	w := &Where{prog: prog, fast: compileFast(prog.Node(), schema), vec: compileVector(prog.Node(), schema)}
	for i, f := range schema {
		if refs[f.Name] {
			w.fields = append(w.fields, whereField{name: f.Name, field: i, typ: f.Type})
		}
	}
	w.pool.New = func() any { return w.NewMatcher() }
	return w, nil
}

// Fields returns the names of the schema fields the expression reads, in
// schema order. A reader of stored events needs to load only these.
func (w *Where) Fields() []string {
	out := make([]string, len(w.fields))
	for i, f := range w.fields {
		out[i] = f.name
	}
	return out
}

// exprTypeNames rewrites the checker's Go type names into the pipeline file's,
// so messages speak the user's language: "mismatched types double and string".
var exprTypeNames = strings.NewReplacer(
	"*float64", "optional double", "*int64", "optional long", "*string", "optional string",
	"*bool", "optional bool", "*time.Time", "optional timestamp",
	"float64", "double", "int64", "long", "time.Time", "timestamp",
)

// exprType is the value whose type the checker gives a field.
func exprType(f event.Field) any {
	var required, optional any
	switch f.Type {
	case event.TypeString:
		required, optional = "", (*string)(nil)
	case event.TypeDouble:
		required, optional = 0.0, (*float64)(nil)
	case event.TypeBool:
		required, optional = false, (*bool)(nil)
	case event.TypeTimestamp:
		required, optional = time.Time{}, (*time.Time)(nil)
	default:
		required, optional = int64(0), (*int64)(nil)
	}
	if f.Required {
		return required
	}
	return optional
}

// Matcher evaluates a where expression with its own VM and environment, so
// repeated calls allocate nothing for repeated values. It is not safe for
// concurrent use; use one per goroutine, or Where.Match.
type Matcher struct {
	w     *Where
	vm    vm.VM
	env   map[string]any
	last  []event.Value // the values boxed in env, to skip re-boxing repeats
	boxed []bool
	// Filter's buffers: verdicts per row, the subexpressions' and an
	// event for the rows the VM decides.
	verdicts []uint8
	scratch  vecScratch
	row      event.Event
}

// NewMatcher returns a Matcher for a goroutine that matches many events. A
// nil Where (no expression) gives a Matcher that matches everything.
func (w *Where) NewMatcher() *Matcher {
	m := &Matcher{w: w}
	if w != nil {
		m.env = make(map[string]any, len(w.fields))
		m.last = make([]event.Value, len(w.fields))
		m.boxed = make([]bool, len(w.fields))
		for _, f := range w.fields {
			m.env[f.name] = nil
		}
	}
	return m
}

// Match reports whether the event passes the expression. An error means the
// expression failed on this event, e.g. by comparing a missing optional
// field. Match is safe for concurrent use.
func (w *Where) Match(e *event.Event) (bool, error) {
	if w.fast != nil {
		if r, ok := w.fast(e.Values); ok {
			return r, nil
		}
	}
	m := w.pool.Get().(*Matcher)
	ok, err := m.run(e)
	w.pool.Put(m)
	return ok, err
}

// Match is Where.Match without the pool; true when there is no expression.
func (m *Matcher) Match(e *event.Event) (bool, error) {
	if m.w == nil {
		return true, nil
	}
	if m.w.fast != nil {
		if r, ok := m.w.fast(e.Values); ok {
			return r, nil
		}
	}
	return m.run(e)
}

// run evaluates the expression on the VM.
func (m *Matcher) run(e *event.Event) (bool, error) {
	for i, f := range m.w.fields {
		var v *event.Value
		if f.field < len(e.Values) && e.Values[f.field].Valid {
			v = &e.Values[f.field]
		}
		if v == nil {
			if m.boxed[i] || m.last[i].Valid {
				m.env[f.name] = nil
				m.last[i], m.boxed[i] = event.Value{}, false
			}
			continue
		}
		if m.boxed[i] && sameValue(f.typ, &m.last[i], v) {
			continue
		}
		m.env[f.name] = event.GoValue(f.typ, *v)
		m.last[i], m.boxed[i] = *v, true
	}
	out, err := m.vm.Run(m.w.prog, m.env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

func sameValue(t event.FieldType, a, b *event.Value) bool {
	switch t {
	case event.TypeString:
		return a.S == b.S
	case event.TypeDouble:
		return math.Float64bits(a.F) == math.Float64bits(b.F)
	}
	return a.I == b.I
}

// fastPred evaluates a where expression natively. ok is false when it meets
// what it leaves to the VM (a null compared with anything but nil), so that
// the VM gives the answer, or the error, it always gives.
type fastPred func(vs []event.Value) (result, ok bool)

type cmpOp uint8

const (
	opEq cmpOp = iota
	opNe
	opLt
	opLe
	opGt
	opGe
)

func parseCmpOp(s string) (op cmpOp, ok bool) {
	switch s {
	case "==":
		return opEq, true
	case "!=":
		return opNe, true
	case "<":
		return opLt, true
	case "<=":
		return opLe, true
	case ">":
		return opGt, true
	case ">=":
		return opGe, true
	}
	return 0, false
}

// flip is the operator with its operands swapped: 0 < x is x > 0.
func (op cmpOp) flip() cmpOp {
	switch op {
	case opLt:
		return opGt
	case opLe:
		return opGe
	case opGt:
		return opLt
	case opGe:
		return opLe
	}
	return op
}

// compileFast compiles the checked, optimised expression to native code when
// it only combines comparisons of a field with a literal by &&, || and !
// (the usual filter, e.g. `cpu >= 0 && region == "eu"`), which skips the VM's
// boxing and dispatch. It returns nil for anything else. Checking has already
// happened, so types match.
func compileFast(n ast.Node, schema event.Schema) fastPred {
	switch n := n.(type) {
	case *ast.BoolNode:
		b := n.Value
		return func([]event.Value) (bool, bool) { return b, true }
	case *ast.IdentifierNode:
		i := schema.Index(n.Value)
		if i < 0 || schema[i].Type != event.TypeBool || !schema[i].Required {
			return nil
		}
		return func(vs []event.Value) (bool, bool) {
			if i >= len(vs) || !vs[i].Valid {
				return false, false
			}
			return vs[i].I != 0, true
		}
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil
		}
		x := compileFast(n.Node, schema)
		if x == nil {
			return nil
		}
		return func(vs []event.Value) (bool, bool) {
			r, ok := x(vs)
			return !r, ok
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			l, r := compileFast(n.Left, schema), compileFast(n.Right, schema)
			if l == nil || r == nil {
				return nil
			}
			if n.Operator == "&&" || n.Operator == "and" {
				return func(vs []event.Value) (bool, bool) {
					if a, ok := l(vs); !ok || !a {
						return false, ok
					}
					return r(vs)
				}
			}
			return func(vs []event.Value) (bool, bool) {
				if a, ok := l(vs); !ok || a {
					return a, ok
				}
				return r(vs)
			}
		}
		op, ok := parseCmpOp(n.Operator)
		if !ok {
			return nil
		}
		if id, ok := n.Left.(*ast.IdentifierNode); ok {
			return compileCompare(id.Value, op, n.Right, schema)
		}
		if id, ok := n.Right.(*ast.IdentifierNode); ok {
			return compileCompare(id.Value, op.flip(), n.Left, schema)
		}
	}
	return nil
}

// literal returns the value of a literal node: int, float64, string, bool,
// or nil for the nil literal; ok is false for anything else.
func literal(n ast.Node) (v any, ok bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return n.Value, true
	case *ast.FloatNode:
		return n.Value, true
	case *ast.StringNode:
		return n.Value, true
	case *ast.BoolNode:
		return n.Value, true
	case *ast.NilNode:
		return nil, true
	case *ast.ConstantNode:
		switch c := n.Value.(type) {
		case int, float64, string, bool:
			return c, true
		}
	case *ast.UnaryNode:
		if n.Operator == "-" {
			switch x := n.Node.(type) {
			case *ast.IntegerNode:
				return -x.Value, true
			case *ast.FloatNode:
				return -x.Value, true
			}
		}
	}
	return nil, false
}

// cmpKind is what a comparison of a field with a literal compares.
type cmpKind uint8

const (
	cmpNull     cmpKind = iota + 1 // field == nil, field != nil
	cmpString                      // strings byte-wise
	cmpBool                        // bools, == and != only
	cmpDouble                      // a double field with a number
	cmpInt                         // an integer field with an integer
	cmpIntFloat                    // an integer field with a float, as floats
)

// cmpSpec is `field op literal` resolved against the schema, with expr's
// semantics: mixed int and float compare as floats, strings byte-wise, and
// nil equals only a null field. Both native forms (compileCompare, a row at
// a time, and vectorCompare) are built from it.
type cmpSpec struct {
	field int
	op    cmpOp
	kind  cmpKind
	s     string
	f     float64
	n     int64 // the integer, or the bool as 0 or 1
}

// parseCompare resolves a comparison; ok is false for anything outside the
// native subset.
func parseCompare(name string, op cmpOp, lit ast.Node, schema event.Schema) (c cmpSpec, ok bool) {
	i := schema.Index(name)
	v, ok := literal(lit)
	if i < 0 || !ok {
		return c, false
	}
	c = cmpSpec{field: i, op: op}
	if v == nil {
		c.kind = cmpNull
		return c, op == opEq || op == opNe
	}
	switch t := schema[i].Type; {
	case t == event.TypeString:
		c.kind, c.s, ok = cmpString, "", false
		if s, isStr := v.(string); isStr {
			c.s, ok = s, true
		}
		return c, ok
	case t == event.TypeBool:
		b, isBool := v.(bool)
		if !isBool || (op != opEq && op != opNe) {
			return c, false
		}
		c.kind = cmpBool
		if b {
			c.n = 1
		}
		return c, true
	case t == event.TypeDouble:
		c.kind = cmpDouble
		switch l := v.(type) {
		case int:
			c.f = float64(l)
		case float64:
			c.f = l
		default:
			return c, false
		}
		return c, true
	case t == event.TypeLong || t == event.TypeInt:
		switch l := v.(type) {
		case int:
			c.kind, c.n = cmpInt, int64(l)
			return c, true
		case float64:
			c.kind, c.f = cmpIntFloat, l
			return c, true
		}
	}
	return c, false
}

// compileCompare compiles `field op literal` for one row at a time.
func compileCompare(name string, op cmpOp, lit ast.Node, schema event.Schema) fastPred {
	c, ok := parseCompare(name, op, lit, schema)
	if !ok {
		return nil
	}
	i := c.field
	if c.kind == cmpNull {
		isNull := op == opEq
		return func(vs []event.Value) (bool, bool) {
			null := i >= len(vs) || !vs[i].Valid
			return null == isNull, true
		}
	}
	// get returns the field's value, or ok = false for a null, which the
	// VM handles.
	get := func(vs []event.Value) (*event.Value, bool) {
		if i >= len(vs) || !vs[i].Valid {
			return nil, false
		}
		return &vs[i], true
	}
	switch c.kind {
	case cmpString:
		return func(vs []event.Value) (bool, bool) {
			x, ok := get(vs)
			return ok && compareOp(op, x.S, c.s), ok
		}
	case cmpBool:
		return func(vs []event.Value) (bool, bool) {
			x, ok := get(vs)
			return ok && compareOp(op, x.I&1, c.n), ok
		}
	case cmpDouble:
		return func(vs []event.Value) (bool, bool) {
			x, ok := get(vs)
			return ok && compareOp(op, x.F, c.f), ok
		}
	case cmpInt:
		return func(vs []event.Value) (bool, bool) {
			x, ok := get(vs)
			return ok && compareOp(op, x.I, c.n), ok
		}
	default: // cmpIntFloat
		return func(vs []event.Value) (bool, bool) {
			x, ok := get(vs)
			return ok && compareOp(op, float64(x.I), c.f), ok
		}
	}
}

func compareOp[T int64 | float64 | string](op cmpOp, a, b T) bool {
	switch op {
	case opEq:
		return a == b
	case opNe:
		return a != b
	case opLt:
		return a < b
	case opLe:
		return a <= b
	case opGt:
		return a > b
	}
	return a >= b
}
