package aggregate

import (
	"fmt"
	"math"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func TestAggDistinctAccuracy(t *testing.T) {
	for _, n := range []int{1, 100, distinctExactMax, distinctExactMax + 1, 5000, 100_000, 1_000_000} {
		if testing.Short() && n > 100_000 {
			continue
		}
		var d distinct
		for i := range n {
			// Each value twice: repeats must not count.
			d.add(hashString(fmt.Sprint("host-", i)))
			d.add(hashString(fmt.Sprint("host-", i)))
		}
		got := d.count()
		if n <= distinctExactMax {
			if got != int64(n) {
				t.Errorf("n=%d: exact count %d", n, got)
			}
			continue
		}
		if rel := math.Abs(float64(got)-float64(n)) / float64(n); rel > 0.02 {
			t.Errorf("n=%d: estimate %d, error %.2f%% > 2%%", n, got, 100*rel)
		} else {
			t.Logf("n=%d: estimate %d, error %.3f%%", n, got, 100*rel)
		}
	}
}

func TestAggDistinctIntegers(t *testing.T) {
	// Consecutive integers are the worst case for a weak hash.
	var d distinct
	for i := range 100_000 {
		v := event.Value{I: int64(i), Valid: true}
		d.add(hashValue(event.TypeLong, &v))
	}
	if rel := math.Abs(float64(d.count())-1e5) / 1e5; rel > 0.02 {
		t.Errorf("100k consecutive longs: estimate %d", d.count())
	}
}

func TestAggDistinctMergeModes(t *testing.T) {
	// exact ∪ exact staying exact, exact ∪ exact crossing into dense,
	// dense ∪ exact and exact ∪ dense all equal the single pass.
	add := func(d *distinct, from, to int) {
		for i := from; i < to; i++ {
			d.add(hashString(fmt.Sprint(i)))
		}
	}
	for _, c := range []struct{ a, b, total int }{{0, 500, 1000}, {0, 700, 1400}, {0, 1500, 1600}, {0, 10, 3000}} {
		var one, a, b distinct
		add(&one, 0, c.total)
		add(&a, 0, c.b)
		add(&b, c.a+c.b/2, c.total) // overlapping ranges
		a.merge(&b)
		if a.count() != one.count() {
			t.Errorf("%+v: merged %d, single pass %d", c, a.count(), one.count())
		}
	}
}

func TestAggHashStable(t *testing.T) {
	// The hashes are part of the checkpoint format: they must never change.
	// These are XXH64 with seed 0 ("" and "a" are its published test vectors).
	for s, want := range map[string]uint64{
		"":            0xef46db3751d8e999,
		"a":           0xd24ec4f1a98c6e5b,
		"host-1":      0x2e03bba7ae31b4dd,
		"eu-west-1.a": 0x770fbfadb42f8d19,
	} {
		if got := hashString(s); got != want {
			t.Errorf("hashString(%q) = %#x, want %#x", s, got, want)
		}
	}
}
