package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
	"github.com/nats-io/nats-server/v2/server"
)

// newRunner builds a runner on a fresh broker for p with target and clock.
func newRunner(t *testing.T, p *pipelines.Pipeline, target sinks.Target, clock *fakeClock, opts sinks.Options) (*sinks.Runner, *broker.Broker) {
	t.Helper()
	b := openBroker(t, p)
	return newRunnerOn(t, p, b, target, clock, opts), b
}

func newRunnerOn(t *testing.T, p *pipelines.Pipeline, b *broker.Broker, target sinks.Target, clock *fakeClock, opts sinks.Options) *sinks.Runner {
	t.Helper()
	if clock != nil {
		opts.Now, opts.After = clock.Now, clock.After
	}
	if opts.Logger == nil {
		opts.Logger = sinktest.Logger(t)
	}
	if opts.Owner == nil {
		opts.Owner = sinktest.Join(t, b)
	}
	r, err := sinks.NewRunner(p, &p.Sinks[0], target, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBatchBySize(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{MaxRows: 10, MaxWait: pipelines.Duration(time.Hour), MaxRetries: 3})
	fake, clock := newFake(), newClock()
	r, b := newRunner(t, p, fake, clock, sinks.Options{})
	appendEvents(t, b, "t", 0, events(0, 35))
	run(t, r)
	waitCommitted(t, b, "t", 0, 30)
	if batches, _, _ := fake.snapshot(); !slices.Equal(batches, []int{10, 10, 10}) {
		t.Fatalf("batches %v, want three of 10 (the rest waits for max_wait)", batches)
	}
	// The 5 left flush when max_wait passes, and not before.
	asked := clock.waitAsked(t, 1)
	if asked[len(asked)-1] != time.Hour {
		t.Fatalf("timer of %v, want max_wait 1h", asked[len(asked)-1])
	}
	clock.Advance(time.Hour)
	waitCommitted(t, b, "t", 0, 35)
	batches, rows, prepares := fake.snapshot()
	if !slices.Equal(batches, []int{10, 10, 10, 5}) || rows != 35 {
		t.Errorf("batches %v with %d rows, want [10 10 10 5] and 35", batches, rows)
	}
	if !slices.Equal(prepares, []string{"t"}) {
		t.Errorf("Prepare called for %v, want once for t", prepares)
	}
}

func TestBatchByTime(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{MaxRows: 1000, MaxWait: pipelines.Duration(500 * time.Millisecond), MaxRetries: 3})
	fake, clock := newFake(), newClock()
	r, b := newRunner(t, p, fake, clock, sinks.Options{})
	run(t, r)
	appendEvents(t, b, "t", 0, events(0, 3))
	clock.waitAsked(t, 1) // the batch timer started with the first row
	appendEvents(t, b, "t", 0, events(3, 2))
	testenv.CheckFor(t, 10*time.Second, 25*time.Millisecond, func() error {
		// Both entries are read into the pending batch: nothing written yet.
		if batches, _, _ := fake.snapshot(); len(batches) != 0 {
			return fmt.Errorf("written before max_wait: %v", batches)
		}
		return nil
	})
	clock.Advance(499 * time.Millisecond)
	if batches, _, _ := fake.snapshot(); len(batches) != 0 {
		t.Fatalf("written before max_wait: %v", batches)
	}
	clock.Advance(time.Millisecond)
	// The second entry may still be on its way to the batch when the timer
	// fires; either way all 5 land, the first timer covering at least 3.
	testenv.CheckFor(t, 10*time.Second, 25*time.Millisecond, func() error {
		if _, rows, _ := fake.snapshot(); rows != 5 {
			clock.Advance(500 * time.Millisecond)
			return fmt.Errorf("%d rows written, want 5", rows)
		}
		return nil
	})
	if batches, _, _ := fake.snapshot(); batches[0] < 3 {
		t.Errorf("first batch of %d rows, want at least the 3 of the first entry", batches[0])
	}
	waitCommitted(t, b, "t", 0, 5)
}

