package speed

import "testing"

// TestAddRange: touching ranges join; past maxRanges the two neighbours
// with the fewest rows between them join; trimRanges drops the ranges that
// ended before the cutoff.
func TestAddRange(t *testing.T) {
	em := &emitter{ranges: make([][]finalRange, 1)}
	em.addRange(0, finalRange{from: 0, to: 10, maxEnd: 5})
	em.addRange(0, finalRange{from: 10, to: 12, maxEnd: 7})
	if got := em.ranges[0]; len(got) != 1 || got[0] != (finalRange{0, 12, 7}) {
		t.Fatalf("touching ranges: %v", got)
	}
	for i := range maxRanges {
		gap := int64(100)
		if i == 1000 {
			gap = 3 // the fewest rows between two ranges
		}
		last := em.ranges[0][len(em.ranges[0])-1]
		em.addRange(0, finalRange{from: last.to + gap, to: last.to + gap + 1, maxEnd: int64(100 + i)})
	}
	rs := em.ranges[0]
	if len(rs) != maxRanges {
		t.Fatalf("%d ranges, want %d", len(rs), maxRanges)
	}
	if joined := rs[1000]; joined.to-joined.from != 1+3+1 || joined.maxEnd != 100+1000 {
		t.Fatalf("range 1000 is %v, want the ranges 3 rows apart joined", joined)
	}
	em.trimRanges(100 + 10) // the first range and those of i < 10
	if rs := em.ranges[0]; len(rs) != maxRanges-11 || rs[0].maxEnd != 100+10 {
		t.Fatalf("after trimming: %d ranges from %v", len(rs), rs[0])
	}
}
