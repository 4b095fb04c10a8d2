package pipelines

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// aggKind is an aggregate specialised for its input type, so Update switches
// once per aggregate instead of once per aggregate and type.
type aggKind uint8

const (
	aggCount      aggKind = iota + 1 // count(): events
	aggCountField                    // count(f): non-null values
	aggSumInt
	aggSumFloat
	aggAvgInt
	aggAvgFloat
	aggMinInt
	aggMaxInt
	aggMinFloat
	aggMaxFloat
	aggMinString
	aggMaxString
	aggDistinct
	aggQuantile
	aggFirst
	aggLast
)

// valClass says which member of Value carries a field type.
type valClass uint8

const (
	classInt valClass = iota // long, int, bool, timestamp: Value.I
	classFloat
	classString
)

func classOf(t FieldType) valClass {
	switch t {
	case TypeDouble:
		return classFloat
	case TypeString:
		return classString
	}
	return classInt
}

// aggOp is one compiled aggregate: its kind and where its state lives inside
// a State. The slots it uses, by kind:
//
//	count, count(f)      w: n
//	sum (int)            w: lo, hi (128-bit)
//	sum (double)         f: exact sum
//	avg (int)            w: n, lo, hi
//	avg (double)         w: n; f: exact sum
//	min/max (int, dbl)   w: n, value (double as its bits)
//	min/max (string)     w: n; s: value
//	count_distinct       x: *distinct (nil until the first value)
//	quantile             x: *quantiles (nil until the first value)
//	first/last           w: n, time, value; s: id[, value when string]
type aggOp struct {
	kind  aggKind
	class valClass
	typ   FieldType // the input field's type
	field int       // index in the schema; -1 for count()
	q     float64
	w     int32
	s     int32
	f     int32
	x     int32
}

// State is the aggregate state of one (group key, window): every aggregate of
// its plan. It is created by Plan.NewState and changed only through its
// plan's methods; it is not safe for concurrent use. A State keeps copies of
// the strings it retains, so events and their buffers may be reused.
type State struct {
	p *Plan
	w []uint64
	s []string
	f []fsum
	x []any
}

// NewState returns the empty state of all the plan's aggregates.
func (p *Plan) NewState() *State {
	s := &State{p: p, w: make([]uint64, p.nw)}
	if p.ns > 0 {
		s.s = make([]string, p.ns)
	}
	if p.nf > 0 {
		s.f = make([]fsum, p.nf)
	}
	if p.nx > 0 {
		s.x = make([]any, p.nx)
	}
	return s
}

// value returns the event's non-null value of a field, or nil. NaN counts as
// null: no aggregate could order or sum it meaningfully.
func value(e *Event, field int, class valClass) *Value {
	if field >= len(e.Values) {
		return nil
	}
	v := &e.Values[field]
	if !v.Valid || (class == classFloat && v.F != v.F) {
		return nil
	}
	return v
}

// Update adds one event to the state. The caller has already checked Match
// and assigned the event to this state's key and window.
func (p *Plan) Update(s *State, e *Event) {
	for i := range p.aggs {
		op := &p.aggs[i]
		if op.kind == aggCount {
			s.w[op.w]++
			continue
		}
		v := value(e, op.field, op.class)
		if v == nil {
			continue
		}
		w := s.w[op.w:]
		switch op.kind {
		case aggCountField:
			w[0]++
		case aggSumInt:
			addInt128(w, v.I)
		case aggSumFloat:
			s.f[op.f].add(v.F)
		case aggAvgInt:
			w[0]++
			addInt128(w[1:], v.I)
		case aggAvgFloat:
			w[0]++
			s.f[op.f].add(v.F)
		case aggMinInt:
			if w[0] == 0 || v.I < int64(w[1]) {
				w[1] = uint64(v.I)
			}
			w[0]++
		case aggMaxInt:
			if w[0] == 0 || v.I > int64(w[1]) {
				w[1] = uint64(v.I)
			}
			w[0]++
		case aggMinFloat:
			if w[0] == 0 || floatLess(v.F, math.Float64frombits(w[1])) {
				w[1] = math.Float64bits(v.F)
			}
			w[0]++
		case aggMaxFloat:
			if w[0] == 0 || floatLess(math.Float64frombits(w[1]), v.F) {
				w[1] = math.Float64bits(v.F)
			}
			w[0]++
		case aggMinString:
			if w[0] == 0 || v.S < s.s[op.s] {
				s.s[op.s] = strings.Clone(v.S)
			}
			w[0]++
		case aggMaxString:
			if w[0] == 0 || v.S > s.s[op.s] {
				s.s[op.s] = strings.Clone(v.S)
			}
			w[0]++
		case aggDistinct:
			d, _ := s.x[op.x].(*distinct)
			if d == nil {
				d = new(distinct)
				s.x[op.x] = d
			}
			d.add(hashValue(op.typ, v))
		case aggQuantile:
			q, _ := s.x[op.x].(*quantiles)
			if q == nil {
				q = new(quantiles)
				s.x[op.x] = q
			}
			if op.class == classFloat {
				q.add(v.F)
			} else {
				q.add(float64(v.I))
			}
		case aggFirst, aggLast:
			updateFirstLast(s, op, e.Time, e.ID, v)
		}
	}
}

