package sinks_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/brokertest"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testPipeline has one topic "t" (n long, s string) of parts partitions and
// one sink "s" from it.
func testPipeline(t *testing.T, parts int, batch pipelines.SinkBatch) *pipelines.Pipeline {
	return &pipelines.Pipeline{
		Version: 1, Name: "test", DataDir: t.TempDir(),
		Broker: pipelines.Broker{Replicas: 1, Sync: "always", Prefix: "LF"},
		Topics: []pipelines.Topic{{
			Name: "t", Partitions: parts, Retention: pipelines.Duration(time.Hour),
			Schema: event.Schema{
				{Name: "n", Type: event.TypeLong, Required: true},
				{Name: "s", Type: event.TypeString},
			},
		}},
		Sinks: []pipelines.Sink{{Name: "s", Type: "fake", From: []string{"t"}, Create: true, Batch: batch}},
	}
}

// openBroker opens an embedded broker holding every log topic of p.
func openBroker(t *testing.T, p *pipelines.Pipeline) *broker.Broker {
	t.Helper()
	bp := *p
	bp.Topics = p.LogTopics()
	bp.Views, bp.Sinks = nil, nil
	return brokertest.Open(t, &bp, broker.Options{})
}

func events(from, n int, bad ...int) []event.Event {
	out := make([]event.Event, n)
	for i := range n {
		k := from + i
		s := fmt.Sprintf("v%d", k)
		if slices.Contains(bad, k) {
			s = "bad"
		}
		out[i] = event.Event{ID: fmt.Sprintf("e%d", k), Time: int64(k), Values: []event.Value{
			{I: int64(k), Valid: true}, {S: s, Valid: true},
		}}
	}
	return out
}

func appendEvents(t *testing.T, b *broker.Broker, topic string, part int, evs []event.Event) {
	t.Helper()
	if _, err := b.Append(context.Background(), topic, part, evs); err != nil {
		t.Fatal(err)
	}
}

func committed(t *testing.T, b *broker.Broker, consumer, topic string, part int) int64 {
	t.Helper()
	off, _, err := b.Committed(context.Background(), consumer, topic, part)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

func waitCommitted(t *testing.T, b *broker.Broker, topic string, part int, want int64) {
	t.Helper()
	testenv.CheckFor(t, 20*time.Second, 25*time.Millisecond, func() error {
		if got := committed(t, b, "sink.s", topic, part); got != want {
			return fmt.Errorf("committed %d, want %d", got, want)
		}
		return nil
	})
}

// fakeTarget records what the runner asks of it. Its rows are upserted by
// their first value's text (the key in these tests is _id, the last column).
type fakeTarget struct {
	mu       sync.Mutex
	prepares []string
	batches  []int // sizes of successful writes
	rows     map[string][]event.Value
	// fail, when set, decides the outcome of a write before it happens.
	fail    func(rows []sinks.Row) error
	pingErr error
}

func newFake() *fakeTarget { return &fakeTarget{rows: make(map[string][]event.Value)} }

func (f *fakeTarget) Prepare(ctx context.Context, t sinks.Table) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prepares = append(f.prepares, t.Name)
	return nil
}

func (f *fakeTarget) Write(ctx context.Context, t sinks.Table, rows []sinks.Row) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	var err error
	if fail != nil {
		err = fail(rows)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var skip map[int]bool
	if re, ok := err.(sinks.RowErrors); ok {
		skip = make(map[int]bool)
		for _, e := range re {
			skip[e.Index] = true
		}
	} else if err != nil {
		return err
	}
	key := t.Columns.Index(event.ColID)
	for i, r := range rows {
		if !skip[i] {
			f.rows[r.Values[key].S] = append([]event.Value(nil), r.Values...)
		}
	}
	f.batches = append(f.batches, len(rows))
	return err
}

func (f *fakeTarget) Ping(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pingErr
}

func (f *fakeTarget) Close() error { return nil }

func (f *fakeTarget) snapshot() (batches []int, rows int, prepares []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches), len(f.rows), slices.Clone(f.prepares)
}

// fakeClock is the runner's timer in tests: After registers a waiter that
// fires only when the test advances the clock.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	asked   []time.Duration // every duration passed to After
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.asked = append(c.asked, d)
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock and fires the waiters due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// waitAsked waits until After has been called n times in all and returns
// the durations asked.
func (c *fakeClock) waitAsked(t *testing.T, n int) []time.Duration {
	t.Helper()
	var out []time.Duration
	testenv.CheckFor(t, 20*time.Second, 25*time.Millisecond, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.asked) < n {
			return fmt.Errorf("After called %d times, want %d", len(c.asked), n)
		}
		out = slices.Clone(c.asked)
		return nil
	})
	return out
}

// run starts r and returns a function that stops it and waits.
func run(t *testing.T, r *sinks.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
