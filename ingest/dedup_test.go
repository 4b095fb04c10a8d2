package ingest

import (
	"testing"
)

// remember claims and resolves ids as appended at offsets 0.. at time at.
func remember(t *testing.T, x *dedupIndex, at int64, ids ...string) {
	t.Helper()
	owner := new(claimer)
	hs := make([]idHash, len(ids))
	want := make([]bool, len(ids))
	for i, id := range ids {
		hs[i], want[i] = x.hash(id), true
	}
	claims := make([]claim, len(ids))
	x.reserve(at, owner, hs, want, claims)
	for i, c := range claims {
		if c.kind != claimOwn {
			t.Fatalf("%s: claim %d, want own", ids[i], c.kind)
		}
	}
	x.resolve(at, owner, hs, want, func(i int) (origin, bool) {
		return origin{offset: int64(i), at: at, partition: 1}, true
	})
}

// lookup reports whether id is remembered at time now, releasing any claim.
func lookup(x *dedupIndex, now int64, id string) (origin, bool) {
	owner := new(claimer)
	hs := []idHash{x.hash(id)}
	claims := make([]claim, 1)
	x.reserve(now, owner, hs, []bool{true}, claims)
	x.resolve(now, owner, hs, []bool{claims[0].kind == claimOwn}, func(int) (origin, bool) { return origin{}, false })
	return claims[0].orig, claims[0].kind == claimDup
}

func TestDedupIndexForgetsOldestBeyondMaxIDs(t *testing.T) {
	x := newDedupIndex(1e9, 3)
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		remember(t, x, int64(i), id)
	}
	for _, c := range []struct {
		id   string
		want bool
	}{{"a", false}, {"b", false}, {"c", true}, {"d", true}, {"e", true}} {
		if _, ok := lookup(x, 10, c.id); ok != c.want {
			t.Errorf("%s remembered %v, want %v", c.id, ok, c.want)
		}
	}
	if n := x.size(); n != 3 {
		t.Fatalf("size %d", n)
	}
}

func TestDedupIndexWindow(t *testing.T) {
	x := newDedupIndex(10, 100)
	remember(t, x, 100, "a")
	if o, ok := lookup(x, 110, "a"); !ok || o != (origin{offset: 0, at: 100, partition: 1}) {
		t.Fatalf("inside the window: %+v %v", o, ok)
	}
	if _, ok := lookup(x, 111, "a"); ok {
		t.Fatal("remembered past the window")
	}
	// Remembered again after it expired, it is not evicted by its old entry.
	remember(t, x, 200, "a")
	remember(t, x, 205, "b") // evicts the stale entry of a
	if _, ok := lookup(x, 206, "a"); !ok {
		t.Fatal("forgot a renewed id")
	}
	if n := x.size(); n != 2 {
		t.Fatalf("size %d", n)
	}
}

func TestDedupIndexLoadKeepsNewest(t *testing.T) {
	x := newDedupIndex(1e9, 2)
	// As a rebuild delivers them: partition by partition, times interleaved.
	x.load(100, []loadedID{
		{x.hash("p0-old"), origin{offset: 0, at: 1, partition: 0}},
		{x.hash("p0-new"), origin{offset: 1, at: 4, partition: 0}},
		{x.hash("p1-mid"), origin{offset: 0, at: 3, partition: 1}},
		{x.hash("p1-old"), origin{offset: 1, at: 2, partition: 1}},
		{x.hash("p0-new"), origin{offset: 9, at: 5, partition: 1}}, // appended twice: the first counts
	})
	for _, c := range []struct {
		id   string
		want bool
	}{{"p0-old", false}, {"p1-old", false}, {"p1-mid", true}, {"p0-new", true}} {
		if _, ok := lookup(x, 100, c.id); ok != c.want {
			t.Errorf("%s remembered %v, want %v", c.id, ok, c.want)
		}
	}
	if o, _ := lookup(x, 100, "p0-new"); o != (origin{offset: 1, at: 4, partition: 0}) {
		t.Fatalf("p0-new at %+v", o)
	}
}
