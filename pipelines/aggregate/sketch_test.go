package aggregate

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// qacc is a quantile state on its own, as a State keeps one: the head
// (count, min, max) and what spills past it.
type qacc struct {
	h qhead
	q *quantiles
}

func (a *qacc) add(x float64) {
	a.q = qAdd(a.q, a.h, x)
	a.h.add(x)
}

func (a *qacc) quantile(p float64) (float64, bool) { return qValue(a.q, a.h, p) }

func TestAggSketchConstants(t *testing.T) {
	if ddLnGamma != math.Log(ddGamma) {
		t.Errorf("ddLnGamma = %v, want ln(%v) = %v", ddLnGamma, ddGamma, math.Log(ddGamma))
	}
}

func TestAggQuantileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	const n = 100_000
	dists := map[string]func() float64{
		"uniform 0-100":   func() float64 { return rng.Float64() * 100 },
		"exponential":     func() float64 { return rng.ExpFloat64() },
		"lognormal":       func() float64 { return math.Exp(rng.NormFloat64() * 3) },
		"pareto":          func() float64 { return math.Pow(rng.Float64(), -1/1.1) },
		"normal ±":        func() float64 { return rng.NormFloat64() * 50 },
		"latency ms ints": func() float64 { return float64(1 + rng.IntN(2000)) },
		"mostly zero":     func() float64 { return float64(max(0, rng.IntN(10)-7)) * rng.Float64() },
		"negative only":   func() float64 { return -rng.ExpFloat64() * 1e6 },
		"wide 1e-8..1e8":  func() float64 { return math.Pow(10, rng.Float64()*16-8) },
	}
	qs := []float64{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}
	for name, gen := range dists {
		xs := make([]float64, n)
		var q qacc
		for i := range xs {
			xs[i] = gen()
			q.add(xs[i])
		}
		slices.Sort(xs)
		worst := 0.0
		for _, p := range qs {
			want := xs[int(p*float64(n-1))]
			got, ok := q.quantile(p)
			if !ok {
				t.Fatalf("%s: no value", name)
			}
			rel := math.Abs(got-want) / math.Abs(want)
			if want == 0 {
				rel = math.Abs(got)
			}
			worst = max(worst, rel)
			if rel > ddAlpha*(1+1e-9) {
				t.Errorf("%s: q=%v got %v, want %v (error %.3f%%)", name, p, got, want, 100*rel)
			}
		}
		t.Logf("%-20s worst relative error %.4f%%, %d+%d buckets", name, 100*worst, len(q.q.sk.pos.bins), len(q.q.sk.neg.bins))
	}
}

func TestAggQuantileExactSmall(t *testing.T) {
	var q qacc
	for _, x := range []float64{5, -1, 3, 0, 2} {
		q.add(x)
	}
	for p, want := range map[float64]float64{0: -1, 0.25: 0, 0.5: 2, 0.74: 2, 0.75: 3, 1: 5} {
		if got, _ := q.quantile(p); got != want {
			t.Errorf("quantile(%v) = %v, want %v", p, got, want)
		}
	}
	if _, ok := new(qacc).quantile(0.5); ok {
		t.Error("empty sketch has a quantile")
	}
}

func TestAggQuantileBoundedBuckets(t *testing.T) {
	// Values over the whole float64 range fold the smallest magnitudes
	// instead of growing without bound; quantiles within the top 17 orders
	// of magnitude (γ^2048) stay accurate.
	var q qacc
	rng := rand.New(rand.NewPCG(23, 24))
	xs := make([]float64, 50_000)
	for i := range xs {
		xs[i] = math.Pow(10, rng.Float64()*600-300)
		q.add(xs[i])
	}
	q.add(math.Inf(1))
	if len(q.q.sk.pos.bins) > ddMaxBins {
		t.Errorf("%d buckets, bound %d", len(q.q.sk.pos.bins), ddMaxBins)
	}
	slices.Sort(xs)
	for _, p := range []float64{0.99, 0.999} {
		want := xs[int(p*float64(len(xs)))] // n is one more with +Inf
		if got, _ := q.quantile(p); math.Abs(got-want) > ddAlpha*want {
			t.Errorf("q=%v: %v, want %v", p, got, want)
		}
	}
	if got, _ := q.quantile(1); !math.IsInf(got, 1) {
		t.Errorf("max = %v, want +Inf", got)
	}
}
