package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
)

// fsum is the exact sum of float64 values. A float64 is an integer times a
// power of two, so the sum of any of them is too: l × 2^exp, where l is a
// 192-bit two's complement integer. Because nothing is ever rounded, the sum
// does not depend on the order of additions or on how partial sums from
// partitions, checkpoints and layers are grouped; it is rounded once, to the
// nearest float64, when read. That is what lets the speed and the batch layer
// agree bit for bit on sum(double) and avg(double).
//
// 192 bits hold any sum whose values span about 130 binary orders of
// magnitude (e.g. 1e-20 to 1e18 summed a billion times). Sums that need more
// move to big, which is slower but equally exact.
type fsum struct {
	l     [3]uint64
	exp   int32
	flags uint8
	big   *big.Int // when non-nil the value is big × 2^exp and l is unused
}

const (
	fsumPosInf = 1 << iota
	fsumNegInf
	fsumBig // serialisation only: the value follows as a big integer
)

// fsumMaxBits bounds |l| < 2^fsumMaxBits, so that adding two values within the
// bound can never overflow 192 bits.
const fsumMaxBits = 186

// fsumMaxBigBytes bounds the big form when decoding: the span of float64
// exponents (2098 bits) plus 64 bits of count growth, rounded up.
const fsumMaxBigBytes = 300

// add adds x. NaN is the caller's business (aggregates treat it as null).
func (f *fsum) add(x float64) {
	if x == 0 {
		return
	}
	if math.IsInf(x, 0) {
		if x > 0 {
			f.flags |= fsumPosInf
		} else {
			f.flags |= fsumNegInf
		}
		return
	}
	neg, m, e := splitFloat(x)
	f.addInt(neg, m, e)
}

// splitFloat returns x (finite, non-zero) as ±m × 2^e with m odd.
func splitFloat(x float64) (neg bool, m uint64, e int32) {
	b := math.Float64bits(x)
	neg = b>>63 != 0
	be := int32(b>>52) & 0x7ff
	m = b & (1<<52 - 1)
	if be == 0 {
		e = -1074
	} else {
		m |= 1 << 52
		e = be - 1075
	}
	tz := bits.TrailingZeros64(m)
	return neg, m >> tz, e + int32(tz)
}

func (f *fsum) addInt(neg bool, m uint64, e int32) {
	if f.big != nil {
		f.addBig(neg, m, e)
		return
	}
	if f.l == [3]uint64{} {
		f.exp = e
		f.l = [3]uint64{m, 0, 0}
		if neg {
			f.l = neg192(f.l)
		}
		return
	}
	if e < f.exp {
		d := f.exp - e
		if absBitLen192(f.l)+int(d) > fsumMaxBits {
			f.toBig()
			f.addBig(neg, m, e)
			return
		}
		f.l = shl192(f.l, uint(d))
		f.exp = e
	}
	s := uint(e - f.exp)
	if s+uint(bits.Len64(m)) > fsumMaxBits {
		f.toBig()
		f.addBig(neg, m, e)
		return
	}
	// Add or subtract m << s in place: fewer copies of the 192-bit value
	// than add192 on arrays, which matters on this per-event path.
	r := s % 64
	lo, hi := m<<r, m>>(64-r) // hi is 0 when r is 0: Go shifts by ≥ 64 give 0
	var v0, v1, v2 uint64
	switch s / 64 {
	case 0:
		v0, v1 = lo, hi
	case 1:
		v1, v2 = lo, hi
	default:
		v2 = lo // s+53 ≤ fsumMaxBits, so hi is 0
	}
	var c uint64
	if neg {
		f.l[0], c = bits.Sub64(f.l[0], v0, 0)
		f.l[1], c = bits.Sub64(f.l[1], v1, c)
		f.l[2], _ = bits.Sub64(f.l[2], v2, c)
	} else {
		f.l[0], c = bits.Add64(f.l[0], v0, 0)
		f.l[1], c = bits.Add64(f.l[1], v1, c)
		f.l[2], _ = bits.Add64(f.l[2], v2, c)
	}
	if !fits192(f.l) {
		f.toBig()
	}
}

func (f *fsum) toBig() {
	f.big = int192ToBig(f.l)
	f.l = [3]uint64{}
}

func (f *fsum) addBig(neg bool, m uint64, e int32) {
	if f.big.Sign() == 0 {
		f.exp = e
	}
	if e < f.exp {
		f.big.Lsh(f.big, uint(f.exp-e))
		f.exp = e
	}
	t := new(big.Int).SetUint64(m)
	t.Lsh(t, uint(e-f.exp))
	if neg {
		f.big.Sub(f.big, t)
	} else {
		f.big.Add(f.big, t)
	}
}

// merge adds o into f; o is not changed.
func (f *fsum) merge(o *fsum) {
	f.flags |= o.flags &^ fsumBig
	if o.big == nil && o.l == [3]uint64{} {
		return
	}
	if f.big == nil && o.big == nil {
		if f.l == [3]uint64{} {
			f.l, f.exp = o.l, o.exp
			return
		}
		a, b, exp := f.l, o.l, f.exp
		ok := true
		if d := int(exp - o.exp); d > 0 {
			if ok = absBitLen192(a)+d <= fsumMaxBits; ok {
				a, exp = shl192(a, uint(d)), o.exp
			}
		} else if ok = absBitLen192(b)-d <= fsumMaxBits; ok {
			b = shl192(b, uint(-d))
		}
		if ok {
			f.l, f.exp = add192(a, b), exp
			if !fits192(f.l) {
				f.toBig()
			}
			return
		}
	}
	if f.big == nil {
		f.toBig()
	}
	ob, oexp := o.big, o.exp
	if ob == nil {
		ob = int192ToBig(o.l)
	} else {
		ob = new(big.Int).Set(ob)
	}
	if f.big.Sign() == 0 {
		f.exp = oexp
	}
	if oexp < f.exp {
		f.big.Lsh(f.big, uint(f.exp-oexp))
		f.exp = oexp
	}
	ob.Lsh(ob, uint(oexp-f.exp))
	f.big.Add(f.big, ob)
}

