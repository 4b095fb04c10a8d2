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

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/pipelines/internal/testtopic"
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
	roundTrip := func(s *aggregate.State) *aggregate.State {
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
					e.Values[testtopic.CPU].F = 0
					if i%2 == 1 {
						e.Values[testtopic.CPU].F = negZero
					}
				}
			}
			want := p.Finalize(fold(p, es))
			rev := slices.Clone(es)
			slices.Reverse(rev)
			check := func(what string, s *aggregate.State) {
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
