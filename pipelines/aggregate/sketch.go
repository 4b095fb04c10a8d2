package aggregate

import (
	"fmt"
	"math"
	"slices"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
)

// quantiles estimates quantile(field, q). A state keeps the number of values
// and their exact minimum and maximum (a qhead) in its words; while there are
// at most qInline values those are the values themselves, and there is no
// quantiles at all, which is what most states of a fine-grained view need.
// Past that, quantiles holds every value while n ≤ qExactMax and answers
// exactly; past that it is a DDSketch (Masson, Rim, Lee, VLDB 2019) with
// relative accuracy ddAlpha: every answer is within 1% of the true value at
// the same rank. Positive and negative values have a logarithmic bucket store
// each, and zeros a count of their own.
//
// Merging adds bucket counts, and which mode a state is in depends only on
// how many values it has seen, so any grouping of partial states gives the
// same buckets and the same answers.
type quantiles struct {
	exact []float64 // every value while qInline < n ≤ qExactMax
	sk    *ddSketch // past qExactMax
}

// qhead is the part of a quantile state kept inline: the number of values
// and their minimum and maximum, ordered by floatLess (-0 before +0) so that
// they are the values themselves when n ≤ qInline, whatever their order.
type qhead struct {
	n        uint64
	min, max float64
}

// ddSketch is the sketch proper, allocated only when a state outgrows its
// exact values, since most states of a fine-grained view never do.
type ddSketch struct {
	zero     uint64
	pos, neg ddStore
}

const (
	qInline   = 2
	qExactMax = 16
	ddAlpha   = 0.01
	ddGamma   = (1 + ddAlpha) / (1 - ddAlpha)
	// ddLnGamma is ln(ddGamma), written out because math.Log is not a
	// constant expression; a test checks it.
	ddLnGamma = 0.020000666706669435
	// ddMaxBins bounds a store: past it the buckets of the smallest
	// magnitudes are folded together (ddGamma^2048 ≈ 6e17, so only values
	// more than 17 orders of magnitude below the largest lose accuracy).
	ddMaxBins = 2048
)

// ddStore holds bucket counts for indexes off … off+len(bins)-1.
type ddStore struct {
	off  int32
	hi   int32 // the largest index added; its bucket is never empty
	bins []uint64
}

// ddIndex returns the bucket of x > 0: ⌈log_γ x⌉, so bucket i holds
// (γ^(i-1), γ^i]. math.Log is assembly on amd64 and Go elsewhere, so a value
// within an ulp of a bucket edge could land one bucket apart on another
// architecture (about 1e-13 per value); same-architecture runs agree exactly.
func ddIndex(x float64) int32 {
	if x > math.MaxFloat64 {
		x = math.MaxFloat64
	}
	return int32(math.Ceil(math.Log(x) / ddLnGamma))
}

// ddValue is the representative of bucket i, within ddAlpha of everything in it.
func ddValue(i int32) float64 {
	return 2 * math.Exp(float64(i)*ddLnGamma) / (ddGamma + 1)
}

// add counts x into the head.
func (h *qhead) add(x float64) {
	if h.n == 0 || floatLess(x, h.min) {
		h.min = x
	}
	if h.n == 0 || floatLess(h.max, x) {
		h.max = x
	}
	h.n++
}

// merge adds o's head into h.
func (h *qhead) merge(o qhead) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || floatLess(o.min, h.min) {
		h.min = o.min
	}
	if h.n == 0 || floatLess(h.max, o.max) {
		h.max = o.max
	}
	h.n += o.n
}

// inline returns the values of a head with n ≤ qInline, sorted, in buf.
func (h qhead) inline(buf *[qInline]float64) []float64 {
	buf[0], buf[1] = h.min, h.max
	return buf[:min(h.n, qInline)]
}

// qAdd adds x to the quantile state (q, h), h being the head before x, and
// returns the new q; the caller then adds x to h.
func qAdd(q *quantiles, h qhead, x float64) *quantiles {
	switch n := h.n + 1; {
	case n <= qInline:
		return q
	case q == nil:
		// n is qInline+1: the inline values move out with x.
		var buf [qInline]float64
		q = &quantiles{exact: make([]float64, 0, 4)}
		q.exact = append(append(q.exact, h.inline(&buf)...), x)
	case n <= qExactMax:
		q.exact = append(q.exact, x)
	default:
		if q.sk == nil {
			q.toSketch()
		}
		q.sk.insert(x, 1)
	}
	return q
}

func (q *quantiles) toSketch() {
	q.sk = new(ddSketch)
	for _, v := range q.exact {
		q.sk.insert(v, 1)
	}
	q.exact = nil
}

func (sk *ddSketch) insert(x float64, c uint64) { sk.insertWith(x, c, ddIndex) }