func TestRowErrorsDeadLettered(t *testing.T) {
	p := testPipeline(t, 2, pipelines.SinkBatch{MaxRows: 8, MaxWait: pipelines.Duration(time.Millisecond), MaxRetries: 3})
	fake := newFake()
	fake.fail = func(rows []sinks.Row) error {
		var re sinks.RowErrors
		for i, r := range rows {
			if r.Values[1].S == "bad" {
				re = append(re, sinks.RowError{Index: i, Err: errors.New("value bad refused")})
			}
		}
		if re == nil {
			return nil
		}
		return re
	}
	reg := prometheus.NewRegistry()
	r, b := newRunner(t, p, fake, nil, sinks.Options{Registerer: reg})
	appendEvents(t, b, "t", 0, events(0, 20, 3, 11, 12))
	appendEvents(t, b, "t", 1, events(100, 5, 104))
	stop := run(t, r)
	waitCommitted(t, b, "t", 0, 20)
	waitCommitted(t, b, "t", 1, 5)
	stop()
	if _, rows, _ := fake.snapshot(); rows != 21 {
		t.Errorf("%d rows written, want 21", rows)
	}
	dls, err := r.DeadLetters(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, dl := range dls {
		got = append(got, fmt.Sprintf("%s/%d@%d %s", dl.Source, dl.Partition, dl.Offset, dl.Error))
		if !strings.Contains(string(dl.Record), `"s":"bad"`) || !strings.Contains(string(dl.Record), `"_id":"e`) {
			t.Errorf("record %s lacks the row", dl.Record)
		}
	}
	slices.Sort(got)
	want := []string{"t/0@11 value bad refused", "t/0@12 value bad refused", "t/0@3 value bad refused", "t/1@4 value bad refused"}
	if !slices.Equal(got, want) {
		t.Errorf("dead letters %q, want %q", got, want)
	}
	if n := sinktest.MetricSum(t, reg, "lambdaflow_sink_dead_letters_total"); n != 4 {
		t.Errorf("dead_letters_total %v, want 4", n)
	}
	if n := sinktest.MetricSum(t, reg, "lambdaflow_sink_rows_written_total"); n != 21 {
		t.Errorf("rows_written_total %v, want 21", n)
	}
}

func TestPermanentBatchDeadLettered(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{MaxRows: 100, MaxWait: pipelines.Duration(time.Millisecond), MaxRetries: 3})
	fake := newFake()
	fake.fail = func(rows []sinks.Row) error {
		if rows[0].Values[1].S == "bad" {
			return fmt.Errorf("mapping refused: %w", sinks.ErrPermanent)
		}
		return nil
	}
	r, b := newRunner(t, p, fake, nil, sinks.Options{})
	stop := run(t, r)
	appendEvents(t, b, "t", 0, events(0, 4, 0))
	waitCommitted(t, b, "t", 0, 4)
	appendEvents(t, b, "t", 0, events(4, 3))
	waitCommitted(t, b, "t", 0, 7)
	stop()
	dls, err := r.DeadLetters(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 4 || !strings.Contains(dls[0].Error, "mapping refused") {
		t.Errorf("dead letters %+v, want the 4 rows of the refused batch", dls)
	}
	if _, rows, _ := fake.snapshot(); rows != 3 {
		t.Errorf("%d rows written, want 3", rows)
	}
}

func TestRetryBackoffAndHealth(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{MaxRows: 100, MaxWait: pipelines.Duration(time.Millisecond), MaxRetries: 3})
	fake, clock := newFake(), newClock()
	failures := 5
	fake.fail = func(rows []sinks.Row) error {
		if failures > 0 {
			failures--
			return errors.New("connection refused")
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	r, b := newRunner(t, p, fake, clock, sinks.Options{
		Registerer: reg,
		Jitter:     func(d time.Duration) time.Duration { return d }, // the ceiling, to check it
	})
	run(t, r)
	appendEvents(t, b, "t", 0, events(0, 3))
	// After #1 is the batch timer; each failure then sleeps a backoff.
	clock.waitAsked(t, 1)
	clock.Advance(time.Millisecond)
	for i := 1; i <= 5; i++ {
		asked := clock.waitAsked(t, 1+i)
		want := sinks.DefaultBackoffBase << (i - 1)
		if got := asked[i]; got != want {
			t.Errorf("backoff %d = %v, want %v", i, got, want)
		}
		up := sinktest.MetricSum(t, reg, "lambdaflow_sink_up")
		err := r.Health(context.Background())
		if i < 3 && (err != nil || up != 1) {
			t.Errorf("after %d failures: Health %v, up %v; want healthy (max_retries 3)", i, err, up)
		}
		if i >= 3 && (err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "sink s") || up != 0) {
			t.Errorf("after %d failures: Health %v, up %v; want unhealthy naming sink s and the cause", i, err, up)
		}
		clock.Advance(want)
	}
	waitCommitted(t, b, "t", 0, 3)
	if err := r.Health(context.Background()); err != nil {
		t.Errorf("Health after recovery: %v", err)
	}
	if up := sinktest.MetricSum(t, reg, "lambdaflow_sink_up"); up != 1 {
		t.Errorf("lambdaflow_sink_up %v after recovery, want 1", up)
	}
	if n := sinktest.MetricSum(t, reg, "lambdaflow_sink_retries_total"); n != 5 {
		t.Errorf("retries_total %v, want 5", n)
	}
	if batches, rows, _ := fake.snapshot(); rows != 3 || len(batches) != 1 {
		t.Errorf("batches %v, %d rows; want one batch of 3", batches, rows)
	}
}

func TestPrepareFailureRetriedNotDeadLettered(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{MaxRows: 100, MaxWait: pipelines.Duration(time.Millisecond), MaxRetries: 2})
	fake := &prepFail{fakeTarget: newFake(), left: 3}
	r, b := newRunner(t, p, fake, nil, sinks.Options{BackoffBase: time.Millisecond, BackoffCap: time.Millisecond})
	run(t, r)
	appendEvents(t, b, "t", 0, events(0, 5))
	waitCommitted(t, b, "t", 0, 5)
	if dls, _ := r.DeadLetters(context.Background(), 10); len(dls) != 0 {
		t.Errorf("dead letters %v: a failing Prepare must not dead-letter", dls)
	}
	if _, rows, _ := fake.snapshot(); rows != 5 {
		t.Errorf("%d rows, want 5", rows)
	}
}