// updateFirstLast keeps the value of the event with the smallest (first) or
// largest (last) event time; equal times are ordered by event id, then by
// value, so the result never depends on arrival order or partitioning.
func updateFirstLast(s *State, op *aggOp, t int64, id string, v *Value) {
	w := s.w[op.w:]
	if w[0] > 0 {
		c := cmp.Compare(t, int64(w[1]))
		if c == 0 {
			c = strings.Compare(id, s.s[op.s])
		}
		if c == 0 {
			c = compareStored(op, v, w[2], s.s[op.s+1:])
		}
		if (op.kind == aggFirst && c >= 0) || (op.kind == aggLast && c <= 0) {
			w[0]++
			return
		}
	}
	w[0]++
	w[1] = uint64(t)
	s.s[op.s] = strings.Clone(id)
	switch op.class {
	case classInt:
		w[2] = uint64(v.I)
	case classFloat:
		w[2] = math.Float64bits(v.F)
	case classString:
		s.s[op.s+1] = strings.Clone(v.S)
	}
}

// compareStored compares v with the value stored in word w or strs[0].
func compareStored(op *aggOp, v *Value, w uint64, strs []string) int {
	switch op.class {
	case classInt:
		return cmp.Compare(v.I, int64(w))
	case classFloat:
		return compareFloat(v.F, math.Float64frombits(w))
	}
	return strings.Compare(v.S, strs[0])
}

// compareFloat is floatLess as a three-way comparison.
func compareFloat(a, b float64) int {
	switch {
	case floatLess(a, b):
		return -1
	case floatLess(b, a):
		return 1
	}
	return 0
}

// floatLess orders doubles with -0 before +0, so min and max pick the same
// zero whatever the order of the values. NaN never reaches it.
func floatLess(a, b float64) bool {
	return a < b || (a == b && math.Signbit(a) && !math.Signbit(b))
}

func addInt128(w []uint64, v int64) {
	lo := w[0] + uint64(v)
	carry := uint64(0)
	if lo < w[0] {
		carry = 1
	}
	w[0] = lo
	w[1] += uint64(v>>63) + carry
}

func addInt128Words(w []uint64, lo, hi uint64) {
	n := w[0] + lo
	carry := uint64(0)
	if n < w[0] {
		carry = 1
	}
	w[0] = n
	w[1] += hi + carry
}

