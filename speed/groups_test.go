package speed

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
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
		t.Fatalf("index of %d entries for 40 groups, want 64 (at most seven eighths full)", len(g.index))
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
	if n := len(g.index); n != 1<<17 {
		t.Fatalf("index of %d entries for 100,000 groups, want %d", n, 1<<17)
	}
}

// rowTexts returns rows as sorted text (rowText).
func rowTexts(rows []viewrow.Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, rowText(r))
	}
	slices.Sort(out)
	return out
}

// TestEngineGroupsCloseAndRestore: an engine's windows of many groups go
// through a checkpoint's encoding unchanged, and a window's groups go all
// together when it is finalised, each with exactly its events.
func TestEngineGroupsCloseAndRestore(t *testing.T) {
	p := testPipeline(t, pipelineOpts{partitions: 1, lateness: "0s"})
	pl := compile(t, p, "all")
	e := newEngine(pl, 1)
	var evs []event.Event
	for i := range 300 {
		for j := range i%3 + 1 {
			evs = append(evs, ev(fmt.Sprintf("a%d.%d", i, j), int64(j)*sec, "h1", fmt.Sprintf("r%d", i), 0.5, int64(i)))
		}
	}
	e.Process(0, 0, evs)
	if n := e.OpenWindows(); n != 300 {
		t.Fatalf("%d open (group, window) states, want 300", n)
	}

	// The checkpoint's encoding of the windows, read into a fresh engine:
	// the same rows.
	b, err := appendWindows(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEngine(pl, 1)
	r := binfmt.NewReader(b, ErrCorruptCheckpoint)
	if err := readWindows(e2, &r); err != nil {
		t.Fatal(err)
	}
	var out, out2 output
	e.Flush(timeAt(0), &out)
	e2.Flush(timeAt(0), &out2)
	want := rowTexts(out.Open)
	if len(want) != 300 {
		t.Fatalf("%d open rows shown, want 300", len(want))
	}
	if got := rowTexts(out2.Open); !slices.Equal(got, want) {
		t.Fatalf("restored rows differ:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Events of the next minute move the watermark past the first window:
	// its 300 groups go, each with its count.
	var next []event.Event
	for i := range 5 {
		next = append(next, ev(fmt.Sprintf("b%d", i), minute+int64(i)*sec, "h1", fmt.Sprintf("r%d", i), 0.5, 1))
	}
	e.Process(0, int64(len(evs)), next)
	e.Flush(timeAt(0), &out)
	if len(out.Final) != 300 || len(out.Open) != 5 {
		t.Fatalf("%d final and %d open rows, want 300 and 5", len(out.Final), len(out.Open))
	}
	for _, row := range out.Final {
		var i int
		if _, err := fmt.Sscanf(row.Group[0].S, "r%d", &i); err != nil {
			t.Fatal(err)
		}
		if row.Start != base || row.Aggs[0].I != int64(i%3+1) {
			t.Fatalf("final row %s, want window start %d and %d events", rowText(row), base, i%3+1)
		}
	}
	if n := e.OpenWindows(); n != 5 || len(e.windows) != 1 || len(e.byEnd) != 1 {
		t.Fatalf("%d open states in %d windows (%d by end), want 5 in 1", n, len(e.windows), len(e.byEnd))
	}
	// An event for the closed window is late and opens nothing.
	e.Process(0, int64(len(evs)+len(next)), []event.Event{ev("late", 10*sec, "h1", "r0", 0.5, 1)})
	if n, late := e.OpenWindows(), e.Stats().Late; n != 5 || late != 1 {
		t.Fatalf("after a late event: %d open states, %d late; want 5 and 1", n, late)
	}
}
