package aggregate

import (
	"errors"
	"fmt"
	"math"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
)

// StateVersion is the first byte of a marshalled State. Bump it when the
// encoding or the value hashes change.
//
// Encoding, version 2: the version byte, the plan signature (8 bytes LE, a
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
//	                   sorted u64 value hashes, or byte 1 + 16384 register
//	                   bytes (HyperLogLog, p = 14); a value's hash is XXH64
//	                   (seed 0) of a string's bytes, or XXH64's avalanche of
//	                   the 64 bits of a number (two's complement; a double's
//	                   IEEE bits with -0 as 0 and one NaN), see hashValue
//	quantile           byte 0 or 1, then uv n; if n > 0: u64 min, u64 max,
//	                   then n ≤ 16: n × u64 values (in any order); else uv
//	                   zeros and per store (positive, negative): v first
//	                   index, uv buckets, uv count each
//	first/last         uv n, then if n > 0: v time, str id, str or u64 value
//	others             byte 0 (no values) or 1, then str: the bytes of the
//	                   function's Accumulator (see accumulator.go)
//
// Aggregates of one field repeat its count (and min and max its extremes);
// a reader checks that the counts agree. Since heads order -0 below +0, a
// quantile's min and max may differ in the sign of a zero from those written
// by earlier builds; while its values are exact they are recomputed from them.
//
// Version 1 is version 2 with another string hash: XXH64's short-input path
// over the whole string, which is XXH64 only for strings under 32 bytes.
// Version 1 states are read as they are (the hashes of their sets and
// registers cannot be recomputed without the values). So a count_distinct of
// a string field in a state written by version 1 counts a value of 32 bytes
// or more twice if the same value comes again after the upgrade: once under
// each hash. Shorter strings and numbers hash as before and are unaffected.
// Only the speed layer persists states, in checkpoints of open windows, so
// the overcount is confined to windows open at the upgrade (at most one per
// such value in the exact set; in a HyperLogLog, at most one register raised
// by one value's second hash), and the next batch run recomputes those windows
// from the lake with the new hash.
const StateVersion = 2