// Merge adds src into dst. Both must come from this plan; src is unchanged
// and may be used again. Merging is associative and commutative: any
// grouping of partial states of the same events finalizes to the same values.
func (p *Plan) Merge(dst, src *State) {
	for i := range p.aggs {
		op := &p.aggs[i]
		w, o := dst.w[op.w:], src.w[op.w:]
		switch op.kind {
		case aggCount, aggCountField:
			w[0] += o[0]
		case aggSumInt:
			addInt128Words(w, o[0], o[1])
		case aggSumFloat:
			dst.f[op.f].merge(&src.f[op.f])
		case aggAvgInt:
			w[0] += o[0]
			addInt128Words(w[1:], o[1], o[2])
		case aggAvgFloat:
			w[0] += o[0]
			dst.f[op.f].merge(&src.f[op.f])
		case aggMinInt, aggMaxInt, aggMinFloat, aggMaxFloat:
			if o[0] == 0 {
				continue
			}
			take := w[0] == 0
			if !take {
				switch op.kind {
				case aggMinInt:
					take = int64(o[1]) < int64(w[1])
				case aggMaxInt:
					take = int64(o[1]) > int64(w[1])
				case aggMinFloat:
					take = floatLess(math.Float64frombits(o[1]), math.Float64frombits(w[1]))
				case aggMaxFloat:
					take = floatLess(math.Float64frombits(w[1]), math.Float64frombits(o[1]))
				}
			}
			if take {
				w[1] = o[1]
			}
			w[0] += o[0]
		case aggMinString, aggMaxString:
			if o[0] == 0 {
				continue
			}
			a, b := dst.s[op.s], src.s[op.s]
			if w[0] == 0 || (op.kind == aggMinString && b < a) || (op.kind == aggMaxString && b > a) {
				dst.s[op.s] = b
			}
			w[0] += o[0]
		case aggDistinct:
			od, _ := src.x[op.x].(*distinct)
			if od == nil {
				continue
			}
			d, _ := dst.x[op.x].(*distinct)
			if d == nil {
				d = new(distinct)
				dst.x[op.x] = d
			}
			d.merge(od)
		case aggQuantile:
			oq, _ := src.x[op.x].(*quantiles)
			if oq == nil {
				continue
			}
			q, _ := dst.x[op.x].(*quantiles)
			if q == nil {
				q = new(quantiles)
				dst.x[op.x] = q
			}
			q.merge(oq)
		case aggFirst, aggLast:
			if o[0] == 0 {
				continue
			}
			n := w[0]
			v := Value{Valid: true}
			switch op.class {
			case classInt:
				v.I = int64(o[2])
			case classFloat:
				v.F = math.Float64frombits(o[2])
			case classString:
				v.S = src.s[op.s+1]
			}
			// Strings in src are owned by src and immutable, so
			// updateFirstLast's copy is redundant here but harmless.
			updateFirstLast(dst, op, int64(o[1]), src.s[op.s], &v)
			w[0] = n + o[0]
		}
	}
}

// Finalize returns the aggregates' values in the view's order, typed as
// Columns says. The state is not changed. Semantics, identical in both layers:
//   - Null values (and NaN doubles) are skipped by every aggregate except
//     count(), which counts events; count(f) counts non-null values.
//   - Empty min, max, avg, first, last and quantile are null; empty count,
//     sum and count_distinct are 0.
//   - sum of long/int is exact in 128 bits and saturates at the int64 limits;
//     sum of double is the exact sum rounded once to the nearest double, so
//     it does not depend on order or partitioning; avg is that sum / count.
//   - min/max of double put -0 below +0; strings compare byte-wise.
//   - first/last take the value of the event with the smallest/largest event
//     time; ties go to the smaller/larger event id, then the smaller/larger
//     value, so arrival order never matters.
//   - count_distinct is exact up to 1024 distinct values (64-bit hashes),
//     then a HyperLogLog (p=14, standard error 0.8%).
//   - quantile(f, q) is the value at 0-based rank ⌊q·(n−1)⌋ of the sorted
//     values: exact up to 16 values, then within 1% (DDSketch).
func (p *Plan) Finalize(s *State) []Value {
	return p.AppendFinal(make([]Value, 0, len(p.aggs)), s)
}

// AppendFinal is Finalize appending to dst, for callers that reuse a buffer.
func (p *Plan) AppendFinal(dst []Value, s *State) []Value {
	for i := range p.aggs {
		op := &p.aggs[i]
		w := s.w[op.w:]
		var v Value
		switch op.kind {
		case aggCount, aggCountField:
			v = Value{I: int64(w[0]), Valid: true}
		case aggSumInt:
			v = Value{I: int128Clamp(w[0], w[1]), Valid: true}
		case aggSumFloat:
			v = Value{F: s.f[op.f].value(), Valid: true}
		case aggAvgInt:
			if w[0] > 0 {
				v = Value{F: int128Float(w[1], w[2]) / float64(w[0]), Valid: true}
			}
		case aggAvgFloat:
			if w[0] > 0 {
				v = Value{F: s.f[op.f].value() / float64(w[0]), Valid: true}
			}
		case aggMinInt, aggMaxInt:
			if w[0] > 0 {
				v = Value{I: int64(w[1]), Valid: true}
			}
		case aggMinFloat, aggMaxFloat:
			if w[0] > 0 {
				v = Value{F: math.Float64frombits(w[1]), Valid: true}
			}
		case aggMinString, aggMaxString:
			if w[0] > 0 {
				v = Value{S: s.s[op.s], Valid: true}
			}
		case aggDistinct:
			v = Value{Valid: true}
			if d, _ := s.x[op.x].(*distinct); d != nil {
				v.I = d.count()
			}
		case aggQuantile:
			if q, _ := s.x[op.x].(*quantiles); q != nil {
				v.F, v.Valid = q.quantile(op.q)
			}
		case aggFirst, aggLast:
			if w[0] > 0 {
				v.Valid = true
				switch op.class {
				case classInt:
					v.I = int64(w[2])
				case classFloat:
					v.F = math.Float64frombits(w[2])
				case classString:
					v.S = s.s[op.s+1]
				}
			}
		}
		dst = append(dst, v)
	}
	return dst
}

