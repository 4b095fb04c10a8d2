package broker

import (
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// readN reads n entries from a new Reader of topic's partition 0 at from.
func readN(t *testing.T, b *Broker, topic string, from Position, n int) []Entry {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	r, err := b.Reader(ctx, topic, 0, from)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := make([]Entry, n)
	for i := range out {
		if out[i], err = r.Next(ctx); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	return out
}

// TestReadersShareDecodedEvents checks that Readers and fetches of one
// partition decode an entry once between them, a Reader starting inside an
// entry included, and that each gets the entry's exact events.
func TestReadersShareDecodedEvents(t *testing.T) {
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("metrics", 1)), Options{})
	all := testEvents("e", 0, 15, base)
	for i := range 3 {
		mustAppend(t, b, "metrics", 0, all[i*5:(i+1)*5], int64(i*5))
	}
	first := readN(t, b, "metrics", FromStart(), 3)
	for i := range all {
		all[i].Ingest = first[i/5].Ingest // set by the append
	}
	second := readN(t, b, "metrics", FromStart(), 3)
	for i := range 3 {
		if !reflect.DeepEqual(second[i].Events, all[i*5:(i+1)*5]) || second[i].Offset != int64(i*5) {
			t.Fatalf("entry %d: offset %d, events %v; want offset %d, %v", i, second[i].Offset, second[i].Events, i*5, all[i*5:(i+1)*5])
		}
		if &second[i].Events[0] != &first[i].Events[0] {
			t.Fatalf("entry %d was decoded again by the second Reader", i)
		}
	}
	inside := readN(t, b, "metrics", FromOffset(7), 2)
	if inside[0].Offset != 7 || !reflect.DeepEqual(inside[0].Events, all[7:10]) || !reflect.DeepEqual(inside[1].Events, all[10:15]) {
		t.Fatalf("from offset 7: offsets %d, %d, events %v %v", inside[0].Offset, inside[1].Offset, inside[0].Events, inside[1].Events)
	}
	if &inside[0].Events[0] != &first[1].Events[2] {
		t.Fatal("the entry a Reader started inside was decoded again")
	}
	if want := first[1].Bytes * 3 / 5; inside[0].Bytes != want {
		t.Fatalf("bytes of the cut entry %d, want %d", inside[0].Bytes, want)
	}
	fetched, err := b.Fetch(ctxT(t, 10*time.Second), "metrics", 0, FromOffset(6), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(fetched) != 1 || fetched[0].Offset != 6 || !reflect.DeepEqual(fetched[0].Events, all[6:8]) {
		t.Fatalf("fetched from offset 6: %v", fetched)
	}
	if &fetched[0].Events[0] != &first[1].Events[1] {
		t.Fatal("a fetch decoded again an entry a Reader had decoded")
	}
	runtime.KeepAlive(first)
}

// TestDecodedCacheKeys checks what finds an entry's events again: the same
// sequence, store time, payload size and schema; and that events no Reader
// holds are left to the garbage collector.
func TestDecodedCacheKeys(t *testing.T) {
	schema := testSchema()
	at := time.Unix(1_700_000_000, 123)
	var c decodedCache
	if got := c.get(7, at, 100, schema); got != nil {
		t.Fatalf("an empty cache returned %v", got)
	}
	events := testEvents("k", 0, 4, base)
	c.put(7, at, 100, schema, events)
	if got := c.get(7, at, 100, schema); len(got) != 4 || &got[0] != &events[0] {
		t.Fatalf("the entry put: got %d events", len(got))
	}
	for name, miss := range map[string]func() []event.Event{
		"another sequence in the slot": func() []event.Event { return c.get(7+decodedSlots, at, 100, schema) },
		"another store time":           func() []event.Event { return c.get(7, at.Add(time.Nanosecond), 100, schema) },
		"another payload size":         func() []event.Event { return c.get(7, at, 101, schema) },
		"another schema":               func() []event.Event { return c.get(7, at, 100, testSchema()) },
	} {
		if got := miss(); got != nil {
			t.Errorf("%s: got %d events, want none", name, len(got))
		}
	}
	runtime.KeepAlive(events)

	c.put(8, at, 100, schema, testEvents("gone", 0, 4, base))
	for range 5 {
		runtime.GC()
		if c.get(8, at, 100, schema) == nil {
			return
		}
	}
	t.Fatal("the cache kept events no one holds alive")
}
