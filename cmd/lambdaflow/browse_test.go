package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/client"
)

// TestMessageBrowserMaxBytes: a page of large events is cut by max_bytes
// (the first event always fits), says so, and paging on with next reads
// every event exactly once.
func TestMessageBrowserMaxBytes(t *testing.T) {
	s := startServer(t, "testdata/browse.yaml", t.TempDir())
	c := s.client()
	ctx := context.Background()
	const n = 40
	var body bytes.Buffer
	for i := range n {
		fmt.Fprintf(&body, `{"id":"d%02d","text":%q}`+"\n", i, strings.Repeat(string(rune('a'+i%26)), 100<<10))
	}
	if _, err := c.Publish(ctx, "docs", body.Bytes(), "", ""); err != nil {
		t.Fatal(err)
	}
	type page struct {
		Events    []json.RawMessage
		Next      map[string]int64
		Truncated bool
	}
	get := func(b client.Browse) page {
		t.Helper()
		var p page
		if err := c.Get(ctx, "/v1/topics/docs/events", b.Values(), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	all := get(client.Browse{From: "0", Limit: n, MaxBytes: 64 << 20})
	if len(all.Events) != n || all.Truncated {
		t.Fatalf("with room for all: %d events, truncated %v", len(all.Events), all.Truncated)
	}

	// Pages of at most 1 MB: each holds as many whole records (with their
	// commas) as fit, and the next would not.
	const budget = 1_000_000
	sel := client.Browse{From: "0", Limit: n, MaxBytes: budget}
	var ids []string
	for at := 0; at < n; {
		p := get(sel)
		want, size := 0, 0
		for at+want < n && (want == 0 || size+1+len(all.Events[at+want]) <= budget) {
			if want > 0 {
				size++
			}
			size += len(all.Events[at+want])
			want++
		}
		if len(p.Events) != want || p.Truncated != (at+want < n) {
			t.Fatalf("page at %d: %d events, truncated %v; want %d, %v", at, len(p.Events), p.Truncated, want, at+want < n)
		}
		for i, e := range p.Events {
			if !bytes.Equal(e, all.Events[at+i]) {
				t.Fatalf("page at %d, event %d differs from the full read", at, i)
			}
			var ev struct{ ID string }
			json.Unmarshal(e, &ev)
			ids = append(ids, ev.ID)
		}
		at += len(p.Events)
		sel = client.Browse{Offsets: p.Next, Limit: n, MaxBytes: budget}
	}
	if len(ids) != n || ids[0] != "d00" || ids[n-1] != "d39" {
		t.Fatalf("paged through %d events %v…", len(ids), ids[:min(3, len(ids))])
	}

	// The first event always fits; NDJSON says the cut in a header.
	if p := get(client.Browse{From: "0", MaxBytes: 1}); len(p.Events) != 1 || !p.Truncated || p.Next["0"] != 1 {
		t.Fatalf("max_bytes=1: %d events, truncated %v, next %v", len(p.Events), p.Truncated, p.Next)
	}
	resp, raw, err := c.EventsNDJSON(ctx, "docs", client.Browse{From: "0", MaxBytes: 300_000})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Lambdaflow-Truncated") != "true" || bytes.Count(raw, []byte("\n")) != 2 {
		t.Fatalf("NDJSON: truncated %q, %d lines", resp.Header.Get("X-Lambdaflow-Truncated"), bytes.Count(raw, []byte("\n")))
	}
	err = c.Get(ctx, "/v1/topics/docs/events", map[string][]string{"max_bytes": {"0"}}, nil)
	if e, ok := err.(*client.Error); !ok || e.Status != 400 || string(e.Body) != `{"error":"parameter \"max_bytes\": want 1 to 67108864, got \"0\""}`+"\n" {
		t.Fatalf("max_bytes=0: %v", err)
	}
}

// TestMessageBrowserMaxBytesAcrossPartitions: the byte budget is shared by
// the partitions, and a partition cut by its share ends the page when it
// runs dry, so pages read on in event-time order: their concatenation is
// every event once, in time order.
func TestMessageBrowserMaxBytesAcrossPartitions(t *testing.T) {
	s := startServer(t, "testdata/browse.yaml", t.TempDir())
	c := s.client()
	ctx := context.Background()
	const n = 60
	var body bytes.Buffer
	for i := range n {
		// One key's events are large, so its partition fills its share
		// of the budget long before the others.
		size := 1 << 10
		if i%7 == 0 {
			size = 100 << 10
		}
		fmt.Fprintf(&body, `{"id":"e%02d","ts":"2026-01-01T00:%02d:00Z","k":"key%d","text":%q}`+"\n", i, i, i%7, strings.Repeat("x", size))
	}
	if _, err := c.Publish(ctx, "spread", body.Bytes(), "", ""); err != nil {
		t.Fatal(err)
	}
	sel := client.Browse{From: "0", Limit: n, MaxBytes: 150_000}
	var ids []string
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("paging does not end")
		}
		p, err := c.Events(ctx, "spread", sel)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Events {
			ids = append(ids, e.ID)
		}
		if len(p.Events) == 0 {
			break
		}
		sel = client.Browse{Offsets: p.Next, Limit: n, MaxBytes: 150_000}
	}
	if len(ids) != n {
		t.Fatalf("read %d events, want %d", len(ids), n)
	}
	for i, id := range ids {
		if want := fmt.Sprintf("e%02d", i); id != want {
			t.Fatalf("event %d is %s, want %s: pages are not in time order (%v)", i, id, want, ids)
		}
	}
}