// int128Clamp returns a 128-bit sum as int64, saturated at the int64 limits.
func int128Clamp(lo, hi uint64) int64 {
	switch {
	case hi == uint64(int64(lo)>>63):
		return int64(lo)
	case int64(hi) < 0:
		return math.MinInt64
	}
	return math.MaxInt64
}

// int128Float converts a 128-bit integer to the nearest float64.
func int128Float(lo, hi uint64) float64 {
	if hi == uint64(int64(lo)>>63) {
		return float64(int64(lo))
	}
	return bigToFloat(int192ToBig([3]uint64{lo, hi, uint64(int64(hi) >> 63)}), 0)
}

// stateVersion is the first byte of a marshalled State. Bump it when the
// encoding or the value hashes change.
//
// Encoding, version 1: the version byte, the plan signature (8 bytes LE, a
// hash of the aggregates' kinds, input types and arguments), then per
// aggregate in view order (uv = uvarint, v = zig-zag varint, u64 = 8 bytes LE,
// str = uv length + bytes):
//
//	count, count(f)    uv n
//	sum (int)          uv lo, uv hi (128-bit two's complement)
//	sum (double)       exact sum: byte flags (1 +Inf, 2 -Inf, 4 big), v exp,
//	                   then 3 × u64 limbs, or byte sign+1, uv len, magnitude
//	avg (int)          uv n, uv lo, uv hi
//	avg (double)       uv n, exact sum
//	min/max            uv n, then if n > 0: u64 value (double as bits) or str
//	count_distinct     byte 0 (no values) or 1, then byte 0 + uv count +
//	                   sorted u64 hashes (XXH64, seed 0), or byte 1 + 16384
//	                   register bytes
//	quantile           byte 0 or 1, then uv n; if n > 0: u64 min, u64 max,
//	                   then n ≤ 16: n × u64 values; else uv zeros and per
//	                   store (positive, negative): v first index, uv buckets,
//	                   uv count each
//	first/last         uv n, then if n > 0: v time, str id, str or u64 value
const stateVersion = 1

// ErrStateMismatch is returned when a marshalled state was written by a plan
// with different aggregates.
var ErrStateMismatch = errors.New("state was written by a different view definition")

// MarshalBinary encodes the state for checkpoints and for shipping partial
// states between processes: a version byte, the plan's signature (so a state
// cannot be read into a plan with other aggregates), then each aggregate.
func (s *State) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(nil)
}