// prepFail fails Prepare permanently a few times (a table not created yet).
type prepFail struct {
	*fakeTarget
	left int
}

func (f *prepFail) Prepare(ctx context.Context, t sinks.Table) error {
	if f.left > 0 {
		f.left--
		return fmt.Errorf("table missing and create is false: %w", sinks.ErrPermanent)
	}
	return f.fakeTarget.Prepare(ctx, t)
}

func TestSoftStopFlushes(t *testing.T) {
	p := testPipeline(t, 2, pipelines.SinkBatch{MaxRows: 1000, MaxWait: pipelines.Duration(time.Hour), MaxRetries: 3})
	fake, clock := newFake(), newClock()
	r, b := newRunner(t, p, fake, clock, sinks.Options{})
	stop := run(t, r)
	appendEvents(t, b, "t", 0, events(0, 7))
	appendEvents(t, b, "t", 1, events(10, 4))
	clock.waitAsked(t, 2) // both partitions hold a pending batch
	if _, rows, _ := fake.snapshot(); rows != 0 {
		t.Fatalf("%d rows written before max_wait", rows)
	}
	stop()
	if _, rows, _ := fake.snapshot(); rows != 11 {
		t.Errorf("%d rows written by the soft stop, want 11", rows)
	}
	if c0, c1 := committed(t, b, "sink.s", "t", 0), committed(t, b, "sink.s", "t", 1); c0 != 7 || c1 != 4 {
		t.Errorf("committed %d and %d after the soft stop, want 7 and 4", c0, c1)
	}
}

func TestResumeFromCommitted(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{MaxRows: 4, MaxWait: pipelines.Duration(time.Millisecond), MaxRetries: 3})
	b := openBroker(t, p)
	fake := newFake()
	appendEvents(t, b, "t", 0, events(0, 10))
	// A commit inside an entry: the runner resumes at that very event.
	if err := b.Commit(context.Background(), "sink.s", "t", 0, 6, 0); err != nil {
		t.Fatal(err)
	}
	r := newRunnerOn(t, p, b, fake, nil, sinks.Options{})
	stop := run(t, r)
	waitCommitted(t, b, "t", 0, 10)
	stop()
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.rows) != 4 || fake.rows["e6"] == nil || fake.rows["e5"] != nil {
		t.Errorf("rows %v, want e6…e9", fake.rows)
	}
}

func TestHealthPing(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{})
	fake := newFake()
	fake.pingErr = errors.New("dial tcp: connection refused")
	r, _ := newRunner(t, p, fake, nil, sinks.Options{})
	err := r.Health(context.Background())
	if err == nil || !strings.Contains(err.Error(), "sink s (fake)") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Health = %v, want an error naming the sink and the cause", err)
	}
	fake.mu.Lock()
	fake.pingErr = nil
	fake.mu.Unlock()
	if err := r.Health(context.Background()); err != nil {
		t.Errorf("Health = %v, want nil", err)
	}
}

