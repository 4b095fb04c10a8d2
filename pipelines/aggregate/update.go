package aggregate

import (
	"cmp"
	"math"
	"strings"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
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
	aggCustom // a function outside the built-ins, through its Accumulator
)

// valClass says which member of Value carries a field type.
type valClass uint8

const (
	classInt valClass = iota // long, int, bool, timestamp: Value.I
	classFloat
	classString
)

func classOf(t event.FieldType) valClass {
	switch t {
	case event.TypeDouble:
		return classFloat
	case event.TypeString:
		return classString
	}
	return classInt
}

// aggOp is one compiled aggregate: its kind and where its state lives inside
// a State's block (see stateLayout). The slots it uses, by kind ("count" is
// the field's count of non-null values and "min"/"max" its extremes, shared
// through the field's fieldStat):
//
//	count()              w: n
//	count(f)             count
//	sum (int)            w: lo, hi (128-bit)
//	sum (double)         f: exact sum
//	avg (int)            count; w: lo, hi
//	avg (double)         count; f: exact sum
//	min/max              count; v: min or max (a word, an S slot for strings)
//	count_distinct       w: the one hash seen so far (0: none); x: D slot,
//	                     the set once there are two
//	quantile             count; mn, mx: words of its min and max (the
//	                     field's min and max for doubles, own words holding
//	                     doubles otherwise); x: Q slot, nil up to qInline values
//	first/last           count; w: time[, value]; s: the id, or for strings
//	                     makePair(id, value)
type aggOp struct {
	kind      aggKind
	class     valClass
	typ       event.FieldType // the input field's type
	field     int             // index in the schema; -1 for count()
	q         float64
	st        int32 // index in Set.stats; -1 for count(), sum, count_distinct
	n         int32 // word: the field's count
	v         int32
	w         int32
	s         int32
	f         int32
	x         int32
	mn, mx    int32
	ownMinMax bool // quantile of a non-double field: mn, mx are its own
	// upd: what Update then does to the field's stats (statNone if another
	// op does it), whose min and max slots (or -1) are copied here.
	upd              statUpdate
	statMin, statMax int32
}

// statUpdate is how an op counts a value into its field's stats, specialised
// so Update switches once.
type statUpdate uint8

const (
	statNone statUpdate = iota
	statCount
	statMinInt
	statMaxInt
	statMinMaxInt
	statMinFloat
	statMaxFloat
	statMinMaxFloat
	statString // min and/or max of a string field
)

