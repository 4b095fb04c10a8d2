package aggregate

import (
	"encoding"
	"fmt"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Accumulator is the state of one aggregate call in one window, for
// functions outside the built-ins: a Func with New instead of a fused
// layout. The Set keeps one per state and call, created on first use, so a
// new aggregate needs only its own file and a registry line.
//
// The Set calls its methods from one goroutine at a time. It never shares
// an Accumulator between states: Merge's src is left unchanged and may be
// merged again, and an Accumulator must copy the strings it keeps, since
// events and their buffers are reused.
type Accumulator interface {
	// Add counts one event in. v is the event's value of the call's field,
	// never null (nor NaN for a double): such functions take a field.
	Add(v *event.Value, e *event.Event)
	// Merge adds src, an Accumulator of the same call, into this one.
	// Merging must be associative and commutative.
	Merge(src Accumulator)
	// Result is the output value, of the function's Result type.
	Result() event.Value
	// AppendBinary and UnmarshalBinary encode the state for checkpoints; the
	// Set frames the bytes, so they need not say their own length.
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

// accumulator lays out a call of a function outside the built-ins.
func (b *Builder) accumulator(f *Func, op *aggOp) error {
	if f.New == nil {
		return fmt.Errorf("%s has no implementation", f.Name)
	}
	if op.field < 0 {
		return fmt.Errorf("%s() needs a field", f.Name)
	}
	if arg, _ := f.FieldArg(); !arg.Types.Has(op.typ) {
		name := b.s.schema[op.field].Name
		return fmt.Errorf("%s(%s): field %q is %s; %s needs %s", f.Name, name, name, op.typ, f.Name, arg.Types.Desc)
	}
	op.kind = aggCustom
	op.x = int32(len(b.s.accFns))
	b.s.accFns = append(b.s.accFns, f)
	b.s.layout.na++
	return nil
}

// acc returns the call's accumulator in s, making it when create is true;
// otherwise nil when the call has not seen a value yet.
func (p *Set) acc(s *State, op *aggOp, create bool) Accumulator {
	accs := p.accs(s)
	a := accs[op.x]
	if a == nil && create {
		a = p.accFns[op.x].New(op.typ, op.q)
		accs[op.x] = a
	}
	return a
}

func (p *Set) mergeAcc(dst, src *State, op *aggOp) {
	if o := p.acc(src, op, false); o != nil {
		p.acc(dst, op, true).Merge(o)
	}
}

func (p *Set) finalAcc(s *State, op *aggOp) event.Value {
	if a := p.acc(s, op, false); a != nil {
		return a.Result()
	}
	return p.accFns[op.x].New(op.typ, op.q).Result()
}

// appendAcc encodes the call's state: byte 0 when it has seen nothing, else
// byte 1, uvarint length and the Accumulator's bytes.
func (p *Set) appendAcc(b []byte, s *State, op *aggOp) ([]byte, error) {
	a := p.acc(s, op, false)
	if a == nil {
		return append(b, 0), nil
	}
	body, err := a.AppendBinary(nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.accFns[op.x].Name, err)
	}
	b = append(b, 1)
	return binfmt.AppendBytes(b, body), nil
}

func (p *Set) readAcc(r *binfmt.Reader, s *State, op *aggOp) error {
	if r.Byte() != 1 {
		return nil
	}
	body := r.LenBytes()
	if r.Failed() {
		return nil // reported by the caller
	}
	a := p.accFns[op.x].New(op.typ, op.q)
	if err := a.UnmarshalBinary(body); err != nil {
		return fmt.Errorf("%s: %w", p.accFns[op.x].Name, err)
	}
	p.accs(s)[op.x] = a
	return nil
}
