package sinktest

import (
	"context"
	"fmt"
	"log/slog"
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
)

// Names of the suite's log topics and its sink.
const (
	topicName = "events"
	viewName  = "by_host"
	sinkName  = "conformance"
)

// env is one case: a pipeline, its embedded broker and the harness's sink.
type env struct {
	t    *testing.T
	h    Harness
	p    *pipelines.Pipeline
	spec *pipelines.Sink
	b    *broker.Broker
	// end is the next offset of each partition of each topic appended to.
	end map[string][]int64
}

func newEnv(t *testing.T, h Harness, topic pipelines.Topic) *env {
	t.Helper()
	spec := h.Sink(t)
	spec.Name = sinkName
	spec.From = []string{topicName, viewName}
	spec.Create = true
	spec.Batch = pipelines.SinkBatch{MaxRows: 64, MaxWait: pipelines.Duration(20 * time.Millisecond), MaxRetries: 2}
	p := &pipelines.Pipeline{
		Version: 1,
		Name:    "sinktest",
		DataDir: t.TempDir(),
		Broker:  pipelines.Broker{Replicas: 1, Sync: "always", Prefix: "LF"},
		Topics:  []pipelines.Topic{topic},
		Views:   []pipelines.View{hostView()},
		Sinks:   []pipelines.Sink{spec},
	}
	e := &env{t: t, h: h, p: p, spec: &p.Sinks[0], end: make(map[string][]int64)}
	e.openBroker()
	t.Cleanup(func() { e.b.Close() })
	return e
}

// openBroker opens the embedded broker on the pipeline's data dir and
// creates every log topic: the user topic, the view's and the sink's
// dead-letter topic.
func (e *env) openBroker() {
	e.t.Helper()
	// The broker is given every log topic as a user topic, so that the
	// suite does not depend on which of them the broker derives itself.
	bp := *e.p
	bp.Topics = e.p.LogTopics()
	bp.Views, bp.Sinks = nil, nil
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Open(ctx, &bp, broker.Options{Logger: e.logger()})
	if err != nil {
		e.t.Fatalf("broker: %v", err)
	}
	if err := b.EnsureTopics(ctx); err != nil {
		b.Close()
		e.t.Fatalf("broker: %v", err)
	}
	e.b = b
}

// reopen closes the broker and opens it on the pipeline as it is now (after
// a schema change).
func (e *env) reopen() {
	e.t.Helper()
	e.b.Close()
	e.openBroker()
}

func (e *env) logger() *slog.Logger { return Logger(e.t) }

func (e *env) topic(name string) pipelines.Topic {
	t, _, ok := e.p.SourceTopic(name)
	if !ok {
		e.t.Fatalf("no topic %q", name)
	}
	return t
}

// append appends events to a partition of a topic, in entries of at most
// 50 events, and returns the offset of the first.
func (e *env) append(topic string, part int, events []event.Event) int64 {
	e.t.Helper()
	if e.end[topic] == nil {
		e.end[topic] = make([]int64, max(e.topic(topic).Partitions, 1))
	}
	first := int64(-1)
	for len(events) > 0 {
		n := min(len(events), 50)
		off, err := e.b.Append(context.Background(), topic, part, events[:n])
		if err != nil {
			e.t.Fatalf("append to %s/%d: %v", topic, part, err)
		}
		if first < 0 {
			first = off
		}
		e.end[topic][part] = off + int64(n)
		events = events[n:]
	}
	return first
}

// target opens a target; it is closed at the end of the case unless the
// caller closes it first.
func (e *env) target() sinks.Target {
	e.t.Helper()
	tg := e.h.NewTarget(e.t, e.p, e.spec)
	var once sync.Once
	c := &closeOnce{Target: tg, once: &once}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// closeOnce lets the suite close a target early and again at cleanup.
type closeOnce struct {
	sinks.Target
	once *sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.Target.Close() })
	return c.err
}

