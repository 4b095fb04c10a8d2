package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func TestMain(m *testing.M) {
	testenv.VerifyNoLeaks(m)
}

// testSchema is the reference event: six fields of five types.
func testSchema() event.Schema {
	return event.Schema{
		{Name: "ts", Type: event.TypeTimestamp, Required: true},
		{Name: "host", Type: event.TypeString, Required: true},
		{Name: "region", Type: event.TypeString},
		{Name: "cpu", Type: event.TypeDouble},
		{Name: "bytes", Type: event.TypeLong},
		{Name: "up", Type: event.TypeBool},
	}
}

// testTopic is a topic with the defaults the loader would fill in.
func testTopic(name string, partitions int) pipelines.Topic {
	return pipelines.Topic{
		Name:       name,
		Partitions: partitions,
		Retention:  pipelines.Duration(168 * time.Hour),
		Key:        "host",
		Time:       "ts",
		Schema:     testSchema(),
	}
}

func testPipeline(dir string, topics ...pipelines.Topic) *pipelines.Pipeline {
	return &pipelines.Pipeline{
		Version: 1,
		Name:    "test",
		DataDir: dir,
		Broker:  pipelines.Broker{Replicas: 1, Sync: "always", Prefix: "LF"},
		Topics:  topics,
	}
}

// testEvent is event i of a deterministic stream: id "<prefix>-<i>", event
// time base+i ms.
func testEvent(prefix string, i int, base int64) event.Event {
	t := base + int64(i)*1000
	return event.Event{
		ID:   fmt.Sprintf("%s-%d", prefix, i),
		Time: t,
		Values: []event.Value{
			{I: t, Valid: true},
			{S: fmt.Sprintf("host-%d", i%7), Valid: true},
			{S: "eu-west", Valid: true},
			{F: float64(i) / 4, Valid: true},
			{I: int64(i) * 1000, Valid: true},
			{I: int64(i % 2), Valid: true},
		},
	}
}

func testEvents(prefix string, from, n int, base int64) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = testEvent(prefix, from+i, base)
	}
	return out
}

// openBroker opens a broker on p, creates its topics and closes it at the
// end of the test.
func openBroker(t testing.TB, p *pipelines.Pipeline, opts Options) *Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	b, err := Open(ctx, p, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.EnsureTopics(ctx); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	return b
}

// readAll reads a partition from the start up to its end offset.
func readAll(t testing.TB, b *Broker, topic string, part int) []Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	infos, err := b.Topics(ctx)
	if err != nil {
		t.Fatalf("Topics: %v", err)
	}
	var end int64 = -1
	for _, ti := range infos {
		if ti.Name == topic {
			end = ti.Partitions[part].EndOffset
		}
	}
	r, err := b.Reader(ctx, topic, part, FromStart())
	if err != nil {
		t.Fatalf("Reader: %v", err)
	}
	defer r.Close()
	var out []Entry
	for len(out) == 0 || out[len(out)-1].End() < end {
		if end == 0 {
			break
		}
		e, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d entries (end %d): %v", len(out), end, err)
		}
		out = append(out, e)
	}
	return out
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
