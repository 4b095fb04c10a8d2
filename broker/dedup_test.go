package broker

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func allUnique(n int) []bool {
	u := make([]bool, n)
	for i := range u {
		u[i] = true
	}
	return u
}

func appendUnique(t testing.TB, b *Broker, topic string, part int, events []event.Event) []Placement {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := b.AppendUnique(ctx, topic, part, events, allUnique(len(events)))
	if err != nil {
		t.Fatalf("AppendUnique: %v", err)
	}
	return out
}

func placements(pairs ...int64) []Placement {
	var out []Placement
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, Placement{Offset: pairs[i], Duplicate: pairs[i+1] == 1})
	}
	return out
}

// TestAppendUniqueAcrossWriters: two Brokers (two ingest processes, as far
// as the log can tell) append to one partition; an id either of them
// stored is a duplicate for the other, found by reading the other's
// entries when the expected last sequence is refused.
func TestAppendUniqueAcrossWriters(t *testing.T) {
	ns := runServer(t)
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	p.Broker.URL = ns.ClientURL()
	p.Ingest.DedupWindow = pipelines.Duration(10 * time.Minute)
	logs := &logCounter{}
	b1 := openBroker(t, p, Options{Logger: slog.New(logs)})
	b2 := openBroker(t, p, Options{})

	ev := func(id string) event.Event {
		e := testEvent("x", 0, base)
		e.ID = id
		return e
	}
	if got := appendUnique(t, b1, "metrics", 0, []event.Event{ev("a"), ev("b")}); !reflect.DeepEqual(got, placements(0, 0, 1, 0)) {
		t.Fatalf("b1: %+v", got)
	}
	// b2 built its index at its first call: b1's ids are in it.
	if got := appendUnique(t, b2, "metrics", 0, []event.Event{ev("b"), ev("c"), ev("c")}); !reflect.DeepEqual(got, placements(1, 1, 2, 0, 2, 1)) {
		t.Fatalf("b2: %+v", got)
	}
	// b1 expects the sequence of its own entry, is refused, reads b2's
	// entry and finds c there.
	if got := appendUnique(t, b1, "metrics", 0, []event.Event{ev("d"), ev("c"), ev("a")}); !reflect.DeepEqual(got, placements(3, 0, 2, 1, 0, 1)) {
		t.Fatalf("b1 again: %+v", got)
	}
	if n := logs.count("append conflict"); n != 1 {
		t.Fatalf("b1 logged %d append conflicts, want 1", n)
	}
	// Plain appends are not checked, and a call of duplicates only
	// appends nothing.
	mustAppend(t, b2, "metrics", 0, []event.Event{ev("a")}, 4)
	if got := appendUnique(t, b1, "metrics", 0, []event.Event{ev("d")}); !reflect.DeepEqual(got, placements(3, 1)) {
		t.Fatalf("b1 duplicate only: %+v", got)
	}
	if ids := eventIDs(readAll(t, b1, "metrics", 0)); !reflect.DeepEqual(ids, []string{"a", "b", "c", "d", "a"}) {
		t.Fatalf("log %v", ids)
	}

	// Under load: both write the same ids at once, each many times; every
	// id lands once.
	const ids = 300
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w, b := range []*Broker{b1, b2, b1, b2} {
		wg.Go(func() {
			for i := range ids / 3 {
				var evs []event.Event
				for j := range 3 {
					evs = append(evs, ev(fmt.Sprintf("load-%d", (i*3+j+w*7)%ids)))
				}
				if _, err := b.AppendUnique(context.Background(), "metrics", 0, evs, allUnique(len(evs))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, id := range eventIDs(readAll(t, b2, "metrics", 0))[5:] {
		seen[id]++
	}
	if len(seen) != ids {
		t.Fatalf("%d distinct ids in the log, want %d", len(seen), ids)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s stored %d times", id, n)
		}
	}
}

// TestDedupIndexRebuiltWithinWindow: a new Broker's index holds the ids
// stored within the window, and no older ones.
func TestDedupIndexRebuiltWithinWindow(t *testing.T) {
	ns := runServer(t)
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	p.Broker.URL = ns.ClientURL()
	p.Ingest.DedupWindow = pipelines.Duration(time.Minute)
	now := time.Now()
	clock := func() time.Time { return now }
	b1 := openBroker(t, p, Options{Now: clock})
	old := testEvents("old", 0, 2, base)
	appendUnique(t, b1, "metrics", 0, old)

	// Entries are stored at the server's time; the new broker's clock is
	// past the window for them.
	later := now.Add(2 * time.Minute)
	b2 := openBroker(t, p, Options{Now: func() time.Time { return later }})
	if err := b2.PrepareDedup(context.Background(), "metrics", 0); err != nil {
		t.Fatal(err)
	}
	if n := len(b2.topics["metrics"].parts[0].dedup.x.ids); n != 0 {
		t.Fatalf("index holds %d ids from before the window", n)
	}
	b3 := openBroker(t, p, Options{Now: clock})
	if got := appendUnique(t, b3, "metrics", 0, old[1:]); !reflect.DeepEqual(got, placements(1, 1)) {
		t.Fatalf("within the window: %+v", got)
	}
}

// TestDedupIndexEviction checks the window and the id limit of the index
// itself.
func TestDedupIndexEviction(t *testing.T) {
	b := &Broker{idSeeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	x := &dedupIndex{window: 100, maxIDs: 3, ids: map[idHash]idOrigin{}}
	h := func(s string) idHash { return b.hashID(s) }
	for i, id := range []string{"a", "b", "c", "d"} {
		x.insert(h(id), idOrigin{offset: int64(i), at: 10 + int64(i)})
	}
	x.evict(20)
	if _, ok := x.lookup(h("a"), 0); ok {
		t.Fatal("a kept beyond maxIDs")
	}
	if o, ok := x.lookup(h("d"), 0); !ok || o.offset != 3 {
		t.Fatalf("d: %+v %v", o, ok)
	}
	// Past the window: gone, and a lookup with the horizon ignores an
	// entry not yet evicted.
	if _, ok := x.lookup(h("b"), 12); ok {
		t.Fatal("b found behind the horizon")
	}
	x.evict(113)
	if len(x.ids) != 1 {
		t.Fatalf("%d ids after the window, want 1 (d)", len(x.ids))
	}
	// The first landing is the origin; a later one within the window does
	// not replace it.
	x.insert(h("d"), idOrigin{offset: 9, at: 113})
	if o, _ := x.lookup(h("d"), 0); o.offset != 3 {
		t.Fatalf("d moved to %d", o.offset)
	}
}