// running is a Runner started by start.
type running struct {
	r      *sinks.Runner
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func (e *env) newRunner(tg sinks.Target) (*sinks.Runner, *prometheus.Registry) {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	r, err := sinks.NewRunner(e.p, e.spec, unwrap(tg), e.b, sinks.Options{
		Owner:       Join(e.t, e.b),
		Logger:      e.logger(),
		Registerer:  reg,
		BackoffBase: 20 * time.Millisecond,
		BackoffCap:  500 * time.Millisecond,
		StopTimeout: 20 * time.Second,
	})
	if err != nil {
		e.t.Fatalf("NewRunner: %v", err)
	}
	return r, reg
}

// unwrap hands the runner the harness's own target, so that type
// assertions in the harness and the target's own optional interfaces work.
func unwrap(tg sinks.Target) sinks.Target {
	if c, ok := tg.(*closeOnce); ok {
		return c.Target
	}
	return tg
}

// start runs a runner for tg until stop is called; the case fails if Run
// returns an error.
func (e *env) start(tg sinks.Target) *running {
	e.t.Helper()
	r, reg := e.newRunner(tg)
	ctx, cancel := context.WithCancel(context.Background())
	rn := &running{r: r, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { rn.done <- r.Run(ctx) }()
	e.t.Cleanup(func() { rn.stop(e.t) })
	return rn
}

// stop cancels the runner and waits for its soft stop.
func (rn *running) stop(t *testing.T) {
	t.Helper()
	if rn.cancel == nil {
		return
	}
	rn.cancel()
	rn.cancel = nil
	select {
	case err := <-rn.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("Run did not return within 60s of its context's end")
	}
}

// waitCommitted waits until the sink's consumer has committed every event
// appended to every source.
func (e *env) waitCommitted(timeout time.Duration) {
	e.t.Helper()
	testenv.CheckFor(e.t, timeout, 25*time.Millisecond, func() error {
		for topic, ends := range e.end {
			if strings.HasSuffix(topic, pipelines.DeadLetterSuffix) {
				continue
			}
			for part, end := range ends {
				off, _, err := e.b.Committed(context.Background(), sinks.ConsumerName(e.spec), topic, part)
				if err != nil {
					return err
				}
				if off != end {
					return fmt.Errorf("consumer %s at offset %d of %s/%d, want %d",
						sinks.ConsumerName(e.spec), off, topic, part, end)
				}
			}
		}
		return nil
	})
}

// checkLag checks that the broker reports no lag for the sink's consumer.
func (e *env) checkLag() {
	e.t.Helper()
	lags, err := e.b.Lag(context.Background())
	if err != nil {
		e.t.Fatalf("Lag: %v", err)
	}
	seen := 0
	for _, l := range lags {
		if l.Consumer != sinks.ConsumerName(e.spec) {
			continue
		}
		seen++
		if l.Lag != 0 {
			e.t.Errorf("lag of %s on %s/%d is %d, want 0", l.Consumer, l.Topic, l.Partition, l.Lag)
		}
	}
	if seen == 0 {
		e.t.Errorf("the broker lists no lag for consumer %s", sinks.ConsumerName(e.spec))
	}
}

// resetOffsets rewinds the sink's consumer to offset 0 on every partition,
// so that everything is delivered again.
func (e *env) resetOffsets() {
	e.t.Helper()
	for _, name := range e.spec.From {
		t := e.topic(name)
		for part := range max(t.Partitions, 1) {
			if err := e.b.Commit(context.Background(), sinks.ConsumerName(e.spec), t.Name, part, 0, 0); err != nil {
				e.t.Fatalf("rewinding %s/%d: %v", t.Name, part, err)
			}
		}
	}
}

// deadLetters returns every event of the sink's dead-letter topic.
func (e *env) deadLetters() []event.Event {
	e.t.Helper()
	entries, err := e.b.Fetch(context.Background(), e.p.DeadLetterTopic(e.spec).Name, 0, broker.FromStart(), 1000)
	if err != nil {
		e.t.Fatalf("fetching dead letters: %v", err)
	}
	var out []event.Event
	for _, en := range entries {
		out = append(out, en.Events...)
	}
	return out
}

// Join makes this test process a node of the cluster on b's log, as a
// running process is, for a runner's Options.Owner; the node leaves at the
// end of the test.
func Join(t testing.TB, b *broker.Broker) *broker.Node {
	t.Helper()
	n, err := b.Join(context.Background(), broker.NodeOptions{Name: "test", Roles: []string{"sinks"}})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}
