package plan

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// TestAggDecodesEarlierStates reads states that the build before the
// one-block state layout wrote (testdata/agg_state_v1.txt: "n hex" per line,
// allAggsView folded over randomEvents(rng, n, 1+n/2), rng PCG(41, 42) drawn
// in file order). The format did not change, but the old writer listed exact
// quantile values in arrival order and could put either zero in a quantile's
// min and max; those states must decode to the same values.
func TestAggDecodesEarlierStates(t *testing.T) {
	v := allAggsView()
	p := mustCompile(t, v)
	f, err := os.Open("testdata/agg_state_v1.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(41, 42))
	moreRng := rand.New(rand.NewPCG(43, 44))
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		fields := strings.Fields(sc.Text())
		n, err := strconv.Atoi(fields[0])
		if err != nil {
			t.Fatal(err)
		}
		old, err := hex.DecodeString(fields[1])
		if err != nil {
			t.Fatal(err)
		}
		es := randomEvents(rng, n, 1+n/2)
		s, err := p.UnmarshalState(old)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		want := p.Finalize(fold(p, es))
		for i, got := range p.Finalize(s) {
			if !identical(got, want[i]) {
				t.Errorf("n=%d: %s = %+v from the old state, %+v folded", n, v.Aggregates[i].Name, got, want[i])
			}
		}
		// The decoded state goes on merging with new ones.
		more := randomEvents(moreRng, 5, 3)
		p.Merge(s, fold(p, more))
		want = p.Finalize(fold(p, append(es, more...)))
		for i, got := range p.Finalize(s) {
			if !identical(got, want[i]) {
				t.Errorf("n=%d merged: %s = %+v, want %+v", n, v.Aggregates[i].Name, got, want[i])
			}
		}
	}
	if lines == 0 {
		t.Fatal("no states in testdata/agg_state_v1.txt")
	}
}

// TestAggInlineBoundaries splits few events every way: count_distinct keeps
// one hash inline and quantile two values, and merges, checkpoints and
// updates across those bounds must give what one pass gives.
func TestAggInlineBoundaries(t *testing.T) {
	v := allAggsView()
	p := mustCompile(t, v)
	rng := rand.New(rand.NewPCG(15, 16))
	negZero := math.Copysign(0, -1)
	roundTrip := func(s *State) *State {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		s2, err := p.UnmarshalState(b)
		if err != nil {
			t.Fatal(err)
		}
		return s2
	}
	for n := range 7 {
		for trial := range 20 {
			es := randomEvents(rng, n, 1+trial%3)
			if trial%4 == 0 {
				// Zeros of both signs: the inline min and max must
				// order them the same whatever the arrival order.
				for i, e := range es {
					e.Values[fCPU].F = pick(i%2 == 0, 0, negZero)
				}
			}
			want := p.Finalize(fold(p, es))
			rev := slices.Clone(es)
			slices.Reverse(rev)
			check := func(what string, s *State) {
				t.Helper()
				for i, got := range p.Finalize(s) {
					if !identical(got, want[i]) {
						t.Errorf("n=%d trial %d %s: %s = %+v, want %+v", n, trial, what, v.Aggregates[i].Name, got, want[i])
					}
				}
			}
			check("reversed", fold(p, rev))
			for cut := 0; cut <= n; cut++ {
				a, b := fold(p, es[:cut]), fold(p, es[cut:])
				ab := fold(p, es[:cut])
				p.Merge(ab, b)
				check(fmt.Sprintf("cut %d a+b", cut), ab)
				ba := roundTrip(b)
				p.Merge(ba, roundTrip(a))
				check(fmt.Sprintf("cut %d b+a via checkpoints", cut), ba)
				// Merge into a restored state, then keep updating it.
				c := roundTrip(a)
				for _, e := range es[cut:] {
					p.Update(c, e)
				}
				check(fmt.Sprintf("cut %d restored then updated", cut), c)
			}
		}
	}
}

// TestAggStateAllocs guards the memory layout: a one-event state of the
// quickstart aggregates is its State, one block and one string for first and
// last (they share it, and its id and value when equal); no sketch is
// allocated before a second distinct value or a third quantile value.
func TestAggStateAllocs(t *testing.T) {
	v := designView()
	v.Aggregates = pipelines.Aggregates{
		{Name: "events", Func: "count"},
		{Name: "avg_cpu", Func: "avg", Field: "cpu"},
		{Name: "min_cpu", Func: "min", Field: "cpu"},
		{Name: "max_cpu", Func: "max", Field: "cpu"},
		{Name: "bytes", Func: "sum", Field: "bytes"},
		{Name: "hosts", Func: "count_distinct", Field: "host"},
		{Name: "p95_cpu", Func: "quantile", Field: "cpu", Arg: 0.95},
		{Name: "first_host", Func: "first", Field: "host"},
		{Name: "last_host", Func: "last", Field: "host"},
	}
	p := mustCompile(t, v)
	e := newEvent(1, "host-1", map[int]any{fHost: "host-1", fRegion: "eu", fCPU: 0.5, fBytes: int64(100)})
	if n := testing.AllocsPerRun(100, func() { p.Update(p.NewState(), e) }); n > 3 {
		t.Errorf("one-event state: %v allocations, want 3", n)
	}
	s := p.NewState()
	p.Update(s, e)
	if got := p.Finalize(s); got[7].S != "host-1" || got[8].S != "host-1" || got[5].I != 1 || got[6].F != 0.5 {
		t.Errorf("one-event state finalizes to %+v", got)
	}
	if p.sketchPtrs(s) != nil {
		t.Error("one event allocated the sketch pointers")
	}
}

func TestAggPairs(t *testing.T) {
	for _, c := range []struct{ id, val string }{
		{"", ""}, {"a", ""}, {"", "b"}, {"id", "id"}, {"id", "value"},
		{strings.Repeat("x", 200), "v"}, {strings.Repeat("y", 70), strings.Repeat("y", 70)},
	} {
		pair := makePair(c.id, c.val)
		if id, val := splitPair(pair); id != c.id || val != c.val {
			t.Errorf("splitPair(makePair(%q, %q)) = %q, %q", c.id, c.val, id, val)
		}
		if c.id == c.val && len(pair) != uvarintLen(uint(2*len(c.id)+1))+len(c.id) {
			t.Errorf("pair of equal id and value %q is %d bytes", c.id, len(pair))
		}
	}
	if id, val := splitPair(""); id != "" || val != "" {
		t.Errorf("unset pair splits to %q, %q", id, val)
	}
}

func TestAggFloatKeyOrdersLikeFloatLess(t *testing.T) {
	xs := []float64{math.Inf(-1), -math.MaxFloat64, -1, -math.SmallestNonzeroFloat64, math.Copysign(0, -1), 0,
		math.SmallestNonzeroFloat64, 1e-300, 0.5, 1, 1e300, math.MaxFloat64, math.Inf(1)}
	for _, a := range xs {
		for _, b := range xs {
			if got, want := floatKey(math.Float64bits(a)) < floatKey(math.Float64bits(b)), floatLess(a, b); got != want {
				t.Errorf("floatKey(%v) < floatKey(%v) = %v, floatLess %v", a, b, got, want)
			}
		}
	}
}
