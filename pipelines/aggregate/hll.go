package aggregate

import (
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// distinct counts distinct values for count_distinct. It keeps the exact set
// of the values' 64-bit hashes up to distinctExactMax of them, then switches
// to a HyperLogLog of 2^hllP one-byte registers (standard error 0.81%).
//
// Whichever way partial sets are merged, the result is a function of the set
// of hashes alone: the union of sets is exact while it has at most
// distinctExactMax members, and a register is the maximum over all hashes. So
// the count is exact (up to 64-bit hash collisions) for small cardinalities
// and identical across partitions, checkpoints and layers in both modes.
type distinct struct {
	set []uint64     // open addressing, 0 = empty slot; nil once dense
	n   int          // members of set
	reg *[hllM]uint8 // HyperLogLog registers; nil while exact
}

const (
	hllP = 14
	hllM = 1 << hllP
	hllQ = 64 - hllP
	// distinctExactMax is where the exact set (2048 slots × 8 B) costs as
	// much as the registers (16 KiB).
	distinctExactMax = 1024
	// hashZero stands for a hash of 0, which marks an empty slot.
	hashZero = 0x9e3779b97f4a7c15
)

func (d *distinct) add(h uint64) {
	if d.reg != nil {
		d.addReg(h)
		return
	}
	if h == 0 {
		h = hashZero
	}
	if len(d.set) == 0 {
		d.set = make([]uint64, 4)
	}
	mask := uint64(len(d.set) - 1)
	i := h & mask
	for ; d.set[i] != 0; i = (i + 1) & mask {
		if d.set[i] == h {
			return
		}
	}
	switch {
	case d.n+1 > distinctExactMax:
		d.toDense()
		d.addReg(h)
	case (d.n+1)*4 > len(d.set)*3:
		d.grow()
		d.add(h)
	default:
		d.set[i] = h
		d.n++
	}
}

func (d *distinct) grow() {
	old := d.set
	d.set = make([]uint64, 2*len(old))
	d.n = 0
	for _, h := range old {
		if h != 0 {
			d.add(h)
		}
	}
}

func (d *distinct) toDense() {
	d.reg = new([hllM]uint8)
	for _, h := range d.set {
		if h != 0 {
			d.addReg(h)
		}
	}
	d.set, d.n = nil, 0
}

func (d *distinct) addReg(h uint64) {
	i := h >> hllQ
	// The guard bit caps the run of zeros at hllQ, so rho ≤ hllQ+1.
	rho := uint8(bits.LeadingZeros64(h<<hllP|1<<(hllP-1))) + 1
	if rho > d.reg[i] {
		d.reg[i] = rho
	}
}

// merge adds o into d; o is not changed.
func (d *distinct) merge(o *distinct) {
	if o.reg != nil {
		if d.reg == nil {
			d.toDense()
		}
		for i, r := range o.reg {
			if r > d.reg[i] {
				d.reg[i] = r
			}
		}
		return
	}
	for _, h := range o.set {
		if h != 0 {
			d.add(h)
		}
	}
}

func (d *distinct) count() int64 {
	if d.reg == nil {
		return int64(d.n)
	}
	return int64(math.Round(hllEstimate(d.reg[:])))
}

// hllEstimate is Ertl's improved raw estimator ("New cardinality estimation
// algorithms for HyperLogLog sketches", 2017, algorithm 6): unbiased over the
// whole range without HLL++'s empirical bias tables.
func hllEstimate(reg []uint8) float64 {
	var c [hllQ + 2]int
	for _, r := range reg {
		c[r]++
	}
	m := float64(len(reg))
	z := m * hllTau(1-float64(c[hllQ+1])/m)
	for k := hllQ; k >= 1; k-- {
		z = 0.5 * (z + float64(c[k]))
	}
	z += m * hllSigma(float64(c[0])/m)
	return 0.5 / math.Ln2 * m * m / z
}

func hllSigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		prev := z
		z += x * y
		y += y
		if z == prev {
			return z
		}
	}
}

func hllTau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		prev := z
		y *= 0.5
		z -= (1 - x) * (1 - x) * y
		if z == prev {
			return z / 3
		}
	}
}

// appendBinary writes the exact set (count, then sorted hashes, so equal sets
// give equal bytes) or the registers.
func (d *distinct) appendBinary(b []byte) []byte {
	if d.reg != nil {
		b = append(b, 1)
		return append(b, d.reg[:]...)
	}
	b = append(b, 0)
	b = binfmt.AppendUvarint(b, uint64(d.n))
	hs := make([]uint64, 0, d.n)
	for _, h := range d.set {
		if h != 0 {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	for _, h := range hs {
		b = binfmt.AppendUint64(b, h)
	}
	return b
}

func (d *distinct) readBinary(r *binfmt.Reader) error {
	*d = distinct{}
	switch r.Byte() {
	case 0:
		n := r.Uvarint()
		if n > distinctExactMax {
			return fmt.Errorf("distinct set of %d members, more than %d", n, distinctExactMax)
		}
		for range n {
			h := r.Uint64()
			if r.Failed() {
				return r.Err()
			}
			d.add(h)
		}
	case 1:
		reg := r.Bytes(hllM)
		if r.Failed() {
			return r.Err()
		}
		d.reg = (*[hllM]uint8)(slices.Clone(reg))
		for _, v := range d.reg {
			if v > hllQ+1 {
				return fmt.Errorf("register value %d out of range", v)
			}
		}
	default:
		return fmt.Errorf("unknown distinct mode")
	}
	return r.Err()
}

// Value hashing. The hashes are stored in checkpoints and merged across
// processes, so they are fixed functions (no per-process seed) and part of
// the state format: changing them needs a new state version.
//
// Strings hash with XXH64 (seed 0) of their bytes. Integer-like values and
// doubles hash with XXH64's final avalanche of their 64 bits: a bijection,
// so two distinct numbers never collide, and cheaper than hashing their
// eight bytes. State version 1 hashed strings with XXH64's short-input path
// whatever their length, which equals XXH64 below 32 bytes only; see
// StateVersion for what that means for states written then.

// hashString is XXH64 of s, seed 0.
func hashString(s string) uint64 { return xxhash.Sum64String(s) }

// hashMix is XXH64's avalanche; it is a bijection, so distinct integers never
// collide.
func hashMix(h uint64) uint64 {
	const (
		prime2 = 0xc2b2ae3d27d4eb4f
		prime3 = 0x165667b19e3779f9
	)
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}

// hashValue hashes a non-null value of the given type.
func hashValue(t event.FieldType, v *event.Value) uint64 {
	switch t {
	case event.TypeString:
		return hashString(v.S)
	case event.TypeDouble:
		return hashMix(math.Float64bits(event.CanonicalFloat(v.F)))
	}
	return hashMix(uint64(v.I))
}
