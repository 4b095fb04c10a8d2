package aggregate

import (
	"fmt"
	"reflect"
	"strings"
	"unsafe"
)

// State is the aggregate state of one (group key, window): every aggregate of
// its plan. It is created by Plan.NewState and changed only through its
// plan's methods; it is not safe for concurrent use. A State keeps copies of
// the strings it retains, so events and their buffers may be reused.
//
// A State is a plan pointer and one heap block laid out by the plan (see
// stateLayout), so that a million open windows cost a million small blocks,
// not a handful of slices and boxed sketches each. Copying a State copies the
// reference: both copies share the block.
type State struct {
	p *Set
	b unsafe.Pointer // the block, of type Set.layout.typ
}

// stateLayout is the shape of a plan's state block: a struct made with
// reflect.StructOf once per plan, so that one allocation holds every
// aggregate and the garbage collector still sees exactly its pointers:
//
//	A [na]Accumulator the states of functions outside the built-ins
//	S [ns]string      min/max of string fields; first/last ids, or
//	                  id and value as one pair string (see makePair)
//	P                 the sketch pointers (below), or when there are two or
//	                  more, one pointer to them, nil until one is needed
//	F [nf]fsum        exact double sums
//	W [nw]uint64      counts, 128-bit sums, int/double min/max, times, hashes
//
// The sketch pointers, a struct of their own:
//
//	D [nd]*distinct   count_distinct past its one inline hash
//	Q [nq]*quantiles  quantile past its inline values (its min and max)
//
// Pointer fields come first so the collector scans only the front. Most
// states of a fine-grained view (one or two events per key and window) never
// need a sketch, so the pointers go behind one when that saves space.
type stateLayout struct {
	typ              reflect.Type
	ptrTyp           reflect.Type // the sketch pointers
	spill            bool         // P is a pointer to a ptrTyp
	offS, offP, offF uintptr
	offW, offD, offQ uintptr // offD, offQ: within the sketch pointers
	offA             uintptr
	ns, nd, nq, nf   int
	na               int
	nw               int
	strKind          []strKind // per S slot
}

// strKind says how an S slot holds its string.
type strKind uint8

const (
	strPlain strKind = iota // the string itself
	strPair                 // makePair(id, value) of a first/last
)

// fieldStat is what several aggregates of one field share: the count of its
// non-null values, which count(f), avg, min, max, quantile, first and last
// all need and always agree on, and its minimum and maximum, which min, max
// and quantile (of a double field) need. Update and Merge change them after
// every aggregate that reads them (see planUpdate), so an aggregate sees the
// stats as they were before the event or the merge.
type fieldStat struct {
	field    int
	class    valClass
	n        int32 // word
	min, max int32 // word (int, double) or S slot (string); -1 if not kept
}

// stat returns the index of the field's shared stats, adding them.
func (p *Set) stat(field int, class valClass) int {
	for i := range p.stats {
		if p.stats[i].field == field {
			return i
		}
	}
	p.stats = append(p.stats, fieldStat{field: field, class: class, n: p.alloc(&p.layout.nw, 1), min: -1, max: -1})
	return len(p.stats) - 1
}

// statSlot returns the word or S slot of a field's minimum (or maximum),
// adding it.
func (p *Set) statSlot(i int, isMin bool) int32 {
	st := &p.stats[i]
	at := &st.max
	if isMin {
		at = &st.min
	}
	if *at < 0 {
		if st.class == classString {
			*at = p.allocStr(strPlain)
		} else {
			*at = p.alloc(&p.layout.nw, 1)
		}
	}
	return *at
}

func (p *Set) allocStr(k strKind) int32 {
	p.layout.strKind = append(p.layout.strKind, k)
	return p.alloc(&p.layout.ns, 1)
}

// buildLayout makes the block type once the aggregates are compiled.
func (p *Set) buildLayout() error {
	l := &p.layout
	if max(l.nw, l.ns, l.nf, l.nd, l.nq, l.na) > maxSlots {
		return fmt.Errorf("%d aggregates need more state than a view may have", len(p.aggs))
	}
	var fields, ptrs []reflect.StructField
	add := func(fields *[]reflect.StructField, name string, n int, elem reflect.Type) {
		if n > 0 {
			*fields = append(*fields, reflect.StructField{Name: name, Type: reflect.ArrayOf(n, elem)})
		}
	}
	add(&ptrs, "D", l.nd, reflect.TypeFor[*distinct]())
	add(&ptrs, "Q", l.nq, reflect.TypeFor[*quantiles]())
	l.ptrTyp = reflect.StructOf(ptrs)
	l.spill = l.nd+l.nq > 1
	add(&fields, "A", l.na, reflect.TypeFor[Accumulator]())
	add(&fields, "S", l.ns, reflect.TypeFor[string]())
	switch {
	case l.spill:
		fields = append(fields, reflect.StructField{Name: "P", Type: reflect.TypeFor[unsafe.Pointer]()})
	case len(ptrs) > 0:
		fields = append(fields, reflect.StructField{Name: "P", Type: l.ptrTyp})
	}
	add(&fields, "F", l.nf, reflect.TypeFor[fsum]())
	add(&fields, "W", l.nw, reflect.TypeFor[uint64]())
	l.typ = reflect.StructOf(fields)
	offsets := map[string]*uintptr{"A": &l.offA, "S": &l.offS, "P": &l.offP, "F": &l.offF, "W": &l.offW, "D": &l.offD, "Q": &l.offQ}
	for _, t := range []reflect.Type{l.typ, l.ptrTyp} {
		for i := range t.NumField() {
			*offsets[t.Field(i).Name] = t.Field(i).Offset
		}
	}
	return nil
}