// stateVersion1 states are read as version 2; see StateVersion.
const stateVersion1 = 1

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
	w, strs := p.words(s), p.strs(s)
	b = append(b, StateVersion)
	b = binfmt.AppendUint64(b, p.sig)
	for i := range p.aggs {
		op := &p.aggs[i]
		switch op.kind {
		case aggCount:
			b = binfmt.AppendUvarint(b, w[op.w])
		case aggCountField:
			b = binfmt.AppendUvarint(b, w[op.n])
		case aggSumInt:
			b = binfmt.AppendUvarint(b, w[op.w])
			b = binfmt.AppendUvarint(b, w[op.w+1])
		case aggSumFloat:
			b = p.fsums(s)[op.f].appendBinary(b)
		case aggAvgInt:
			b = binfmt.AppendUvarint(b, w[op.n])
			b = binfmt.AppendUvarint(b, w[op.w])
			b = binfmt.AppendUvarint(b, w[op.w+1])
		case aggAvgFloat:
			b = binfmt.AppendUvarint(b, w[op.n])
			b = p.fsums(s)[op.f].appendBinary(b)
		case aggMinInt, aggMaxInt, aggMinFloat, aggMaxFloat:
			b = binfmt.AppendUvarint(b, w[op.n])
			if w[op.n] > 0 {
				b = binfmt.AppendUint64(b, w[op.v])
			}
		case aggMinString, aggMaxString:
			b = binfmt.AppendUvarint(b, w[op.n])
			if w[op.n] > 0 {
				b = binfmt.AppendString(b, strs[op.v])
			}
		case aggDistinct:
			d := p.distinctSet(s, op.x)
			switch {
			case d != nil:
				b = append(b, 1)
				b = d.appendBinary(b)
			case w[op.w] != 0:
				b = append(b, 1, 0, 1)
				b = binfmt.AppendUint64(b, w[op.w])
			default:
				b = append(b, 0)
			}
		case aggQuantile:
			h := quantileHead(w, op)
			if h.n == 0 {
				b = append(b, 0)
				continue
			}
			b = append(b, 1)
			b = qAppendBinary(b, p.quantileSet(s, op.x), h)
		case aggFirst, aggLast:
			b = binfmt.AppendUvarint(b, w[op.n])
			if w[op.n] == 0 {
				continue
			}
			b = binfmt.AppendVarint(b, int64(w[op.w]))
			id, val := storedIDValue(op, strs)
			b = binfmt.AppendString(b, id)
			if op.class == classString {
				b = binfmt.AppendString(b, val)
			} else {
				b = binfmt.AppendUint64(b, w[op.w+1])
			}
		case aggCustom:
			var err error
			if b, err = p.appendAcc(b, s, op); err != nil {
				return nil, err
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
		return errors.New("unmarshal state: state has no plan; use Set.NewState")
	}
	n := p.NewState()
	if err := n.read(data); err != nil {
		return fmt.Errorf("view %q: unmarshal state: %w", p.view, err)
	}
	*s = *n
	return nil
}

// UnmarshalState decodes a state written by State.MarshalBinary.
func (p *Set) UnmarshalState(data []byte) (*State, error) {
	s := p.NewState()
	if err := s.read(data); err != nil {
		return nil, fmt.Errorf("view %q: unmarshal state: %w", p.view, err)
	}
	return s, nil
}

// statReader fills the shared field stats from the aggregates that repeat
// them: the first sets a count and the others must agree; extremes combine.
type statReader struct {
	p    *Set
	w    []uint64
	strs []string
	seen []bool // per stat: count, min, max
}

func (d *statReader) count(st int32, n uint64) error {
	s := &d.p.stats[st]
	if !d.seen[3*st] {
		d.seen[3*st] = true
		d.w[s.n] = n
		return nil
	}
	if d.w[s.n] != n {
		return fmt.Errorf("aggregates of field %q disagree on its count (%d, %d)", d.p.schema[s.field].Name, d.w[s.n], n)
	}
	return nil
}

// extreme combines a min (or max) word read for stat st.
func (d *statReader) extreme(st int32, isMin bool, v uint64) {
	s := &d.p.stats[st]
	at, k := s.max, 3*st+2
	if isMin {
		at, k = s.min, 3*st+1
	}
	old := d.w[at]
	if d.seen[k] {
		less := int64(v) < int64(old)
		if s.class == classFloat {
			less = floatLess(math.Float64frombits(v), math.Float64frombits(old))
		}
		if less != isMin {
			return
		}
	}
	d.seen[k] = true
	d.w[at] = v
}

// extremeStr is extreme for a string field.
func (d *statReader) extremeStr(st int32, isMin bool, v string) {
	s := &d.p.stats[st]
	at, k := s.max, 3*st+2
	if isMin {
		at, k = s.min, 3*st+1
	}
	if d.seen[k] && (v < d.strs[at]) != isMin {
		return
	}
	d.seen[k] = true
	d.strs[at] = d.p.intern(d.strs, v)
}

func isMinKind(k aggKind) bool {
	return k == aggMinInt || k == aggMinFloat || k == aggMinString
}

func (s *State) read(data []byte) error {
	p := s.p
	r := binfmt.NewReader(data, nil)
	if v := r.Byte(); !r.Failed() && v != StateVersion && v != stateVersion1 {
		return fmt.Errorf("unsupported state version %d (this build reads %d and %d)", v, stateVersion1, StateVersion)
	}
	if sig := r.Uint64(); !r.Failed() && sig != p.sig {
		return ErrStateMismatch
	}
	var seen [48]bool
	d := statReader{p: p, w: p.words(s), strs: p.strs(s), seen: seen[:0]}
	if k := 3 * len(p.stats); k <= len(seen) {
		d.seen = seen[:k]
	} else {
		d.seen = make([]bool, k)
	}
	w, strs := d.w, d.strs
	for i := range p.aggs {
		if r.Failed() {
			break
		}
		op := &p.aggs[i]
		var err error
		switch op.kind {
		case aggCount:
			w[op.w] = r.Uvarint()
		case aggCountField:
			err = d.count(op.st, r.Uvarint())
		case aggSumInt:
			w[op.w], w[op.w+1] = r.Uvarint(), r.Uvarint()
		case aggSumFloat:
			err = p.fsums(s)[op.f].readBinary(&r)
		case aggAvgInt:
			err = d.count(op.st, r.Uvarint())
			w[op.w], w[op.w+1] = r.Uvarint(), r.Uvarint()
		case aggAvgFloat:
			if err = d.count(op.st, r.Uvarint()); err == nil {
				err = p.fsums(s)[op.f].readBinary(&r)
			}
		case aggMinInt, aggMaxInt, aggMinFloat, aggMaxFloat:
			n := r.Uvarint()
			if err = d.count(op.st, n); err == nil && n > 0 {
				d.extreme(op.st, isMinKind(op.kind), r.Uint64())
			}
		case aggMinString, aggMaxString:
			n := r.Uvarint()
			if err = d.count(op.st, n); err == nil && n > 0 {
				d.extremeStr(op.st, isMinKind(op.kind), r.LenStringView())
			}
		case aggDistinct:
			if r.Byte() != 1 {
				continue
			}
			dd := new(distinct)
			if err = dd.readBinary(&r); err != nil {
				break
			}
			if dd.reg == nil && dd.n <= 1 {
				for _, h := range dd.set {
					w[op.w] |= h // the one non-zero slot, if any
				}
				continue
			}
			p.setDistinctSet(s, op.x, dd)
		case aggQuantile:
			var q *quantiles
			var h qhead
			if r.Byte() == 1 {
				if q, h, err = qReadBinary(&r); err != nil {
					break
				}
			}
			if err = d.count(op.st, h.n); err != nil || h.n == 0 {
				break
			}
			if op.ownMinMax {
				w[op.mn], w[op.mx] = math.Float64bits(h.min), math.Float64bits(h.max)
			} else {
				d.extreme(op.st, true, math.Float64bits(h.min))
				d.extreme(op.st, false, math.Float64bits(h.max))
			}
			if q != nil {
				p.setQuantileSet(s, op.x, q)
			}
		case aggFirst, aggLast:
			n := r.Uvarint()
			if err = d.count(op.st, n); err != nil || n == 0 {
				break
			}
			w[op.w] = uint64(r.Varint())
			id := r.LenStringView()
			if op.class == classString {
				strs[op.s] = p.internPair(strs, id, r.LenStringView())
			} else {
				w[op.w+1] = r.Uint64()
				strs[op.s] = p.intern(strs, id)
			}
		case aggCustom:
			err = p.readAcc(&r, s, op)
		}
		if err != nil {
			return err
		}
	}
	if r.Failed() {
		return r.Err()
	}
	if n := r.Remaining(); n != 0 {
		return fmt.Errorf("%d trailing bytes at byte %d", n, r.Offset())
	}
	return nil
}