// value returns the event's non-null value of a field, or nil. NaN counts as
// null: no aggregate could order or sum it meaningfully.
func value(e *event.Event, field int, class valClass) *event.Value {
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
func (p *Set) Update(s *State, e *event.Event) {
	w := p.words(s)
	for i := range p.upd {
		op := &p.upd[i]
		if op.kind == aggCount {
			w[op.w]++
			continue
		}
		v := value(e, op.field, op.class)
		if v == nil {
			continue
		}
		p.updateOp(s, w, op, v, e.Time, e.ID, e)
		// The field's count and extremes, after every aggregate that
		// reads them.
		if op.upd != statNone {
			p.updateStats(s, w, op, v)
		}
	}
}

// updateOp adds the non-null value v of an event at time t with id to op's
// own state (not its field's stats; count() is the caller's). e is the
// event, for functions outside the built-ins.
func (p *Set) updateOp(s *State, w []uint64, op *aggOp, v *event.Value, t int64, id string, e *event.Event) {
	switch op.kind {
	case aggSumInt, aggAvgInt:
		addInt128(w[op.w:], v.I)
	case aggSumFloat, aggAvgFloat:
		p.fsums(s)[op.f].add(v.F)
	case aggDistinct:
		if d := p.distinctSet(s, op.x); d != nil {
			d.add(hashValue(op.typ, v))
		} else {
			p.addDistinct(s, w, op, hashValue(op.typ, v))
		}
	case aggQuantile:
		x := v.F
		if op.class != classFloat {
			x = float64(v.I)
		}
		p.addQuantile(s, w, op, x)
	case aggFirst, aggLast:
		p.updateFirstLast(s, w, op, t, id, v)
	case aggCustom:
		p.acc(s, op, true).Add(v, e)
	}
}

// updateStats counts the non-null value v into the stats of op's field
// (op.upd says what they keep).
func (p *Set) updateStats(s *State, w []uint64, op *aggOp, v *event.Value) {
	n := w[op.n]
	switch op.upd {
	case statMinInt, statMaxInt, statMinMaxInt:
		minMaxInt(w, op, n, v.I)
	case statMinFloat, statMaxFloat, statMinMaxFloat:
		minMaxFloat(w, op, n, math.Float64bits(v.F))
	case statString:
		p.updateStringExtremes(s, op, n, v.S)
	}
	w[op.n] = n + 1
}

// minMaxInt counts x into the minimum and/or maximum words of op's field,
// which holds n values so far.
func minMaxInt(w []uint64, op *aggOp, n uint64, x int64) {
	if op.statMin >= 0 && (n == 0 || x < int64(w[op.statMin])) {
		w[op.statMin] = uint64(x)
	}
	if op.statMax >= 0 && (n == 0 || x > int64(w[op.statMax])) {
		w[op.statMax] = uint64(x)
	}
}

// minMaxFloat is minMaxInt for a double's bits x, ordered by floatKey.
func minMaxFloat(w []uint64, op *aggOp, n uint64, x uint64) {
	k := floatKey(x)
	if op.statMin >= 0 && (n == 0 || k < floatKey(w[op.statMin])) {
		w[op.statMin] = x
	}
	if op.statMax >= 0 && (n == 0 || k > floatKey(w[op.statMax])) {
		w[op.statMax] = x
	}
}

// addQuantile is Update of a quantile.
func (p *Set) addQuantile(s *State, w []uint64, op *aggOp, x float64) {
	q := p.quantileSet(s, op.x)
	if q != nil && q.sk != nil && !op.ownMinMax {
		q.sk.insert(x, 1) // the common case of a busy window
		return
	}
	h := quantileHead(w, op)
	if nq := qAdd(q, h, x); nq != q {
		p.setQuantileSet(s, op.x, nq)
	}
	if op.ownMinMax {
		h.add(x)
		w[op.mn], w[op.mx] = math.Float64bits(h.min), math.Float64bits(h.max)
	}
}

func (p *Set) updateStringExtremes(s *State, op *aggOp, n uint64, v string) {
	strs := p.strs(s)
	if op.statMin >= 0 && (n == 0 || v < strs[op.statMin]) {
		strs[op.statMin] = p.intern(strs, v)
	}
	if op.statMax >= 0 && (n == 0 || v > strs[op.statMax]) {
		strs[op.statMax] = p.intern(strs, v)
	}
}

// quantileHead returns a quantile's count, min and max from the words.
func quantileHead(w []uint64, op *aggOp) qhead {
	return qhead{n: w[op.n], min: math.Float64frombits(w[op.mn]), max: math.Float64frombits(w[op.mx])}
}

// addDistinct adds a hash to a count_distinct: inline while it is the only
// one, then in a distinct set.
func (p *Set) addDistinct(s *State, w []uint64, op *aggOp, h uint64) {
	if d := p.distinctSet(s, op.x); d != nil {
		d.add(h)
		return
	}
	if h == 0 {
		h = hashZero
	}
	switch w[op.w] {
	case 0:
		w[op.w] = h
	case h:
	default:
		d := new(distinct)
		d.add(w[op.w])
		d.add(h)
		p.setDistinctSet(s, op.x, d)
		w[op.w] = 0
	}
}

// updateFirstLast keeps the value of the event with the smallest (first) or
// largest (last) event time; equal times are ordered by event id, then by
// value, so the result never depends on arrival order or partitioning.
func (p *Set) updateFirstLast(s *State, w []uint64, op *aggOp, t int64, id string, v *event.Value) {
	if w[op.n] > 0 {
		c := cmp.Compare(t, int64(w[op.w]))
		if c == 0 {
			sid, sval := storedIDValue(op, p.strs(s))
			if c = strings.Compare(id, sid); c == 0 {
				c = compareValue(op, v, w[op.w:], sval)
			}
		}
		if (op.kind == aggFirst && c >= 0) || (op.kind == aggLast && c <= 0) {
			return
		}
	}
	w[op.w] = uint64(t)
	strs := p.strs(s)
	switch op.class {
	case classString:
		strs[op.s] = p.internPair(strs, id, v.S)
		return
	case classInt:
		w[op.w+1] = uint64(v.I)
	case classFloat:
		w[op.w+1] = math.Float64bits(v.F)
	}
	strs[op.s] = p.intern(strs, id)
}

// storedIDValue returns a first/last's stored event id and, for strings, its
// value.
func storedIDValue(op *aggOp, strs []string) (id, val string) {
	if op.class == classString {
		return splitPair(strs[op.s])
	}
	return strs[op.s], ""
}

// compareFirstLast orders the (time, id, value) that a first/last keeps in
// two states, a's against b's.
func compareFirstLast(op *aggOp, aw []uint64, astrs []string, bw []uint64, bstrs []string) int {
	if c := cmp.Compare(int64(aw[op.w]), int64(bw[op.w])); c != 0 {
		return c
	}
	aid, aval := storedIDValue(op, astrs)
	bid, bval := storedIDValue(op, bstrs)
	if c := strings.Compare(aid, bid); c != 0 {
		return c
	}
	switch op.class {
	case classInt:
		return cmp.Compare(int64(aw[op.w+1]), int64(bw[op.w+1]))
	case classFloat:
		return compareFloat(math.Float64frombits(aw[op.w+1]), math.Float64frombits(bw[op.w+1]))
	}
	return strings.Compare(aval, bval)
}

// compareValue compares v with a first/last's stored value: w[1] (w starts
// at its words) or str.
func compareValue(op *aggOp, v *event.Value, w []uint64, str string) int {
	switch op.class {
	case classInt:
		return cmp.Compare(v.I, int64(w[1]))
	case classFloat:
		return compareFloat(v.F, math.Float64frombits(w[1]))
	}
	return strings.Compare(v.S, str)
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

// floatKey maps a double's bits to an integer in the order of floatLess
// (for all but NaN): positives get the sign bit set, negatives all bits
// flipped, so -0 comes just below +0.
func floatKey(bits uint64) uint64 {
	return bits ^ (uint64(int64(bits)>>63) | 1<<63)
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
// Strings are shared, not copied: a state's strings are never changed.
func (p *Set) Merge(dst, src *State) {
	w, o := p.words(dst), p.words(src)
	for i := range p.upd {
		op := &p.upd[i]
		switch op.kind {
		case aggCount:
			w[op.w] += o[op.w]
		case aggSumInt, aggAvgInt:
			addInt128Words(w[op.w:], o[op.w], o[op.w+1])
		case aggSumFloat, aggAvgFloat:
			p.fsums(dst)[op.f].merge(&p.fsums(src)[op.f])
		case aggDistinct:
			p.mergeDistinct(dst, w, src, o, op)
		case aggQuantile:
			h, oh := quantileHead(w, op), quantileHead(o, op)
			q := p.quantileSet(dst, op.x)
			if nq := qMerge(q, h, p.quantileSet(src, op.x), oh); nq != q {
				p.setQuantileSet(dst, op.x, nq)
			}
			if op.ownMinMax {
				h.merge(oh)
				w[op.mn], w[op.mx] = math.Float64bits(h.min), math.Float64bits(h.max)
			}
		case aggFirst, aggLast:
			if o[op.n] == 0 {
				continue
			}
			strs, ostrs := p.strs(dst), p.strs(src)
			c := compareFirstLast(op, o, ostrs, w, strs)
			take := w[op.n] == 0 || (op.kind == aggFirst && c < 0) || (op.kind == aggLast && c > 0)
			if take {
				w[op.w] = o[op.w]
				if op.class != classString {
					w[op.w+1] = o[op.w+1]
				}
				strs[op.s] = ostrs[op.s]
			}
		case aggCustom:
			p.mergeAcc(dst, src, op)
		}
	}
	for i := range p.stats {
		st := &p.stats[i]
		on := o[st.n]
		if on == 0 {
			continue
		}
		n := w[st.n]
		w[st.n] = n + on
		switch st.class {
		case classInt:
			if st.min >= 0 && (n == 0 || int64(o[st.min]) < int64(w[st.min])) {
				w[st.min] = o[st.min]
			}
			if st.max >= 0 && (n == 0 || int64(o[st.max]) > int64(w[st.max])) {
				w[st.max] = o[st.max]
			}
		case classFloat:
			if st.min >= 0 && (n == 0 || floatLess(math.Float64frombits(o[st.min]), math.Float64frombits(w[st.min]))) {
				w[st.min] = o[st.min]
			}
			if st.max >= 0 && (n == 0 || floatLess(math.Float64frombits(w[st.max]), math.Float64frombits(o[st.max]))) {
				w[st.max] = o[st.max]
			}
		case classString:
			if st.min < 0 && st.max < 0 {
				continue
			}
			strs, ostrs := p.strs(dst), p.strs(src)
			if st.min >= 0 && (n == 0 || ostrs[st.min] < strs[st.min]) {
				strs[st.min] = ostrs[st.min]
			}
			if st.max >= 0 && (n == 0 || ostrs[st.max] > strs[st.max]) {
				strs[st.max] = ostrs[st.max]
			}
		}
	}
}

// mergeDistinct adds src's count_distinct into dst's.
func (p *Set) mergeDistinct(dst *State, w []uint64, src *State, o []uint64, op *aggOp) {
	od := p.distinctSet(src, op.x)
	if od == nil {
		if h := o[op.w]; h != 0 {
			p.addDistinct(dst, w, op, h)
		}
		return
	}
	d := p.distinctSet(dst, op.x)
	if d == nil {
		d = new(distinct)
		if h := w[op.w]; h != 0 {
			d.add(h)
		}
		p.setDistinctSet(dst, op.x, d)
		w[op.w] = 0
	}
	d.merge(od)
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
func (p *Set) Finalize(s *State) []event.Value {
	return p.AppendFinal(make([]event.Value, 0, len(p.aggs)), s)
}

// AppendFinal is Finalize appending to dst, for callers that reuse a buffer.
func (p *Set) AppendFinal(dst []event.Value, s *State) []event.Value {
	w := p.words(s)
	for i := range p.aggs {
		op := &p.aggs[i]
		var v event.Value
		switch op.kind {
		case aggCount:
			v = event.Value{I: int64(w[op.w]), Valid: true}
		case aggCountField:
			v = event.Value{I: int64(w[op.n]), Valid: true}
		case aggSumInt:
			v = event.Value{I: int128Clamp(w[op.w], w[op.w+1]), Valid: true}
		case aggSumFloat:
			v = event.Value{F: p.fsums(s)[op.f].value(), Valid: true}
		case aggAvgInt:
			if n := w[op.n]; n > 0 {
				v = event.Value{F: int128Float(w[op.w], w[op.w+1]) / float64(n), Valid: true}
			}
		case aggAvgFloat:
			if n := w[op.n]; n > 0 {
				v = event.Value{F: p.fsums(s)[op.f].value() / float64(n), Valid: true}
			}
		case aggMinInt, aggMaxInt:
			if w[op.n] > 0 {
				v = event.Value{I: int64(w[op.v]), Valid: true}
			}
		case aggMinFloat, aggMaxFloat:
			if w[op.n] > 0 {
				v = event.Value{F: math.Float64frombits(w[op.v]), Valid: true}
			}
		case aggMinString, aggMaxString:
			if w[op.n] > 0 {
				v = event.Value{S: p.strs(s)[op.v], Valid: true}
			}
		case aggDistinct:
			v = event.Value{I: p.distinctCount(s, w, op), Valid: true}
		case aggQuantile:
			v.F, v.Valid = qValue(p.quantileSet(s, op.x), quantileHead(w, op), op.q)
		case aggFirst, aggLast:
			if w[op.n] > 0 {
				v.Valid = true
				switch op.class {
				case classInt:
					v.I = int64(w[op.w+1])
				case classFloat:
					v.F = math.Float64frombits(w[op.w+1])
				case classString:
					_, v.S = splitPair(p.strs(s)[op.s])
				}
			}
		case aggCustom:
			v = p.finalAcc(s, op)
		}
		dst = append(dst, v)
	}
	return dst
}

func (p *Set) distinctCount(s *State, w []uint64, op *aggOp) int64 {
	if d := p.distinctSet(s, op.x); d != nil {
		return d.count()
	}
	if w[op.w] != 0 {
		return 1
	}
	return 0
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
