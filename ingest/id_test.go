package ingest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func TestGeneratedIDs(t *testing.T) {
	in, err := New(testPipeline(t.TempDir(), *metricsTopic(1)), &nopLog{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	var all []string
	for r := range 3 {
		events := make([]event.Event, 100)
		events[7].ID = "own"
		dedupable := in.assignIDs(events, "", at.Add(time.Duration(r)*time.Millisecond))
		for i, e := range events {
			if i == 7 {
				if e.ID != "own" || !dedupable[i] {
					t.Fatalf("own id became %q, dedupable %v", e.ID, dedupable[i])
				}
				continue
			}
			if dedupable[i] || len(e.ID) != idLen || strings.Trim(e.ID, crockford) != "" {
				t.Fatalf("generated id %q, dedupable %v", e.ID, dedupable[i])
			}
			all = append(all, e.ID)
		}
	}
	// Time-ordered across requests, counting up within one: sorted already.
	if !slices.IsSorted(all) {
		t.Fatalf("ids not in order: %v", all)
	}
	if len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Fatal("duplicate generated ids")
	}
	// The first 10 characters are the milliseconds (computed independently).
	if got, want := all[0][:10], "01HWSSHG80"; got != want {
		t.Fatalf("time part %q, want %q (ULID of %v)", got, want, at)
	}

	events := make([]event.Event, 3)
	events[1].ID = "own"
	in.assignIDs(events, "req-9", at)
	if ids := []string{events[0].ID, events[1].ID, events[2].ID}; !slices.Equal(ids, []string{"req-9:0", "own", "req-9:2"}) {
		t.Fatalf("Idempotency-Key ids %v", ids)
	}
}
