package aggregate

import (
	"strings"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// funcs is the registry: every aggregate function, in the order messages
// and docs list them. Loading, validation, the JSON Schema, plans and both
// layers learn what an aggregate is from here and nowhere else.
//
// A new aggregate is one file in this package that declares its Func (with
// New for its Accumulator, see accumulator.go) and one line in this table.
var funcs = []*Func{
	&countFunc,
	&sumFunc,
	&minFunc,
	&maxFunc,
	&avgFunc,
	&countDistinctFunc,
	&quantileFunc,
	&firstFunc,
	&lastFunc,
}

// Func describes one aggregate function: how a pipeline file calls it, what
// it accepts and returns, and how a plan computes it. A Func is immutable.
type Func struct {
	Name string
	// Doc says in one line what the function computes, for the JSON Schema
	// and the docs.
	Doc string
	// Args are the arguments of a call, in order. A call has at most one
	// field argument, first, and one number argument.
	Args []Arg
	// Takes describes Args in messages about a wrong number of arguments,
	// e.g. "one field" or "a field and q".
	Takes string
	// Example is a call, for messages and docs, e.g. "sum(bytes)".
	Example string
	// Hint is advice added to a message about a wrong number of arguments.
	Hint string
	// Result is the type of the output column given the type of the field
	// argument (0 for a function without one).
	Result func(field event.FieldType) event.FieldType
	// EventOrder is true when the result depends on the events' times and
	// ids (first, last), so a reader of stored events must supply them.
	EventOrder bool

	// compile lays out a built-in aggregate in the fused state block (see
	// compile.go). Functions outside the built-ins leave it nil and set New.
	compile func(b *Builder, op *aggOp) error
	// New returns an empty Accumulator of a call with a field of type field
	// and the number argument arg (0 without one).
	New func(field event.FieldType, arg float64) Accumulator
}

// ArgKind is what an argument of a call is.
type ArgKind uint8

// Argument kinds.
const (
	ArgField  ArgKind = iota + 1 // a field of the view's topic
	ArgNumber                    // a number literal
)

// Arg is one argument of an aggregate call.
type Arg struct {
	Name string // as messages call it: "field", "q"
	Kind ArgKind
	// Types are the field types an ArgField accepts; the zero value accepts
	// every type.
	Types Types
	// Check says what is wrong with an ArgNumber's value (e.g. "must be
	// between 0 and 1 (exclusive)"), or "" when it is fine. Nil accepts any
	// number.
	Check func(x float64) string
}

// Types is a set of field types with the phrase messages use for it.
type Types struct {
	set  uint16
	Desc string // e.g. "a numeric field (long, int or double)"
}

// TypesOf returns the set of the given types, described by desc.
func TypesOf(desc string, ts ...event.FieldType) Types {
	s := Types{Desc: desc}
	for _, t := range ts {
		s.set |= 1 << t
	}
	return s
}

// Has reports whether t is in the set; the empty set has every type.
func (s Types) Has(t event.FieldType) bool {
	return s.set == 0 || s.set&(1<<t) != 0
}

// The classes of field the built-in functions accept.
var (
	numeric = TypesOf("a numeric field (long, int or double)", event.TypeLong, event.TypeInt, event.TypeDouble)
	ordered = TypesOf("a numeric or timestamp field", event.TypeLong, event.TypeInt, event.TypeDouble, event.TypeTimestamp)
)

// Lookup returns the named function.
func Lookup(name string) (*Func, bool) {
	for _, f := range funcs {
		if f.Name == name {
			return f, true
		}
	}
	return nil, false
}

// Funcs returns every function in registry order.
func Funcs() []*Func {
	return append([]*Func(nil), funcs...)
}

// Names returns the names of every function in registry order.
func Names() []string {
	out := make([]string, len(funcs))
	for i, f := range funcs {
		out[i] = f.Name
	}
	return out
}

// FieldArg returns the function's field argument, if it has one.
func (f *Func) FieldArg() (Arg, bool) {
	for _, a := range f.Args {
		if a.Kind == ArgField {
			return a, true
		}
	}
	return Arg{}, false
}

// NumberArg returns the function's number argument, if it has one.
func (f *Func) NumberArg() (Arg, bool) {
	for _, a := range f.Args {
		if a.Kind == ArgNumber {
			return a, true
		}
	}
	return Arg{}, false
}

// namesOr lists names as "a, b or c", for messages.
func namesOr(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// same returns the field's own type: min, max, first and last keep it.
func same(field event.FieldType) event.FieldType { return field }

// long and double are the result types of functions whose output type does
// not depend on their input.
func long(event.FieldType) event.FieldType   { return event.TypeLong }
func double(event.FieldType) event.FieldType { return event.TypeDouble }

// anyField is the usual field argument, of any type.
var anyField = Arg{Name: "field", Kind: ArgField}