func TestNewRunnerRejects(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{})
	f := func(from []string, wantErr string) {
		t.Helper()
		spec := p.Sinks[0]
		spec.From = from
		_, err := sinks.NewRunner(p, &spec, newFake(), (*broker.Broker)(nil), sinks.Options{})
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("NewRunner(from %v) = %v, want an error containing %q", from, err, wantErr)
		}
	}
	f(nil, "from is empty")
	f([]string{"nope"}, `from "nope": no such topic or view`)
	f([]string{"t", "t"}, "listed twice")
}

func TestMetricsShared(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{})
	p.Sinks = append(p.Sinks, pipelines.Sink{Name: "s2", Type: "fake", From: []string{"t"}})
	b := openBroker(t, p)
	reg := prometheus.NewRegistry()
	for i := range p.Sinks {
		if _, err := sinks.NewRunner(p, &p.Sinks[i], newFake(), b, sinks.Options{Registerer: reg}); err != nil {
			t.Fatalf("runner %d on a shared registry: %v", i, err)
		}
	}
	if up := sinktest.MetricSum(t, reg, "lambdaflow_sink_up"); up != 2 {
		t.Errorf("lambdaflow_sink_up sums to %v, want 2 series of 1", up)
	}
}

// concurrencyProbe counts Writes in progress at once; when it is a
// ConcurrentWriter, each Write waits (bounded) for another to overlap it.
type concurrencyProbe struct {
	*fakeTarget
	concurrent bool
	mu         sync.Mutex
	inFlight   int
	maxSeen    int
	overlap    chan struct{}
}

func (c *concurrencyProbe) ConcurrentWrites() bool { return c.concurrent }

func (c *concurrencyProbe) Write(ctx context.Context, t sinks.Table, rows []sinks.Row) error {
	c.mu.Lock()
	c.inFlight++
	c.maxSeen = max(c.maxSeen, c.inFlight)
	if c.inFlight == 2 {
		close(c.overlap)
	}
	c.mu.Unlock()
	select {
	case <-c.overlap:
	case <-time.After(200 * time.Millisecond):
	}
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	return c.fakeTarget.Write(ctx, t, rows)
}

func TestConcurrentWriter(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		t.Run(fmt.Sprintf("concurrent=%v", concurrent), func(t *testing.T) {
			p := testPipeline(t, 2, pipelines.SinkBatch{MaxRows: 5, MaxWait: pipelines.Duration(time.Millisecond), MaxRetries: 3})
			probe := &concurrencyProbe{fakeTarget: newFake(), concurrent: concurrent, overlap: make(chan struct{})}
			r, b := newRunner(t, p, probe, nil, sinks.Options{})
			appendEvents(t, b, "t", 0, events(0, 5))
			appendEvents(t, b, "t", 1, events(5, 5))
			stop := run(t, r)
			waitCommitted(t, b, "t", 0, 5)
			waitCommitted(t, b, "t", 1, 5)
			stop()
			probe.mu.Lock()
			defer probe.mu.Unlock()
			if want := map[bool]int{false: 1, true: 2}[concurrent]; probe.maxSeen != want {
				t.Errorf("%d writes at once, want %d", probe.maxSeen, want)
			}
		})
	}
}

func TestBrokerClosedStopsRun(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{MaxRows: 10, MaxWait: pipelines.Duration(time.Millisecond), MaxRetries: 3})
	r, b := newRunner(t, p, newFake(), nil, sinks.Options{})
	appendEvents(t, b, "t", 0, events(0, 3))
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	waitCommitted(t, b, "t", 0, 3)
	b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Run = %v, want an error wrapping broker.ErrClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run kept going after the broker closed")
	}
}

