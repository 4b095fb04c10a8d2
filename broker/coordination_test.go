package broker

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestFetchFromCursorAndBounds: FetchFrom reads from any offset (inside an
// entry too), a cursor carries the next read on without a search, offsets
// outside the partition are ErrOffsetOutOfRange, and OffsetAt finds the
// first entry stored at or after a time.
func TestFetchFromCursorAndBounds(t *testing.T) {
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("m", 1)), Options{})
	ctx := ctxT(t, 30*time.Second)
	before := time.Now()
	for i := range 3 { // entries of 4 events: offsets 0-3, 4-7, 8-11
		if _, err := b.Append(ctx, "m", 0, testEvents("e", 4*i, 4, 0)); err != nil {
			t.Fatal(err)
		}
	}
	var cur Cursor
	entries, bd, err := b.FetchFrom(ctx, "m", 0, 2, &cur, 5, 1<<20)
	if err != nil || bd != (Bounds{Start: 0, End: 12}) {
		t.Fatalf("FetchFrom: %v, bounds %+v", err, bd)
	}
	var ids []string
	for _, e := range entries {
		for _, ev := range e.Events {
			ids = append(ids, ev.ID)
		}
	}
	if !slices.Equal(ids, []string{"e-2", "e-3", "e-4", "e-5", "e-6"}) || entries[0].Offset != 2 || entries[1].Offset != 4 {
		t.Fatalf("from 2, 5 events: %v (offsets %d, %d)", ids, entries[0].Offset, entries[1].Offset)
	}
	// The cursor goes on at 7, inside the second entry.
	entries, _, err = b.FetchFrom(ctx, "m", 0, 7, &cur, 100, 1<<20)
	if err != nil || len(entries) != 2 || entries[0].Offset != 7 || entries[1].End() != 12 {
		t.Fatalf("from the cursor: %v %+v", err, entries)
	}
	if entries, _, err = b.FetchFrom(ctx, "m", 0, 12, &cur, 100, 1<<20); err != nil || len(entries) != 0 {
		t.Errorf("at the end: %v %+v", err, entries)
	}
	if _, _, err = b.FetchFrom(ctx, "m", 0, 13, nil, 100, 1<<20); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Errorf("past the end: %v, want ErrOffsetOutOfRange", err)
	}
	// A byte budget smaller than one entry still returns that entry.
	if entries, _, err = b.FetchFrom(ctx, "m", 0, 0, nil, 100, 1); err != nil || len(entries) != 1 || len(entries[0].Events) != 4 {
		t.Errorf("tiny budget: %v %+v", err, entries)
	}
	if off, _, err := b.OffsetAt(ctx, "m", 0, before.Add(-time.Hour)); err != nil || off != 0 {
		t.Errorf("OffsetAt before everything: %d %v", off, err)
	}
	if off, _, err := b.OffsetAt(ctx, "m", 0, time.Now().Add(time.Hour)); err != nil || off != 12 {
		t.Errorf("OffsetAt after everything: %d %v, want the end", off, err)
	}
}

// TestStatesCompareAndSet: a write based on a stale revision is refused
// with ErrConflict, Update retries until its change lands, Wait wakes on a
// change, and names round-trip through NameKey.
func TestStatesCompareAndSet(t *testing.T) {
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("m", 1)), Options{})
	ctx := ctxT(t, 30*time.Second)
	st, err := b.States(ctx, "coord")
	if err != nil {
		t.Fatal(err)
	}
	key := NameKey("g", "a group/with odd.chars")
	rev, err := st.Set(ctx, key, []byte("1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Set(ctx, key, []byte("x"), 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("create over an existing key: %v, want ErrConflict", err)
	}
	if _, err := st.Set(ctx, key, []byte("2"), rev); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Set(ctx, key, []byte("x"), rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("update from a stale revision: %v, want ErrConflict", err)
	}
	// Update: a concurrent change between its read and its write makes it
	// read again.
	calls := 0
	v, _, err := st.Update(ctx, key, func(old []byte) ([]byte, bool, error) {
		calls++
		if calls == 1 {
			_, cur, _ := st.Get(ctx, key)
			if _, err := st.Set(ctx, key, []byte("3"), cur); err != nil {
				t.Error(err)
			}
		}
		return append(old, '+'), true, nil
	})
	if err != nil || string(v) != "3+" || calls != 2 {
		t.Fatalf("Update: %q %v after %d calls, want \"3+\" after 2", v, err, calls)
	}
	_, cur, _ := st.Get(ctx, key)
	done := make(chan error, 1)
	go func() { done <- st.Wait(ctx, key, cur) }()
	time.Sleep(50 * time.Millisecond) // let the watch start; Wait must not return before the change
	select {
	case err := <-done:
		t.Fatalf("Wait returned before any change: %v", err)
	default:
	}
	if _, err := st.Set(ctx, key, []byte("4"), cur); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	names, err := st.Names(ctx, "g")
	if err != nil || !slices.Equal(names, []string{"a group/with odd.chars"}) {
		t.Errorf("Names: %q %v", names, err)
	}
}
