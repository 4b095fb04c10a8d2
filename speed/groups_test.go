package speed

import (
	"fmt"
	"testing"
)

// checkGroups asserts that g holds exactly keys, in that order, each found
// again at its position without adding.
func checkGroups(t *testing.T, g *groups, keys []string) {
	t.Helper()
	if g.len() != len(keys) {
		t.Fatalf("%d groups, want %d", g.len(), len(keys))
	}
	for i, k := range keys {
		if got := g.key(i); got != k {
			t.Fatalf("slot %d has key %q, want %q", i, got, k)
		}
		if j, added := g.lookup(g.hash([]byte(k)), []byte(k)); added || j != i {
			t.Fatalf("lookup(%q) = %d, added %v; want %d, found", k, j, added, i)
		}
	}
	if g.len() != len(keys) {
		t.Fatalf("lookups added groups: %d, want %d", g.len(), len(keys))
	}
}

// TestGroupsCollisions: keys whose hashes are all equal (same position,
// same tag) are told apart by their bytes, and keep their slots as the
// index grows past its first size.
func TestGroupsCollisions(t *testing.T) {
	g := newGroups(func([]byte) uint64 { return 0xdead_beef_0000_0003 }, 0)
	var keys []string
	for i := range 40 {
		k := fmt.Sprintf("k%d", i)
		if i == 7 {
			k = "" // the empty key is a key like any other
		}
		j, added := g.lookup(g.hash([]byte(k)), []byte(k))
		if !added || j != i {
			t.Fatalf("lookup(%q) = %d, added %v; want %d, added", k, j, added, i)
		}
		g.slots[j].shown = uint32(i)
		keys = append(keys, k)
		checkGroups(t, &g, keys)
	}
	if len(g.index) != 64 {
		t.Fatalf("index of %d entries for 40 groups, want 64 (at most three quarters full)", len(g.index))
	}
	for i := range g.slots {
		if g.slots[i].shown != uint32(i) {
			t.Fatalf("slot %d lost its state in growing: shown %d", i, g.slots[i].shown)
		}
	}
}

// TestGroupsTags: keys at the same position with different tags, and keys
// with the same tag at different positions, wrapping around the end of
// the index.
func TestGroupsTags(t *testing.T) {
	hashes := map[string]uint64{
		"a": 1<<32 | 7, "b": 2<<32 | 7, "c": 1<<32 | 6, "d": 3<<32 | 7, "e": 1<<32 | 0,
	}
	g := newGroups(func(b []byte) uint64 { return hashes[string(b)] }, 4)
	if len(g.index) != 8 {
		t.Fatalf("index of %d entries for a hint of 4, want 8", len(g.index))
	}
	order := []string{"a", "b", "c", "d", "e"}
	for i, k := range order {
		if j, added := g.lookup(hashes[k], []byte(k)); !added || j != i {
			t.Fatalf("lookup(%q) = %d, added %v; want %d, added", k, j, added, i)
		}
	}
	checkGroups(t, &g, order)
	// A key not there, with a tag and position of one that is: added.
	hashes["f"] = hashes["a"]
	if j, added := g.lookup(hashes["f"], []byte("f")); !added || j != 5 {
		t.Fatalf("lookup(f) = %d, added %v; want 5, added", j, added)
	}
	checkGroups(t, &g, append(order, "f"))
}

// TestGroupsMany: 100,000 keys from the engine's own hash, added, found
// again, their key strings unchanged by the arena's growth.
func TestGroupsMany(t *testing.T) {
	g := newGroups(keyHash(), 0)
	var keys []string
	var kept []string // key strings taken before the arena grew
	for i := range 100_000 {
		k := fmt.Sprintf("host-%d", i)
		if _, added := g.lookup(g.hash([]byte(k)), []byte(k)); !added {
			t.Fatalf("%q found before it was added", k)
		}
		keys = append(keys, k)
		kept = append(kept, g.key(i))
	}
	checkGroups(t, &g, keys)
	for i, k := range kept {
		if k != keys[i] {
			t.Fatalf("key %d taken early reads %q, want %q", i, k, keys[i])
		}
	}
	if n := len(g.index); n != 1<<18 {
		t.Fatalf("index of %d entries for 100,000 groups, want %d", n, 1<<18)
	}
}