// insertWith is insert with index computing ddIndex (a ddCache's).
func (sk *ddSketch) insertWith(x float64, c uint64, index func(float64) int32) {
	switch {
	case x > 0:
		sk.pos.add(index(x), c)
	case x < 0:
		sk.neg.add(index(-x), c)
	default:
		sk.zero += c
	}
}

// ddCache remembers ddIndex of recent values: measured values repeat
// (prices, latencies in ms, percentages), and a logarithm costs more than
// a multiplication and a load. Direct-mapped on the value's bits; the
// zero key is free since ddIndex only sees x > 0.
type ddCache struct {
	keys [1 << ddCacheBits]uint64
	idx  [1 << ddCacheBits]int32
}

const ddCacheBits = 14

// index is ddIndex(x) for x > 0.
func (c *ddCache) index(x float64) int32 {
	bits := math.Float64bits(x)
	h := bits * 0x9e3779b97f4a7c15 >> (64 - ddCacheBits)
	if c.keys[h] == bits {
		return c.idx[h]
	}
	i := ddIndex(x)
	c.keys[h], c.idx[h] = bits, i
	return i
}

func (s *ddStore) add(k int32, c uint64) {
	if len(s.bins) == 0 {
		s.off, s.hi = k, k
		s.bins = append(s.bins[:0], c)
		return
	}
	if k > s.hi {
		s.hi = k
	}
	lo := s.hi - ddMaxBins + 1
	if k < lo {
		k = lo
	}
	if s.off < lo {
		s.fold(lo)
	}
	end := s.off + int32(len(s.bins))
	switch {
	case k >= end && int(k-s.off) < cap(s.bins):
		// The spare capacity may hold counts fold left behind.
		n := len(s.bins)
		s.bins = s.bins[:k-s.off+1]
		clear(s.bins[n:])
	case k >= end:
		// Grow upwards with an eighth of slack: less than append's
		// doubling, since a view may hold many sketches.
		n := int(k-s.off) + 1
		nb := make([]uint64, n, n+n/8+4)
		copy(nb, s.bins)
		s.bins = nb
	case k < s.off:
		// Grow downwards with the same slack, never below lo.
		newOff := max(k-int32(len(s.bins))/8-4, lo)
		n := int(end - newOff)
		nb := make([]uint64, n, n+n/8)
		copy(nb[s.off-newOff:], s.bins)
		s.bins, s.off = nb, newOff
	}
	s.bins[k-s.off] += c
}

// fold moves the counts of buckets below lo into bucket lo.
func (s *ddStore) fold(lo int32) {
	n := int(lo - s.off)
	var c uint64
	if n >= len(s.bins) {
		for _, b := range s.bins {
			c += b
		}
		s.bins = append(s.bins[:0], c)
		s.off = lo
		return
	}
	for _, b := range s.bins[:n] {
		c += b
	}
	s.bins = s.bins[n:]
	s.off = lo
	s.bins[0] += c
}

func (s *ddStore) merge(o *ddStore) {
	for i, c := range o.bins {
		if c != 0 {
			s.add(o.off+int32(i), c)
		}
	}
}

// qMerge adds the quantile state (o, oh) into (q, h) and returns the new q;
// the caller then merges the heads. o is not changed.
func qMerge(q *quantiles, h qhead, o *quantiles, oh qhead) *quantiles {
	if oh.n == 0 {
		return q
	}
	n := h.n + oh.n
	if n <= qInline {
		return q
	}
	var obuf [qInline]float64
	var ovals []float64 // o's values, unless it is a sketch
	switch {
	case o == nil:
		ovals = oh.inline(&obuf)
	case o.sk == nil:
		ovals = o.exact
	}
	if q == nil {
		var buf [qInline]float64
		q = &quantiles{exact: make([]float64, 0, min(n, qExactMax))}
		q.exact = append(q.exact, h.inline(&buf)...)
	}
	if n <= qExactMax {
		q.exact = append(q.exact, ovals...)
		return q
	}
	if q.sk == nil {
		q.toSketch()
	}
	if ovals != nil || o.sk == nil {
		for _, v := range ovals {
			q.sk.insert(v, 1)
		}
		return q
	}
	q.sk.zero += o.sk.zero
	q.sk.pos.merge(&o.sk.pos)
	q.sk.neg.merge(&o.sk.neg)
	return q
}

