package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/testenv"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

const base = int64(1_700_000_000_000_000) // µs

func entryOffsets(entries []Entry) []int64 {
	out := make([]int64, len(entries))
	for i, e := range entries {
		out[i] = e.Offset
	}
	return out
}

func eventIDs(entries []Entry) []string {
	var out []string
	for _, e := range entries {
		for _, ev := range e.Events {
			out = append(out, ev.ID)
		}
	}
	return out
}

func idRange(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

func mustAppend(t testing.TB, b *Broker, topic string, part int, events []event.Event, want int64) {
	t.Helper()
	off, err := b.Append(ctxT(t, 20*time.Second), topic, part, events)
	if err != nil {
		t.Fatalf("Append %d events to %s/%d: %v", len(events), topic, part, err)
	}
	if off != want {
		t.Fatalf("Append %d events to %s/%d: first offset %d, want %d", len(events), topic, part, off, want)
	}
}

func TestAppendAndRead(t *testing.T) {
	ingest := time.UnixMicro(base + 42)
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("metrics", 3)), Options{Now: func() time.Time { return ingest }})
	ctx := ctxT(t, 30*time.Second)

	before := time.Now().UnixMicro()
	all := testEvents("e", 0, 16, base)
	mustAppend(t, b, "metrics", 0, all[0:5], 0)
	mustAppend(t, b, "metrics", 0, all[5:6], 5)
	mustAppend(t, b, "metrics", 0, all[6:16], 6)
	mustAppend(t, b, "metrics", 1, testEvents("p1", 0, 3, base), 0)

	after := time.Now().UnixMicro()

	entries := readAll(t, b, "metrics", 0)
	if got := entryOffsets(entries); !reflect.DeepEqual(got, []int64{0, 5, 6}) {
		t.Fatalf("entry offsets %v, want [0 5 6]", got)
	}
	whole, err := b.Fetch(ctx, "metrics", 0, FromStart(), 100)
	if err != nil || len(whole) != len(entries) {
		t.Fatalf("Fetch: %d entries, %v", len(whole), err)
	}
	for i, e := range entries {
		if e.Seq != uint64(i+1) || e.Topic != "metrics" || e.Partition != 0 || e.Ingest != base+42 {
			t.Fatalf("entry %d: seq %d topic %q partition %d ingest %d", i, e.Seq, e.Topic, e.Partition, e.Ingest)
		}
		// Appended is the log's own clock (JetStream's), not the
		// broker's (the ingest time, here far in the past).
		minTime := e.Events[0].Time
		for _, ev := range e.Events {
			minTime = min(minTime, ev.Time)
		}
		if e.Appended < before || e.Appended > after || e.MinTime != minTime {
			t.Errorf("entry %d: appended %d (appends between %d and %d), min time %d, want %d", i, e.Appended, before, after, e.MinTime, minTime)
		}
		if f := whole[i]; f.Appended != e.Appended || f.MinTime != e.MinTime {
			t.Errorf("entry %d fetched: appended %d min time %d, read %d %d", i, f.Appended, f.MinTime, e.Appended, e.MinTime)
		}
	}
	var got []event.Event
	for _, e := range entries {
		got = append(got, e.Events...)
	}
	want := testEvents("e", 0, 16, base)
	for i := range want {
		want[i].Ingest = base + 42
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events read back differ:\n got %+v\nwant %+v", got, want)
	}

	// From inside an entry: its earlier events are dropped.
	for _, tc := range []struct {
		from      int64
		offsets   []int64
		firstIDs  []string
		wantFirst int
	}{
		{from: 3, offsets: []int64{3, 5, 6}, wantFirst: 3},
		{from: 5, offsets: []int64{5, 6}, wantFirst: 5},
		{from: 10, offsets: []int64{10}, wantFirst: 10},
		{from: -4, offsets: []int64{0, 5, 6}, wantFirst: 0},
	} {
		r, err := b.Reader(ctx, "metrics", 0, FromOffset(tc.from))
		if err != nil {
			t.Fatal(err)
		}
		var read []Entry
		for len(read) == 0 || read[len(read)-1].End() < 16 {
			e, err := r.Next(ctx)
			if err != nil {
				t.Fatalf("from %d: %v", tc.from, err)
			}
			read = append(read, e)
		}
		r.Close()
		if got := entryOffsets(read); !reflect.DeepEqual(got, tc.offsets) {
			t.Fatalf("from %d: offsets %v, want %v", tc.from, got, tc.offsets)
		}
		if ids := eventIDs(read); !reflect.DeepEqual(ids, idRange("e", tc.wantFirst, 16)) {
			t.Fatalf("from %d: ids %v", tc.from, ids)
		}
	}

	// Fetch cuts to max events and does not wait.
	fetched, err := b.Fetch(ctx, "metrics", 0, FromOffset(3), 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := entryOffsets(fetched); !reflect.DeepEqual(got, []int64{3, 5, 6}) || !reflect.DeepEqual(eventIDs(fetched), idRange("e", 3, 7)) {
		t.Fatalf("Fetch from 3 max 4: offsets %v ids %v", got, eventIDs(fetched))
	}
	if fetched, err := b.Fetch(ctx, "metrics", 0, FromEnd(), 10); err != nil || len(fetched) != 0 {
		t.Fatalf("Fetch from end: %v %v", fetched, err)
	}
	if fetched, err := b.Fetch(ctx, "metrics", 2, FromStart(), 10); err != nil || len(fetched) != 0 {
		t.Fatalf("Fetch empty partition: %v %v", fetched, err)
	}

	// Readers at or past the end wait for new entries.
	atEnd, err := b.Reader(ctx, "metrics", 0, FromEnd())
	if err != nil {
		t.Fatal(err)
	}
	defer atEnd.Close()
	past, err := b.Reader(ctx, "metrics", 0, FromOffset(20))
	if err != nil {
		t.Fatal(err)
	}
	defer past.Close()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	if _, err := atEnd.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next at end: %v, want deadline exceeded", err)
	}
	cancel()
	mark := time.Now()
	mustAppend(t, b, "metrics", 0, testEvents("e", 16, 10, base), 16)
	if e, err := atEnd.Next(ctx); err != nil || e.Offset != 16 || len(e.Events) != 10 {
		t.Fatalf("Next from end: offset %d, %d events, %v", e.Offset, len(e.Events), err)
	}
	if e, err := past.Next(ctx); err != nil || e.Offset != 20 || !reflect.DeepEqual(eventIDs([]Entry{e}), idRange("e", 20, 26)) {
		t.Fatalf("Next from 20: offset %d, ids %v, %v", e.Offset, eventIDs([]Entry{e}), err)
	}

	// From a time: the first entry stored at or after it.
	byTime, err := b.Fetch(ctx, "metrics", 0, FromTime(mark), 100)
	if err != nil || !reflect.DeepEqual(entryOffsets(byTime), []int64{16}) {
		t.Fatalf("Fetch from time: offsets %v, %v", entryOffsets(byTime), err)
	}
	byTime, err = b.Fetch(ctx, "metrics", 0, FromTime(mark.Add(-time.Hour)), 100)
	if err != nil || !reflect.DeepEqual(entryOffsets(byTime), []int64{0, 5, 6, 16}) {
		t.Fatalf("Fetch from an hour ago: offsets %v, %v", entryOffsets(byTime), err)
	}

	infos, err := b.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantInfo := []api.Topic{{
		Name:   "metrics",
		Events: 29,
		Bytes:  infos[0].Bytes,
		Partitions: []api.Partition{
			{Partition: 0, FirstOffset: 0, LastOffset: 25, EndOffset: 26, Bytes: infos[0].Partitions[0].Bytes, Entries: 4},
			{Partition: 1, FirstOffset: 0, LastOffset: 2, EndOffset: 3, Bytes: infos[0].Partitions[1].Bytes, Entries: 1},
			{Partition: 2, FirstOffset: -1, LastOffset: -1, EndOffset: 0, Bytes: 0, Entries: 0},
		},
		Retention: "168h0m0s",
		Replicas:  1,
	}}
	if !reflect.DeepEqual(infos, wantInfo) {
		t.Fatalf("Topics:\n got %+v\nwant %+v", infos, wantInfo)
	}
	if infos[0].Bytes != infos[0].Partitions[0].Bytes+infos[0].Partitions[1].Bytes || infos[0].Partitions[0].Bytes == 0 {
		t.Fatalf("Topics bytes: %+v", infos[0])
	}
}

