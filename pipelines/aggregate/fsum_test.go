package aggregate

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestAggExactFloatSum(t *testing.T) {
	f := func(name string, xs ...float64) {
		t.Helper()
		want := new(big.Float).SetPrec(5000)
		var fs fsum
		for _, x := range xs {
			fs.add(x)
			want.Add(want, new(big.Float).SetPrec(5000).SetFloat64(x))
		}
		w, _ := want.Float64()
		if got := fs.value(); got != w {
			t.Errorf("%s: sum = %v, want %v", name, got, w)
		}
		// Any split merged in either order gives the same bits.
		for cut := 0; cut <= len(xs); cut++ {
			var a, b fsum
			for _, x := range xs[:cut] {
				a.add(x)
			}
			for _, x := range xs[cut:] {
				b.add(x)
			}
			ab, ba := a, b
			if a.big != nil {
				ab.big = new(big.Int).Set(a.big)
			}
			if b.big != nil {
				ba.big = new(big.Int).Set(b.big)
			}
			ab.merge(&b)
			ba.merge(&a)
			if ab.value() != w || ba.value() != w {
				t.Errorf("%s: split at %d gives %v / %v, want %v", name, cut, ab.value(), ba.value(), w)
			}
		}
	}
	f("cancellation", 1e16, 1, -1e16)
	f("tenths", 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)
	f("float overflow in between", math.MaxFloat64, math.MaxFloat64, -math.MaxFloat64)
	f("denormals and large", 5e-324, 1e300, -1e300, 5e-324)
	f("wide", 1e-300, 1e300, 1, -1e-300, 3.5e-200, -7e250)
	f("ties to even", 1, math.Pow(2, -53), math.Pow(2, -53)/2)
	f("negative", -1.5, -2.25, 0.75)
	f("zeros", 0, math.Copysign(0, -1))
	f("real overflow", math.MaxFloat64, math.MaxFloat64)

	var inf fsum
	inf.add(math.Inf(1))
	inf.add(1)
	if v := inf.value(); !math.IsInf(v, 1) {
		t.Errorf("+Inf + 1 = %v", v)
	}
	inf.add(math.Inf(-1))
	if v := inf.value(); !math.IsNaN(v) {
		t.Errorf("+Inf + -Inf = %v", v)
	}

	// Random wide-range data, shuffled: identical bits every time.
	rng := rand.New(rand.NewPCG(13, 14))
	xs := make([]float64, 2000)
	for i := range xs {
		xs[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(600)-300))
	}
	var ref fsum
	for _, x := range xs {
		ref.add(x)
	}
	for range 5 {
		rng.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
		var s fsum
		for _, x := range xs {
			s.add(x)
		}
		if s.value() != ref.value() {
			t.Fatalf("shuffled sum %v != %v", s.value(), ref.value())
		}
	}
}