// qValue returns the value at 0-based rank ⌊p·(n−1)⌋ of the sorted values
// of (q, h) (exactly, or within ddAlpha), clamped to the exact minimum and
// maximum. ok is false when no value was added.
func qValue(q *quantiles, h qhead, p float64) (v float64, ok bool) {
	if h.n == 0 {
		return 0, false
	}
	rank := uint64(p * float64(h.n-1))
	if q == nil || q.sk == nil {
		var buf [qExactMax]float64
		var vs []float64
		if q == nil {
			vs = h.inline((*[qInline]float64)(buf[:qInline]))
		} else {
			vs = append(buf[:0], q.exact...)
			slices.SortFunc(vs, compareFloat) // -0 before 0, whatever the arrival order
		}
		return vs[min(rank, uint64(len(vs)-1))], true
	}
	sk := q.sk
	v = h.max
	var seen uint64
	found := false
	for i := len(sk.neg.bins) - 1; i >= 0 && !found; i-- {
		if seen += sk.neg.bins[i]; seen > rank {
			v, found = -ddValue(sk.neg.off+int32(i)), true
		}
	}
	if !found {
		if seen += sk.zero; seen > rank {
			v, found = 0, true
		}
	}
	for i := 0; i < len(sk.pos.bins) && !found; i++ {
		if seen += sk.pos.bins[i]; seen > rank {
			v, found = ddValue(sk.pos.off+int32(i)), true
		}
	}
	return min(max(v, h.min), h.max), true
}

// qAppendBinary writes the quantile state (q, h): n, then if n > 0 the
// minimum, the maximum and either the values (n ≤ qExactMax) or the sketch.
func qAppendBinary(b []byte, q *quantiles, h qhead) []byte {
	b = binfmt.AppendUvarint(b, h.n)
	if h.n == 0 {
		return b
	}
	b = binfmt.AppendFloat64(b, h.min)
	b = binfmt.AppendFloat64(b, h.max)
	var buf [qInline]float64
	switch {
	case q == nil:
		for _, v := range h.inline(&buf) {
			b = binfmt.AppendFloat64(b, v)
		}
		return b
	case q.sk == nil:
		for _, v := range q.exact {
			b = binfmt.AppendFloat64(b, v)
		}
		return b
	}
	b = binfmt.AppendUvarint(b, q.sk.zero)
	b = q.sk.pos.appendBinary(b)
	return q.sk.neg.appendBinary(b)
}

// appendBinary writes the non-empty range of buckets: first index, count of
// buckets, then each bucket's count.
func (s *ddStore) appendBinary(b []byte) []byte {
	lo, hi := 0, len(s.bins)
	for lo < hi && s.bins[lo] == 0 {
		lo++
	}
	for hi > lo && s.bins[hi-1] == 0 {
		hi--
	}
	b = binfmt.AppendVarint(b, int64(s.off)+int64(lo))
	b = binfmt.AppendUvarint(b, uint64(hi-lo))
	for _, c := range s.bins[lo:hi] {
		b = binfmt.AppendUvarint(b, c)
	}
	return b
}

// qReadBinary reads what qAppendBinary wrote. While the values are exact,
// the head's minimum and maximum are taken from them (states written before
// heads ordered zeros may have either zero in the header).
func qReadBinary(r *binfmt.Reader) (q *quantiles, h qhead, err error) {
	n := r.Uvarint()
	if n == 0 {
		return nil, h, r.Err()
	}
	hmin := math.Float64frombits(r.Uint64())
	hmax := math.Float64frombits(r.Uint64())
	if n <= qExactMax {
		vs := make([]float64, n)
		for i := range vs {
			vs[i] = math.Float64frombits(r.Uint64())
			h.add(vs[i])
		}
		if r.Failed() {
			return nil, h, r.Err()
		}
		if n > qInline {
			q = &quantiles{exact: vs}
		}
		return q, h, nil
	}
	h = qhead{n: n, min: hmin, max: hmax}
	q = &quantiles{sk: &ddSketch{zero: r.Uvarint()}}
	total := q.sk.zero
	for _, s := range []*ddStore{&q.sk.pos, &q.sk.neg} {
		off := r.Varint()
		n := r.Uvarint()
		if r.Failed() {
			return nil, h, r.Err()
		}
		if n > ddMaxBins || off < math.MinInt32 || off+int64(n) > math.MaxInt32 {
			return nil, h, fmt.Errorf("quantile store of %d buckets at %d out of range", n, off)
		}
		if n == 0 {
			continue
		}
		s.off = int32(off)
		s.bins = make([]uint64, n)
		for i := range s.bins {
			s.bins[i] = r.Uvarint()
			total += s.bins[i]
		}
		s.hi = s.off + int32(n) - 1
		if s.bins[n-1] == 0 || s.bins[0] == 0 {
			return nil, h, fmt.Errorf("quantile store with empty edge bucket")
		}
	}
	if !r.Failed() && total != h.n {
		return nil, h, fmt.Errorf("quantile sketch counts %d values, header says %d", total, h.n)
	}
	return q, h, r.Err()
}