func TestUnknownTopicAndPartition(t *testing.T) {
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("metrics", 2)), Options{})
	ctx := ctxT(t, 10*time.Second)
	if _, err := b.Append(ctx, "nope", 0, testEvents("e", 0, 1, base)); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Append to unknown topic: %v", err)
	}
	if _, err := b.Append(ctx, "metrics", 2, testEvents("e", 0, 1, base)); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("Append to partition 2 of 2: %v", err)
	}
	if _, err := b.Reader(ctx, "nope", 0, FromStart()); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Reader of unknown topic: %v", err)
	}
	if err := b.Commit(ctx, "c", "metrics", -1, 0, 0); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("Commit to partition -1: %v", err)
	}
	bad := testEvents("e", 0, 1, base)
	bad[0].Values = bad[0].Values[:2]
	if _, err := b.Append(ctx, "metrics", 0, bad); err == nil || !strings.Contains(err.Error(), `event 0 (id "e-0") has 2 values`) {
		t.Fatalf("Append with short values: %v", err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	b.Close()
	if err := b.Ready(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ready after Close: %v", err)
	}
	if _, err := b.Append(ctx, "metrics", 0, testEvents("e", 0, 1, base)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

func TestRestartContinuesOffsets(t *testing.T) {
	dir := t.TempDir()
	p := testPipeline(dir, testTopic("metrics", 2))
	b := openBroker(t, p, Options{})
	ctx := ctxT(t, 30*time.Second)
	mustAppend(t, b, "metrics", 0, testEvents("a", 0, 4, base), 0)
	mustAppend(t, b, "metrics", 0, testEvents("a", 4, 3, base), 4)
	mustAppend(t, b, "metrics", 1, testEvents("b", 0, 2, base), 0)
	if err := b.Commit(ctx, "lake", "metrics", 0, 5, base+4000); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openBroker(t, p, Options{})
	mustAppend(t, b, "metrics", 0, testEvents("a", 7, 5, base), 7)
	mustAppend(t, b, "metrics", 1, testEvents("b", 2, 1, base), 2)
	off, ok, err := b.Committed(ctx, "lake", "metrics", 0)
	if err != nil || !ok || off != 5 {
		t.Fatalf("Committed after restart: %d %v %v, want 5 true", off, ok, err)
	}
	if _, ok, err := b.Committed(ctx, "lake", "metrics", 1); ok || err != nil {
		t.Fatalf("Committed never committed: ok %v err %v", ok, err)
	}
	if ids := eventIDs(readAll(t, b, "metrics", 0)); !reflect.DeepEqual(ids, idRange("a", 0, 12)) {
		t.Fatalf("partition 0 after restart: %v", ids)
	}
}

func TestPartitionCount(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, testPipeline(dir, testTopic("metrics", 3)), Options{})
	b.Close()

	ctx := ctxT(t, 30*time.Second)
	b, err := Open(ctx, testPipeline(dir, testTopic("metrics", 2)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = b.EnsureTopics(ctx)
	b.Close()
	if err == nil || !strings.Contains(err.Error(), `topic "metrics" has 3 partitions in the log but 2 configured`) {
		t.Fatalf("lowering partitions: %v", err)
	}

	b = openBroker(t, testPipeline(dir, testTopic("metrics", 4)), Options{})
	mustAppend(t, b, "metrics", 3, testEvents("e", 0, 1, base), 0)
}

// TestRetentionGaps removes entries the way retention does (from the
// front) and from the middle, and empties a partition.
func TestRetentionGaps(t *testing.T) {
	dir := t.TempDir()
	p := testPipeline(dir, testTopic("metrics", 2))
	b := openBroker(t, p, Options{})
	ctx := ctxT(t, 30*time.Second)
	for i := range 5 {
		mustAppend(t, b, "metrics", 0, testEvents("e", 2*i, 2, base), int64(2*i))
	}
	st, err := b.js.Stream(ctx, "LF_metrics_0")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(3)); err != nil { // drops seq 1, 2
		t.Fatal(err)
	}
	if err := st.DeleteMsg(ctx, 4); err != nil { // offsets 6, 7
		t.Fatal(err)
	}

	for _, tc := range []struct {
		from    Position
		offsets []int64
		ids     []string
	}{
		{FromStart(), []int64{4, 8}, []string{"e-4", "e-5", "e-8", "e-9"}},
		{FromOffset(0), []int64{4, 8}, []string{"e-4", "e-5", "e-8", "e-9"}},
		{FromOffset(5), []int64{5, 8}, []string{"e-5", "e-8", "e-9"}},
		{FromOffset(6), []int64{8}, []string{"e-8", "e-9"}},
		{FromOffset(9), []int64{9}, []string{"e-9"}},
	} {
		got, err := b.Fetch(ctx, "metrics", 0, tc.from, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(entryOffsets(got), tc.offsets) || !reflect.DeepEqual(eventIDs(got), tc.ids) {
			t.Fatalf("Fetch from %v: offsets %v ids %v, want %v %v", tc.from, entryOffsets(got), eventIDs(got), tc.offsets, tc.ids)
		}
		r, err := b.Reader(ctx, "metrics", 0, tc.from)
		if err != nil {
			t.Fatal(err)
		}
		e, err := r.Next(ctx)
		r.Close()
		if err != nil || e.Offset != tc.offsets[0] {
			t.Fatalf("Reader from %v: offset %d, %v; want %d", tc.from, e.Offset, err, tc.offsets[0])
		}
	}
	infos, err := b.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pi := infos[0].Partitions[0]; pi.FirstOffset != 4 || pi.LastOffset != 9 || pi.EndOffset != 10 || pi.Entries != 2 || infos[0].Events != 6 {
		t.Fatalf("after gaps: %+v, events %d", pi, infos[0].Events)
	}

	// Emptied by retention: the end marker written at Close keeps the next
	// offset exact.
	b.Close()
	b = openBroker(t, p, Options{})
	st, err = b.js.Stream(ctx, "LF_metrics_0")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if infos, err = b.Topics(ctx); err != nil {
		t.Fatal(err)
	}
	if pi := infos[0].Partitions[0]; pi != (api.Partition{Partition: 0, FirstOffset: -1, LastOffset: -1, EndOffset: 10}) {
		t.Fatalf("emptied partition: %+v", pi)
	}
	mustAppend(t, b, "metrics", 0, testEvents("e", 10, 1, base), 10)

	// Emptied without a marker (the writer was killed): offsets skip ahead
	// by at most MaxEntryEvents per lost entry, and never go back.
	mustAppend(t, b, "metrics", 1, testEvents("f", 0, 3, base), 0)
	mustAppend(t, b, "metrics", 1, testEvents("f", 3, 3, base), 3)
	st1, err := b.js.Stream(ctx, "LF_metrics_1")
	if err != nil {
		t.Fatal(err)
	}
	if err := st1.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if infos, err = b.Topics(ctx); err != nil {
		t.Fatal(err)
	}
	if end := infos[0].Partitions[1].EndOffset; end != 2*MaxEntryEvents {
		t.Fatalf("end of a partition emptied without marker: %d, want %d", end, 2*MaxEntryEvents)
	}
}

// runServer starts a standalone nats-server with JetStream and a client
// port, as an external cluster of one.
func runServer(t testing.TB) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		ServerName: "ext",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { stopServer(ns, slog.New(slog.DiscardHandler)) })
	return ns
}

// TestConcurrentWriters appends to one partition from two Brokers (two
// processes, as far as the log can tell): offsets never overlap.
func TestConcurrentWriters(t *testing.T) {
	ns := runServer(t)
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	p.Broker.URL = ns.ClientURL()
	logs := &logCounter{}
	b1 := openBroker(t, p, Options{Logger: slog.New(logs)})
	b2 := openBroker(t, p, Options{})

	// Deterministic conflict: b1's idea of the end is stale after b2
	// appended, so its expected last sequence is refused and it re-reads.
	mustAppend(t, b1, "metrics", 0, testEvents("w0.x", 0, 2, base), 0)
	mustAppend(t, b2, "metrics", 0, testEvents("w1.x", 0, 3, base), 2)
	mustAppend(t, b1, "metrics", 0, testEvents("w0.y", 0, 1, base), 5)
	if n := logs.count("append conflict"); n != 1 {
		t.Fatalf("b1 logged %d append conflicts, want 1", n)
	}
	if ids := eventIDs(readAll(t, b1, "metrics", 0)); !reflect.DeepEqual(ids, []string{"w0.x-0", "w0.x-1", "w1.x-0", "w1.x-1", "w1.x-2", "w0.y-0"}) {
		t.Fatalf("after a conflict: %v", ids)
	}
	byOffset := map[int64]string{}
	for i, id := range []string{"w0.x-0", "w0.x-1", "w1.x-0", "w1.x-1", "w1.x-2", "w0.y-0"} {
		byOffset[int64(i)] = id
	}

	const perWriter = 150
	type span struct {
		off int64
		ids []string
	}
	var mu sync.Mutex
	var spans []span
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w, b := range []*Broker{b1, b2} {
		wg.Go(func() {
			ctx := context.Background()
			for i := range perWriter {
				n := 1 + i%4
				events := testEvents(fmt.Sprintf("w%d.%d", w, i), 0, n, base)
				off, err := b.Append(ctx, "metrics", 0, events)
				if err != nil {
					errs <- err
					return
				}
				ids := make([]string, n)
				for j := range events {
					ids[j] = events[j].ID
				}
				mu.Lock()
				spans = append(spans, span{off, ids})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d conflicts under load", logs.count("append conflict")-1)
	// Every acknowledged append's events sit at the offsets it was given.
	for _, s := range spans {
		for j, id := range s.ids {
			if prev, dup := byOffset[s.off+int64(j)]; dup {
				t.Fatalf("offset %d given to %s and %s", s.off+int64(j), prev, id)
			}
			byOffset[s.off+int64(j)] = id
		}
	}
	entries := readAll(t, b1, "metrics", 0)
	var next int64
	for _, e := range entries {
		if e.Offset != next {
			t.Fatalf("entry at %d, expected %d: offsets not contiguous", e.Offset, next)
		}
		for j, ev := range e.Events {
			if byOffset[e.Offset+int64(j)] != ev.ID {
				t.Fatalf("offset %d holds %s, Append returned it for %s", e.Offset+int64(j), ev.ID, byOffset[e.Offset+int64(j)])
			}
		}
		next = e.End()
	}
	if want := int64(len(byOffset)); next != want || len(entries) != 2*perWriter+3 {
		t.Fatalf("log ends at %d with %d entries, want %d events in %d entries", next, len(entries), want, 2*perWriter+3)
	}
}

// logCounter is a slog.Handler counting messages, for asserting that a
// path was taken.
type logCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logCounter) WithGroup(string) slog.Handler      { return h }

func (h *logCounter) count(substr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// TestSharedEmbeddedServer runs the embedded server with a client port, as
// `lambdaflow run` does for other roles, and connects a second Broker to it
// as an external cluster: appends from one are read by the other, buckets
// are shared, and when the server goes away the client reports it.
func TestSharedEmbeddedServer(t *testing.T) {
	p := testPipeline(t.TempDir(), testTopic("metrics", 1))
	p.Broker.Listen = "127.0.0.1:-1"
	owner := openBroker(t, p, Options{})
	ext := testPipeline(t.TempDir(), testTopic("metrics", 1))
	ext.Broker.URL = "  " + owner.ns.ClientURL() + " ,"
	client := openBroker(t, ext, Options{})
	ctx := ctxT(t, 30*time.Second)

	mustAppend(t, client, "metrics", 0, testEvents("c", 0, 3, base), 0)
	mustAppend(t, owner, "metrics", 0, testEvents("o", 0, 2, base), 3)
	if ids := eventIDs(readAll(t, owner, "metrics", 0)); !reflect.DeepEqual(ids, []string{"c-0", "c-1", "c-2", "o-0", "o-1"}) {
		t.Fatalf("read by the owner: %v", ids)
	}

	kv, err := client.keyValue(ctx, "speed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "checkpoint", []byte("42")); err != nil {
		t.Fatal(err)
	}
	kv2, err := owner.keyValue(ctx, "speed")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv2.Get(ctx, "checkpoint"); err != nil || string(e.Value()) != "42" || kv2.Bucket() != "LF_speed" {
		t.Fatalf("KV shared: %v %v", e, err)
	}
	obj, err := owner.ObjectStore(ctx, "state")
	if err != nil {
		t.Fatal(err)
	}
	if err := obj.Put(ctx, "snap", []byte("state")); err != nil {
		t.Fatal(err)
	}
	if got, err := obj.Get(ctx, "snap"); err != nil || string(got) != "state" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if _, err := obj.Get(ctx, "none"); !errors.Is(err, ErrObjectNotFound) {
		t.Fatalf("Get of a missing object: %v, want ErrObjectNotFound", err)
	}

	r, err := client.Reader(ctx, "metrics", 0, FromEnd())
	if err != nil {
		t.Fatal(err)
	}
	owner.Close()
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := client.Ready(ctx); !errors.Is(err, ErrUnavailable) {
			return fmt.Errorf("Ready with the server gone: %v", err)
		}
		return nil
	})
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := client.Append(short, "metrics", 0, testEvents("c", 3, 1, base)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append with the server gone: %v", err)
	}
	client.Close()
	if _, err := r.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

// TestSeekOffset checks the offset search against a linear scan, with
// entries of uneven size and gaps from deletion at the front and inside.
func TestSeekOffset(t *testing.T) {
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("metrics", 1)), Options{})
	ctx := ctxT(t, 60*time.Second)
	var next int64
	for i := range 100 {
		n := 1 + (i*i)%9
		mustAppend(t, b, "metrics", 0, testEvents("e", int(next), n, base), next)
		next += int64(n)
	}
	st, err := b.js.Stream(ctx, "LF_metrics_0")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(6)); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{7, 8, 9, 40, 41, 99} {
		if err := st.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	// The entries held, by linear scan.
	type ent struct {
		seq      uint64
		off, end int64
	}
	var held []ent
	for _, e := range readAll(t, b, "metrics", 0) {
		held = append(held, ent{e.Seq, e.Offset, e.End()})
	}
	_, p, _ := b.partition("metrics", 0)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for target := int64(-1); target <= next+1; target++ {
		var want uint64
		for _, e := range held {
			if e.off <= target {
				want = e.seq
			}
		}
		m, err := b.seekOffset(ctx, st, p, info.State, next, target)
		if err != nil {
			t.Fatal(err)
		}
		var got uint64
		if m != nil {
			got = m.Sequence
		}
		if got != want {
			t.Fatalf("seekOffset(%d) = seq %d, want %d", target, got, want)
		}
	}
}

// TestMaxBytesIsALimitNotAReservation: topics whose max_bytes add up to far
// more than the disk are created, and keep accepting appends; JetStream
// would otherwise reserve every stream's MaxBytes against the free disk.
func TestMaxBytesIsALimitNotAReservation(t *testing.T) {
	tp := testTopic("big", 4)
	tp.MaxBytes = pipelines.ByteSize(100 << 40) // 100 TiB per partition
	b := openBroker(t, testPipeline(t.TempDir(), tp), Options{})
	off, err := b.Append(context.Background(), "big", 3, testEvents("e", 0, 2, 1))
	if err != nil || off != 0 {
		t.Fatalf("Append: %d, %v", off, err)
	}
	infos, err := b.Topics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if infos[0].MaxBytes != 100<<40 || infos[0].Events != 2 {
		t.Fatalf("topic info %+v", infos[0])
	}
}

// TestReaderAheadReadsEverything reads a partition of many more entries
// than ReaderAhead's bound lets the Reader hold, starting inside an entry,
// and then an entry appended while it waits: every event once, in order.
func TestReaderAheadReadsEverything(t *testing.T) {
	b := openBroker(t, testPipeline(t.TempDir(), testTopic("metrics", 1)), Options{})
	ctx := ctxT(t, 30*time.Second)
	const entries, per = 40, 5
	all := testEvents("e", 0, entries*per+per, base)
	for i := range entries {
		mustAppend(t, b, "metrics", 0, all[i*per:(i+1)*per], int64(i*per))
	}
	r, err := b.ReaderAhead(ctx, "metrics", 0, FromOffset(2), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var read []Entry
	for len(read) == 0 || read[len(read)-1].End() < entries*per {
		e, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("after %d entries: %v", len(read), err)
		}
		read = append(read, e)
	}
	mustAppend(t, b, "metrics", 0, all[entries*per:], entries*per)
	e, err := r.Next(ctx)
	if err != nil {
		t.Fatalf("the entry appended while reading: %v", err)
	}
	read = append(read, e)
	if len(read) != entries+1 || read[0].Offset != 2 {
		t.Fatalf("%d entries, the first at offset %d; want %d from offset 2", len(read), read[0].Offset, entries+1)
	}
	if ids := eventIDs(read); !reflect.DeepEqual(ids, idRange("e", 2, entries*per+per)) {
		t.Fatalf("ids %v", ids)
	}
}