// An entry the log can no longer decode (a field changed type) is
// dead-lettered without a record, and the sink goes on.
func TestUndecodableEntrySkipped(t *testing.T) {
	p := testPipeline(t, 1, pipelines.SinkBatch{MaxRows: 10, MaxWait: pipelines.Duration(time.Millisecond), MaxRetries: 3})
	b := openBroker(t, p)
	appendEvents(t, b, "t", 0, events(0, 3))
	b.Close()

	p.Topics[0].Schema[1].Type = event.TypeLong
	b = openBroker(t, p)
	appendEvents(t, b, "t", 0, []event.Event{{ID: "new", Values: []event.Value{{I: 9, Valid: true}, {I: 1, Valid: true}}}})
	fake := newFake()
	r := newRunnerOn(t, p, b, fake, nil, sinks.Options{})
	stop := run(t, r)
	waitCommitted(t, b, "t", 0, 4)
	stop()
	if _, rows, _ := fake.snapshot(); rows != 1 {
		t.Errorf("%d rows written, want the 1 decodable", rows)
	}
	dls, err := r.DeadLetters(context.Background(), 10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("DeadLetters = %v, %v; want 1", dls, err)
	}
	if string(dls[0].Record) != "null" || dls[0].Offset != 0 {
		t.Errorf("dead letter %+v, want a null record at offset 0", dls[0])
	}
	if !strings.Contains(dls[0].Error, "does not match") && !strings.Contains(dls[0].Error, "corrupt") {
		t.Errorf("dead letter error %q, want the decoder's", dls[0].Error)
	}
}

// taggedTarget writes through a shared fake and records which partitions
// this runner wrote.
type taggedTarget struct {
	*fakeTarget
	mu    sync.Mutex
	parts map[int]int // partition -> rows written
}

func (t *taggedTarget) Write(ctx context.Context, tb sinks.Table, rows []sinks.Row) error {
	err := t.fakeTarget.Write(ctx, tb, rows)
	if err == nil {
		t.mu.Lock()
		for _, r := range rows {
			t.parts[r.Partition]++
		}
		t.mu.Unlock()
	}
	return err
}

func (t *taggedTarget) written() map[int]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.parts)
}

// TestSinkSharedByTwoProcesses: two processes run the same sink on one
// log; each partition is delivered by one of them, and when one stops its
// partitions move to the other, which goes on from the committed offsets:
// every row lands, in the shared database, once.
func TestSinkSharedByTwoProcesses(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	p := testPipeline(t, 4, pipelines.SinkBatch{MaxRows: 10, MaxWait: pipelines.Duration(20 * time.Millisecond), MaxRetries: 3})
	p.Broker.URL = ns.ClientURL()
	b1, b2 := openBroker(t, p), openBroker(t, p)
	db := newFake()
	t1 := &taggedTarget{fakeTarget: db, parts: map[int]int{}}
	t2 := &taggedTarget{fakeTarget: db, parts: map[int]int{}}
	r1 := newRunnerOn(t, p, b1, t1, nil, sinks.Options{})
	r2 := newRunnerOn(t, p, b2, t2, nil, sinks.Options{})
	ctx1, stop1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- r1.Run(ctx1) }()
	defer stop1()
	run(t, r2)
	// Both take part, two partitions each, once each has seen the other
	// (until then a partition may still move, which the next check would
	// see as written by both).
	testenv.CheckFor(t, 20*time.Second, 25*time.Millisecond, func() error {
		cl, err := b1.Cluster(context.Background())
		if err != nil {
			return err
		}
		var owns []int
		for _, n := range cl.Nodes {
			owns = append(owns, len(n.Owns["sink.s"]))
		}
		if !slices.Equal(owns, []int{2, 2}) {
			return fmt.Errorf("partitions of sink.s owned per process: %v", owns)
		}
		return nil
	})

	for part := range 4 {
		appendEvents(t, b1, "t", part, events(part*1000, 50))
	}
	for part := range 4 {
		waitCommitted(t, b1, "t", part, 50)
	}
	w1, w2 := t1.written(), t2.written()
	for part := range 4 {
		if (w1[part] > 0) == (w2[part] > 0) {
			t.Fatalf("partition %d written by both or neither: %v / %v", part, w1, w2)
		}
	}
	if len(w1) == 0 || len(w2) == 0 {
		t.Fatalf("one process delivers everything: %v / %v", w1, w2)
	}

	// The first stops softly; the second takes its partitions.
	stop1()
	if err := <-done1; err != nil {
		t.Fatal(err)
	}
	for part := range 4 {
		appendEvents(t, b2, "t", part, events(part*1000+50, 30))
	}
	for part := range 4 {
		waitCommitted(t, b2, "t", part, 80)
	}
	after := t2.written()
	for part := range 4 {
		if after[part]-w2[part] != 30 {
			t.Errorf("partition %d: the remaining process wrote %d rows after the move, want 30", part, after[part]-w2[part])
		}
	}
	if _, rows, _ := db.snapshot(); rows != 4*80 {
		t.Fatalf("%d rows in the database, want %d", rows, 4*80)
	}
}