// AppendBinary is MarshalBinary appending to b.
func (s *State) AppendBinary(b []byte) ([]byte, error) {
	p := s.p
	b = append(b, stateVersion)
	b = binary.LittleEndian.AppendUint64(b, p.sig)
	for i := range p.aggs {
		op := &p.aggs[i]
		w := s.w[op.w:]
		switch op.kind {
		case aggCount, aggCountField:
			b = binary.AppendUvarint(b, w[0])
		case aggSumInt:
			b = binary.AppendUvarint(b, w[0])
			b = binary.AppendUvarint(b, w[1])
		case aggSumFloat:
			b = s.f[op.f].appendBinary(b)
		case aggAvgInt:
			b = binary.AppendUvarint(b, w[0])
			b = binary.AppendUvarint(b, w[1])
			b = binary.AppendUvarint(b, w[2])
		case aggAvgFloat:
			b = binary.AppendUvarint(b, w[0])
			b = s.f[op.f].appendBinary(b)
		case aggMinInt, aggMaxInt, aggMinFloat, aggMaxFloat:
			b = binary.AppendUvarint(b, w[0])
			if w[0] > 0 {
				b = binary.LittleEndian.AppendUint64(b, w[1])
			}
		case aggMinString, aggMaxString:
			b = binary.AppendUvarint(b, w[0])
			if w[0] > 0 {
				b = appendString(b, s.s[op.s])
			}
		case aggDistinct:
			d, _ := s.x[op.x].(*distinct)
			if d == nil {
				b = append(b, 0)
				continue
			}
			b = append(b, 1)
			b = d.appendBinary(b)
		case aggQuantile:
			q, _ := s.x[op.x].(*quantiles)
			if q == nil {
				b = append(b, 0)
				continue
			}
			b = append(b, 1)
			b = q.appendBinary(b)
		case aggFirst, aggLast:
			b = binary.AppendUvarint(b, w[0])
			if w[0] == 0 {
				continue
			}
			b = binary.AppendVarint(b, int64(w[1]))
			b = appendString(b, s.s[op.s])
			if op.class == classString {
				b = appendString(b, s.s[op.s+1])
			} else {
				b = binary.LittleEndian.AppendUint64(b, w[2])
			}
		}
	}
	return b, nil
}

// UnmarshalBinary replaces the state with a marshalled one written by a plan
// with the same aggregates (the state's own plan, from NewState).
func (s *State) UnmarshalBinary(data []byte) error {
	p := s.p
	if p == nil {
		return errors.New("unmarshal state: state has no plan; use Plan.NewState")
	}
	n := p.NewState()
	if err := n.read(data); err != nil {
		return fmt.Errorf("view %q: unmarshal state: %w", p.view, err)
	}
	*s = *n
	return nil
}

// UnmarshalState decodes a state written by State.MarshalBinary.
func (p *Plan) UnmarshalState(data []byte) (*State, error) {
	s := p.NewState()
	if err := s.read(data); err != nil {
		return nil, fmt.Errorf("view %q: unmarshal state: %w", p.view, err)
	}
	return s, nil
}

func (s *State) read(data []byte) error {
	p := s.p
	r := &reader{b: data}
	if v := r.byte(); r.err == nil && v != stateVersion {
		return fmt.Errorf("unsupported state version %d (this build reads %d)", v, stateVersion)
	}
	if sig := r.uint64(); r.err == nil && sig != p.sig {
		return ErrStateMismatch
	}
	for i := range p.aggs {
		if r.err != nil {
			break
		}
		op := &p.aggs[i]
		w := s.w[op.w:]
		switch op.kind {
		case aggCount, aggCountField:
			w[0] = r.uvarint()
		case aggSumInt:
			w[0], w[1] = r.uvarint(), r.uvarint()
		case aggSumFloat:
			if err := s.f[op.f].readBinary(r); err != nil {
				return err
			}
		case aggAvgInt:
			w[0], w[1], w[2] = r.uvarint(), r.uvarint(), r.uvarint()
		case aggAvgFloat:
			w[0] = r.uvarint()
			if err := s.f[op.f].readBinary(r); err != nil {
				return err
			}
		case aggMinInt, aggMaxInt, aggMinFloat, aggMaxFloat:
			if w[0] = r.uvarint(); w[0] > 0 {
				w[1] = r.uint64()
			}
		case aggMinString, aggMaxString:
			if w[0] = r.uvarint(); w[0] > 0 {
				s.s[op.s] = r.string()
			}
		case aggDistinct:
			if r.byte() == 1 {
				d := new(distinct)
				if err := d.readBinary(r); err != nil {
					return err
				}
				s.x[op.x] = d
			}
		case aggQuantile:
			if r.byte() == 1 {
				q := new(quantiles)
				if err := q.readBinary(r); err != nil {
					return err
				}
				s.x[op.x] = q
			}
		case aggFirst, aggLast:
			if w[0] = r.uvarint(); w[0] == 0 {
				continue
			}
			w[1] = uint64(r.varint())
			s.s[op.s] = r.string()
			if op.class == classString {
				s.s[op.s+1] = r.string()
			} else {
				w[2] = r.uint64()
			}
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes the state format. The first failure sticks in err, and
// every later read returns zero, so decoders check err once at the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShort
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uint64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	return string(r.bytes(int(r.uvarint())))
}
