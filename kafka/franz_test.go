package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdaflow/lambdaflow/broker"
)

// client returns a franz-go client of the test process; closed at cleanup.
func (e *env) client(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.addr), kgo.RequestRetries(3)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

func sample(i int, host string) string {
	return fmt.Sprintf(`{"ts":"2026-01-02T15:04:%02dZ","host":%q,"cpu":%d.5}`, i%60, host, i)
}

func record(part int32, id, value string) *kgo.Record {
	r := &kgo.Record{Topic: "metrics", Partition: part, Value: []byte(value)}
	if id != "" {
		r.Headers = []kgo.RecordHeader{{Key: "id", Value: []byte(id)}}
	}
	return r
}

// TestFranzProduceThenBrowseAndConsume: records produced with ids and
// acks=all are durable at the offsets answered, the log holds them there
// (as the message browser reads it), and a consumer from the beginning
// reads them in offset order with their ids, keys and values.
func TestFranzProduceThenBrowseAndConsume(t *testing.T) {
	e := start(t, "", "")
	cl := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	ctx := context.Background()

	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, record(int32(i%2), fmt.Sprintf("ev-%d", i), sample(i, fmt.Sprintf("h%d", i))))
	}
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	// Each partition's records got offsets 0..4, in the order produced.
	next := map[int32]int64{}
	for _, r := range res {
		if r.Record.Offset != next[r.Record.Partition] {
			t.Errorf("record %s: partition %d offset %d, want %d", r.Record.Headers[0].Value, r.Record.Partition, r.Record.Offset, next[r.Record.Partition])
		}
		next[r.Record.Partition]++
	}
	if next[0] != 5 || next[1] != 5 {
		t.Errorf("per partition %v, want 5 and 5", next)
	}

	// The log has each event at its offset.
	for _, r := range res {
		id := string(r.Record.Headers[0].Value)
		var i int
		fmt.Sscanf(id, "ev-%d", &i)
		entries, err := e.b.Fetch(ctx, "metrics", int(r.Record.Partition), broker.FromOffset(r.Record.Offset), 1)
		if err != nil || len(entries) != 1 || len(entries[0].Events) != 1 {
			t.Fatalf("record %s: log read: %v %v", id, entries, err)
		}
		ev := entries[0].Events[0]
		if ev.ID != id || entries[0].Offset != r.Record.Offset {
			t.Errorf("record %s: log has id %q at offset %d, want it at %d", id, ev.ID, entries[0].Offset, r.Record.Offset)
		}
		if got := ev.Values[1].S; got != fmt.Sprintf("h%d", i) || int(r.Record.Partition) != i%2 {
			t.Errorf("record %s: host %q in partition %d", id, got, r.Record.Partition)
		}
	}

	// A consumer from the beginning reads every record in offset order.
	cons := e.client(kgo.ConsumeTopics("metrics"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consume(t, cons, 10)
	seen := map[int32]int64{}
	for _, r := range got {
		if r.Offset != seen[r.Partition] {
			t.Errorf("partition %d: offset %d, want %d", r.Partition, r.Offset, seen[r.Partition])
		}
		seen[r.Partition]++
		var i int
		fmt.Sscanf(string(r.Headers[0].Value), "ev-%d", &i)
		want := fmt.Sprintf(`{"ts":"2026-01-02T15:04:%02dZ","host":"h%d","cpu":%d.5,"note":null}`, i%60, i, i)
		if string(r.Value) != want || string(r.Key) != fmt.Sprintf("h%d", i) || r.Headers[0].Key != "id" {
			t.Errorf("record at %d/%d: key %q value %s headers %v; want value %s", r.Partition, r.Offset, r.Key, r.Value, r.Headers, want)
		}
	}
}

// consume polls until n records arrived (or fails after 20 s).
func consume(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("consumed %d records, want %d", len(out), n)
	}
	return out
}

// TestFranzInvalidRecord: one invalid record fails its partition's batch
// with INVALID_RECORD and nothing of that batch is written.
func TestFranzInvalidRecord(t *testing.T) {
	e := start(t, "", "")
	cl := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(50*time.Millisecond))
	ctx := context.Background()
	// Three records in one batch: the second has a string for cpu.
	recs := []*kgo.Record{
		record(0, "a", sample(1, "h")),
		record(0, "b", `{"ts":"2026-01-02T15:04:05Z","host":"h","cpu":"high"}`),
		record(0, "c", sample(3, "h")),
	}
	res := cl.ProduceSync(ctx, recs...)
	for i, r := range res {
		if !errors.Is(r.Err, kerr.InvalidRecord) {
			t.Errorf("record %d: err %v, want INVALID_RECORD", i, r.Err)
		}
	}
	bd, err := e.b.Bounds(ctx, "metrics", 0)
	if err != nil || bd.End != 0 {
		t.Fatalf("partition 0 after the refused batch: %+v %v; want nothing written", bd, err)
	}
	// A valid record afterwards lands at offset 0.
	ok := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	r, err := ok.ProduceSync(ctx, record(0, "d", sample(4, "h"))).First()
	if err != nil || r.Offset != 0 {
		t.Fatalf("valid record: offset %d err %v; want offset 0", r.Offset, err)
	}
}

// TestFranzAndHTTPInterleave: events published over HTTP and over Kafka
// share one sequence of offsets per partition, and a Kafka consumer reads
// the HTTP ones at theirs.
func TestFranzAndHTTPInterleave(t *testing.T) {
	e := start(t, "", "")
	cl := e.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := context.Background()
	post := func(body string) string {
		resp, err := http.Post(e.http.URL+"/v1/topics/metrics/events", "application/x-ndjson", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("POST: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	// "h" hashes to partition 1 of 2 (FNV-1a), like every event below.
	const host = "h"
	if got := post(`{"id":"http-0","ts":"2026-01-02T15:04:00Z","host":"h","cpu":1}`); got != `{"accepted":1,"results":[{"partition":1,"offset":0,"duplicate":false}]}`+"\n" {
		t.Fatalf("POST answered %s", got)
	}
	r, err := cl.ProduceSync(ctx, record(1, "kafka-1", sample(1, host))).First()
	if err != nil || r.Offset != 1 {
		t.Fatalf("produce: offset %d err %v; want 1", r.Offset, err)
	}
	if got := post(`{"id":"http-2","ts":"2026-01-02T15:04:02Z","host":"h","cpu":2}`); !strings.Contains(got, `"offset":2`) {
		t.Fatalf("POST answered %s", got)
	}
	// Dedup spans both: the HTTP id produced again over Kafka is not appended.
	r, err = cl.ProduceSync(ctx, record(1, "http-2", sample(2, host))).First()
	if err != nil || r.Offset != 2 {
		t.Fatalf("duplicate produce: offset %d err %v; want the original 2", r.Offset, err)
	}
	cons := e.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"metrics": {1: kgo.NewOffset().AtStart()}}))
	got := consume(t, cons, 3)
	for i, want := range []string{"http-0", "kafka-1", "http-2"} {
		if got[i].Offset != int64(i) || string(got[i].Headers[0].Value) != want {
			t.Errorf("offset %d: got %q at %d", i, got[i].Headers[0].Value, got[i].Offset)
		}
	}
	bd, _ := e.b.Bounds(ctx, "metrics", 1)
	if bd.End != 3 {
		t.Errorf("partition 1 ends at %d, want 3", bd.End)
	}
}
