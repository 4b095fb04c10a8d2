package aggregate

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strings"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Set is the compiled aggregates of one view: it creates their States and
// updates, merges, finalizes and encodes them. Merging is associative and
// commutative, so any grouping of partial states of the same events
// finalizes to the same values. A Set is immutable once built and safe for
// concurrent use; its States are not.
type Set struct {
	view   string // for messages
	schema event.Schema
	aggs   []aggOp
	upd    []aggOp     // the aggregates Update and Merge visit: see planUpdate
	stats  []fieldStat // per field: what its aggregates share
	layout stateLayout
	accFns []*Func // per accumulator slot, the function that makes it
	// custom: some aggregate is outside the built-ins (UpdateColumns then
	// goes event by event); rowStats: per field stats, whether an aggregate
	// with state of its own reads them (see UpdateColumns).
	custom   bool
	rowStats []bool
	sig      uint64
	sigText  strings.Builder // while building: what sig hashes
}

// Builder compiles the aggregates of one view into a Set, one call at a
// time, so that the caller can tell which call an error is about.
type Builder struct {
	s *Set
}

// NewBuilder starts the Set of a view over events of schema.
func NewBuilder(view string, schema event.Schema) *Builder {
	return &Builder{s: &Set{view: view, schema: schema}}
}

// Add compiles the call fn(field[, arg]) and returns the type of its output
// column. field is "" for a call without a field argument.
func (b *Builder) Add(fn, field string, arg float64) (event.FieldType, error) {
	f, ok := Lookup(fn)
	if !ok {
		return 0, fmt.Errorf("unknown function %q (want %s)", fn, namesOr(Names()))
	}
	op := aggOp{field: -1, q: arg, st: -1, n: -1, v: -1, w: -1, s: -1, f: -1, x: -1, mn: -1, mx: -1}
	if _, takesField := f.FieldArg(); takesField && field == "" {
		return 0, fmt.Errorf("%s() needs a field", fn)
	}
	if field != "" {
		op.field = b.s.schema.Index(field)
		if op.field < 0 {
			return 0, fmt.Errorf("unknown field %q", field)
		}
		op.typ = b.s.schema[op.field].Type
		op.class = classOf(op.typ)
	}
	var err error
	if f.compile != nil {
		err = f.compile(b, &op)
	} else {
		err = b.accumulator(f, &op)
	}
	if err != nil {
		return 0, err
	}
	b.s.aggs = append(b.s.aggs, op)
	fmt.Fprintf(&b.s.sigText, "%d:%d:%d:%x;", op.kind, op.typ, op.class, math.Float64bits(op.q))
	if op.kind == aggCustom {
		// Built-ins keep the signature of earlier builds; others add their
		// name, which their kind does not tell.
		fmt.Fprintf(&b.s.sigText, "%s;", f.Name)
	}
	return f.Result(op.typ), nil
}

// Build lays out the state block of the calls added. The Builder must not
// be used afterwards.
func (b *Builder) Build() (*Set, error) {
	s := b.s
	s.sig = signatureHash(s.sigText.String())
	s.sigText = strings.Builder{}
	s.planUpdate()
	s.planColumns()
	if err := s.buildLayout(); err != nil {
		return nil, err
	}
	return s, nil
}

// needNumeric refuses a field that is not long, int or double.
func (b *Builder) needNumeric(fn string, op *aggOp) error {
	if op.typ == event.TypeLong || op.typ == event.TypeInt || op.typ == event.TypeDouble {
		return nil
	}
	name := b.s.schema[op.field].Name
	return fmt.Errorf("%s(%s): field %q is %s; %s needs long, int or double", fn, name, name, op.typ, fn)
}

// counted makes op use its field's shared count of non-null values.
func (b *Builder) counted(op *aggOp) {
	op.st = int32(b.s.stat(op.field, op.class))
	op.n = b.s.stats[op.st].n
}

func (b *Builder) alloc(n *int, k int32) int32 { return b.s.alloc(n, k) }

func (b *Builder) statSlot(i int, isMin bool) int32 { return b.s.statSlot(i, isMin) }

func (b *Builder) allocStr(k strKind) int32 { return b.s.allocStr(k) }

// planUpdate lists the aggregates Update visits: those with state of their
// own (count(f), min and max have none beyond their field's stats). The last
// of them to read a field's stats updates them, after its own work, so every
// aggregate sees the stats as they were before the event; a field read only
// by count(f), min or max gets one of those for it.
func (p *Set) planUpdate() {
	for _, op := range p.aggs {
		switch op.kind {
		case aggCountField, aggMinInt, aggMaxInt, aggMinFloat, aggMaxFloat, aggMinString, aggMaxString:
		default:
			p.upd = append(p.upd, op)
		}
	}
	for st := range p.stats {
		last := -1
		for i, op := range p.upd {
			if op.st == int32(st) {
				last = i
			}
		}
		if last < 0 {
			for _, op := range p.aggs {
				if op.st == int32(st) {
					p.upd = append(p.upd, op)
					break
				}
			}
			last = len(p.upd) - 1
		}
		op, fs := &p.upd[last], &p.stats[st]
		op.statMin, op.statMax = fs.min, fs.max
		switch hasMin, hasMax := fs.min >= 0, fs.max >= 0; {
		case !hasMin && !hasMax:
			op.upd = statCount
		case fs.class == classString:
			op.upd = statString
		case fs.class == classInt:
			op.upd = pick(hasMin && hasMax, statMinMaxInt, pick(hasMin, statMinInt, statMaxInt))
		default:
			op.upd = pick(hasMin && hasMax, statMinMaxFloat, pick(hasMin, statMinFloat, statMaxFloat))
		}
	}
}

func pick[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

func (p *Set) alloc(n *int, k int32) int32 {
	at := int32(*n)
	*n += int(k)
	return at
}

// Len returns the number of aggregates.
func (p *Set) Len() int { return len(p.aggs) }

// signatureHash hashes the signature text of a Set's calls (see Add) into the
// signature every marshalled state carries. It is part of the state format,
// so it never changes: it is the string hash of state version 1, XXH64's
// short-input path over the whole text (XXH64 itself for texts under 32
// bytes), kept when version 2 moved value hashes to XXH64 so that states of
// both versions name the same plan alike.
func signatureHash(s string) uint64 {
	const (
		p1 = 0x9e3779b185ebca87
		p2 = 0xc2b2ae3d27d4eb4f
		p3 = 0x165667b19e3779f9
		p4 = 0x85ebca77c2b2ae63
		p5 = 0x27d4eb2f165667c5
	)
	h := p5 + uint64(len(s))
	for ; len(s) >= 8; s = s[8:] {
		k := binary.LittleEndian.Uint64([]byte(s[:8]))
		k *= p2
		k = bits.RotateLeft64(k, 31) * p1
		h ^= k
		h = bits.RotateLeft64(h, 27)*p1 + p4
	}
	if len(s) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32([]byte(s[:4]))) * p1
		h = bits.RotateLeft64(h, 23)*p2 + p3
		s = s[4:]
	}
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i]) * p5
		h = bits.RotateLeft64(h, 11) * p1
	}
	return hashMix(h)
}