// value rounds the exact sum to the nearest float64 (ties to even). +Inf and
// -Inf among the values give NaN, as IEEE addition does.
func (f *fsum) value() float64 {
	switch f.flags & (fsumPosInf | fsumNegInf) {
	case fsumPosInf | fsumNegInf:
		return math.NaN()
	case fsumPosInf:
		return math.Inf(1)
	case fsumNegInf:
		return math.Inf(-1)
	}
	if f.big == nil {
		if v := int64(f.l[0]); f.l[1] == uint64(v>>63) && f.l[2] == uint64(v>>63) {
			// Exact and normal: no rounding can happen, so skip big.Float.
			if v > -1<<53 && v < 1<<53 && f.exp >= -1022 && int(f.exp)+bits.Len64(uint64(v)) < 1024 {
				return math.Ldexp(float64(v), int(f.exp))
			}
		}
		return bigToFloat(int192ToBig(f.l), f.exp)
	}
	return bigToFloat(f.big, f.exp)
}

func bigToFloat(b *big.Int, exp int32) float64 {
	if b.Sign() == 0 {
		return 0
	}
	x := new(big.Float).SetInt(b)
	x.SetMantExp(x, int(exp))
	r, _ := x.Float64()
	return r
}

// appendBinary writes flags, then exp and the integer: three limbs, or for
// the big form a sign byte and the magnitude's big-endian bytes.
func (f *fsum) appendBinary(b []byte) []byte {
	flags := f.flags &^ fsumBig
	if f.big != nil {
		flags |= fsumBig
	}
	b = append(b, flags)
	b = binfmt.AppendVarint(b, int64(f.exp))
	if f.big == nil {
		for _, l := range f.l {
			b = binfmt.AppendUint64(b, l)
		}
		return b
	}
	b = append(b, byte(f.big.Sign()+1))
	mag := f.big.Bytes()
	b = binfmt.AppendUvarint(b, uint64(len(mag)))
	return append(b, mag...)
}

func (f *fsum) readBinary(r *binfmt.Reader) error {
	flags := r.Byte()
	exp := r.Varint()
	// A sum's lowest bit is that of some float64, so exp is a float64
	// exponent; checking it keeps a corrupt state from asking for a
	// gigantic shift.
	if !r.Failed() && (exp < -1074 || exp > 1024) {
		return fmt.Errorf("exact sum exponent %d out of range", exp)
	}
	f.exp = int32(exp)
	f.flags = flags &^ fsumBig
	f.big = nil
	if flags&fsumBig == 0 {
		for i := range f.l {
			f.l[i] = r.Uint64()
		}
		if !r.Failed() && !fits192(f.l) {
			return errors.New("exact sum out of range")
		}
		return r.Err()
	}
	f.l = [3]uint64{}
	sign := int(r.Byte()) - 1
	n := r.Uvarint()
	if n > fsumMaxBigBytes {
		return fmt.Errorf("exact sum of %d bytes", n)
	}
	mag := r.Bytes(int(n))
	if r.Failed() {
		return r.Err()
	}
	f.big = new(big.Int).SetBytes(mag)
	if sign < 0 {
		f.big.Neg(f.big)
	}
	return nil
}

// 192-bit two's complement helpers, least significant limb first.

func add192(a, b [3]uint64) [3]uint64 {
	var c uint64
	a[0], c = bits.Add64(a[0], b[0], 0)
	a[1], c = bits.Add64(a[1], b[1], c)
	a[2], _ = bits.Add64(a[2], b[2], c)
	return a
}

// fits192 reports whether -2^fsumMaxBits ≤ a < 2^fsumMaxBits: the bits above
// fsumMaxBits all equal the sign bit.
func fits192(a [3]uint64) bool {
	h := int64(a[2]) >> (fsumMaxBits - 128)
	return h == 0 || h == -1
}

func neg192(a [3]uint64) [3]uint64 {
	var c uint64
	a[0], c = bits.Add64(^a[0], 1, 0)
	a[1], c = bits.Add64(^a[1], 0, c)
	a[2], _ = bits.Add64(^a[2], 0, c)
	return a
}

func shl192(a [3]uint64, s uint) [3]uint64 {
	for s >= 64 {
		a = [3]uint64{0, a[0], a[1]}
		s -= 64
	}
	if s == 0 {
		return a
	}
	return [3]uint64{a[0] << s, a[1]<<s | a[0]>>(64-s), a[2]<<s | a[1]>>(64-s)}
}

func absBitLen192(a [3]uint64) int {
	if int64(a[2]) < 0 {
		a = neg192(a)
	}
	switch {
	case a[2] != 0:
		return 128 + bits.Len64(a[2])
	case a[1] != 0:
		return 64 + bits.Len64(a[1])
	}
	return bits.Len64(a[0])
}

func int192ToBig(a [3]uint64) *big.Int {
	neg := int64(a[2]) < 0
	if neg {
		a = neg192(a)
	}
	var be [24]byte
	binary.BigEndian.PutUint64(be[0:], a[2])
	binary.BigEndian.PutUint64(be[8:], a[1])
	binary.BigEndian.PutUint64(be[16:], a[0])
	b := new(big.Int).SetBytes(be[:])
	if neg {
		b.Neg(b)
	}
	return b
}