// NewState returns the empty state of all the plan's aggregates.
func (p *Set) NewState() *State {
	return &State{p: p, b: reflect.New(p.layout.typ).UnsafePointer()}
}

// The block's parts, as slices over it. A part the plan does not have has
// offset 0 and length 0, which is still a valid pointer into the block.
// Slicing an array pointer costs one comparison where unsafe.Slice checks
// for overflow; maxSlots bounds what Compile accepts.

const maxSlots = 1 << 20

func (p *Set) words(s *State) []uint64 {
	n := p.layout.nw
	return (*[maxSlots]uint64)(unsafe.Add(s.b, p.layout.offW))[:n:n]
}

func (p *Set) strs(s *State) []string {
	n := p.layout.ns
	return (*[maxSlots]string)(unsafe.Add(s.b, p.layout.offS))[:n:n]
}

func (p *Set) accs(s *State) []Accumulator {
	n := p.layout.na
	return (*[maxSlots]Accumulator)(unsafe.Add(s.b, p.layout.offA))[:n:n]
}

func (p *Set) fsums(s *State) []fsum {
	n := p.layout.nf
	return (*[maxSlots]fsum)(unsafe.Add(s.b, p.layout.offF))[:n:n]
}

// sketchPtrs returns the state's sketch pointers; nil if they spill and
// were never needed.
func (p *Set) sketchPtrs(s *State) unsafe.Pointer {
	b := unsafe.Add(s.b, p.layout.offP)
	if p.layout.spill {
		b = *(*unsafe.Pointer)(b)
	}
	return b
}

// sketchPtrsAlloc is sketchPtrs allocating them if needed.
func (p *Set) sketchPtrsAlloc(s *State) unsafe.Pointer {
	if b := p.sketchPtrs(s); b != nil {
		return b
	}
	b := reflect.New(p.layout.ptrTyp).UnsafePointer()
	*(*unsafe.Pointer)(unsafe.Add(s.b, p.layout.offP)) = b
	return b
}

const ptrSize = unsafe.Sizeof(unsafe.Pointer(nil))

// distinctSet returns count_distinct i's set, nil while it has at most one hash.
func (p *Set) distinctSet(s *State, i int32) *distinct {
	if b := p.sketchPtrs(s); b != nil {
		return *(**distinct)(unsafe.Add(b, p.layout.offD+uintptr(i)*ptrSize))
	}
	return nil
}

func (p *Set) setDistinctSet(s *State, i int32, d *distinct) {
	*(**distinct)(unsafe.Add(p.sketchPtrsAlloc(s), p.layout.offD+uintptr(i)*ptrSize)) = d
}

// quantileSet returns quantile i's spilled values, nil while they are inline.
func (p *Set) quantileSet(s *State, i int32) *quantiles {
	if b := p.sketchPtrs(s); b != nil {
		return *(**quantiles)(unsafe.Add(b, p.layout.offQ+uintptr(i)*ptrSize))
	}
	return nil
}

func (p *Set) setQuantileSet(s *State, i int32, q *quantiles) {
	*(**quantiles)(unsafe.Add(p.sketchPtrsAlloc(s), p.layout.offQ+uintptr(i)*ptrSize)) = q
}

// intern returns v as the state may keep it: a string the state already
// holds, or a part of one of its pairs, when equal (first, last, min and max
// of one event usually hold the same strings), else a copy.
func (p *Set) intern(strs []string, v string) string {
	if v == "" {
		return ""
	}
	for i, k := range p.layout.strKind {
		c := strs[i]
		if k == strPlain {
			if c == v {
				return c
			}
			continue
		}
		id, val := splitPair(c)
		if val == v {
			return val
		}
		if id == v {
			return id
		}
	}
	return strings.Clone(v)
}

// internPair is intern for a first/last pair.
func (p *Set) internPair(strs []string, id, val string) string {
	for i, k := range p.layout.strKind {
		if k == strPair {
			if sid, sval := splitPair(strs[i]); sid == id && sval == val && strs[i] != "" {
				return strs[i]
			}
		}
	}
	return makePair(id, val)
}

// makePair stores a first/last's event id and string value in one string,
// one string header and one allocation instead of two: a uvarint of the id's
// length × 2, plus 1 when the value equals the id, then the id and, unless
// equal, the value.
func makePair(id, val string) string {
	same := id == val
	n := uint(len(id)) << 1
	if same {
		n |= 1
		val = ""
	}
	var b strings.Builder
	b.Grow(uvarintLen(n) + len(id) + len(val))
	for ; n >= 0x80; n >>= 7 {
		b.WriteByte(byte(n) | 0x80)
	}
	b.WriteByte(byte(n))
	b.WriteString(id)
	b.WriteString(val)
	return b.String()
}

func uvarintLen(n uint) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

// splitPair undoes makePair; an unset slot ("") gives two empty strings.
func splitPair(c string) (id, val string) {
	var n uint
	i := 0
	for shift := uint(0); i < len(c) && shift < 64; shift += 7 {
		b := c[i]
		i++
		n |= uint(b&0x7f) << shift
		if b < 0x80 {
			break
		}
	}
	l := n >> 1
	if l > uint(len(c)-i) {
		return "", ""
	}
	id = c[i : i+int(l)]
	if n&1 != 0 {
		return id, id
	}
	return id, c[i+int(l):]
}
