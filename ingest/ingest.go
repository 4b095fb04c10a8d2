package ingest

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Log is what ingest needs of the log. BrokerLog adapts a *broker.Broker.
type Log interface {
	// AppendUnique writes events as one log entry of the topic's
	// partition, except those with unique[i] whose id the partition
	// already holds within the dedup window (appended by any process) or
	// that repeat an earlier event of the call: those are placed where
	// the first landed, marked duplicate. It returns once the entry is
	// durable. Concurrent calls on one partition are allowed and are
	// ordered by the log. Errors wrapping broker.ErrUnavailable mean the
	// log could not be reached in time; the entry may or may not have
	// been written.
	AppendUnique(ctx context.Context, topic string, partition int, events []event.Event, unique []bool) ([]broker.Placement, error)

	// PrepareDedup builds the partition's index of ids from the log, so
	// that the first request after a start is checked against the ids
	// appended before it.
	PrepareDedup(ctx context.Context, topic string, partition int) error
}

// Options are the dependencies an Ingest gets from its owner.
type Options struct {
	// Logger gets ingest's messages. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for ingest times, generated ids and the dedup
	// window. Nil means time.Now.
	Now func() time.Time
	// Registerer gets ingest's metrics. Nil means a private registry (not
	// exported).
	Registerer prometheus.Registerer

	// appendsInFlight overrides how many Appends may run per partition;
	// eager sends a batch at once while the log is idle instead of letting
	// it gather for linger. Benchmarks compare settings with them.
	appendsInFlight int
	eager           bool
}

// appendsInFlight is how many Appends of one partition may run at once.
// One: the broker serialises a partition's appends, so a second one only
// overlaps encoding, measured no faster (BenchmarkGroupCommitInFlight)
// and could reorder a partition's entries against their requests.
const appendsInFlight = 1

// errNotReady refuses submissions once Run stops accepting (answered 503).
var errNotReady = errors.New("ingest: not ready")

// Ingest serves the HTTP ingest endpoint of one pipeline. Create it with
// New, start it with Run, mount its Routes. It is safe for concurrent use.
type Ingest struct {
	p       *pipelines.Pipeline
	log     Log
	logger  *slog.Logger
	now     func() time.Time
	metrics *metrics
	topics  map[string]*topicState
	handler *handler

	maxInFlight int64
	inFlight    atomic.Int64 // events decoded and not yet answered

	ready   atomic.Bool
	started atomic.Bool

	// mu orders submissions against shutdown: submitters hold it shared
	// while accepting, Run takes it exclusively to stop accepting and
	// close the batchers' inputs.
	mu        sync.RWMutex
	accepting bool

	rngMu sync.Mutex
	rng   *rand.ChaCha8
}

// topicState is everything ingest keeps per topic.
type topicState struct {
	topic    *pipelines.Topic
	dec      *decoder
	part     partitioner
	batchers []*batcher
	arrivals arrivals
	m        *topicMetrics
}

// New builds the ingest of pipeline p writing to log. p must have its
// defaults filled and must not change afterwards.
func New(p *pipelines.Pipeline, log Log, opts Options) (*Ingest, error) {
	if p == nil || log == nil {
		return nil, errors.New("ingest: New needs a pipeline and a log")
	}
	in := &Ingest{
		p:           p,
		log:         log,
		logger:      opts.Logger,
		now:         opts.Now,
		topics:      make(map[string]*topicState, len(p.Topics)),
		maxInFlight: int64(p.Ingest.MaxInFlight),
	}
	if in.logger == nil {
		in.logger = slog.New(slog.DiscardHandler)
	}
	if in.now == nil {
		in.now = time.Now
	}
	if in.maxInFlight <= 0 {
		return nil, fmt.Errorf("ingest: max_in_flight must be positive, got %d", p.Ingest.MaxInFlight)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	in.metrics = m
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("ingest: seed id generator: %w", err)
	}
	in.rng = rand.NewChaCha8(seed)

	perPartition := opts.appendsInFlight
	if perPartition <= 0 {
		perPartition = appendsInFlight
	}
	for i := range p.Topics {
		t := &p.Topics[i]
		if t.Time != "" {
			if fi := t.Schema.Index(t.Time); fi < 0 || t.Schema[fi].Type != event.TypeTimestamp {
				return nil, fmt.Errorf("ingest: topic %q: time field %q is not a timestamp field of the schema", t.Name, t.Time)
			}
		}
		ts := &topicState{
			topic: t,
			dec:   newDecoder(t, p.SiteName()),
			part:  newPartitioner(t),
			m:     m.forTopic(t.Name),
		}
		for part := range max(t.Partitions, 1) {
			ts.batchers = append(ts.batchers, newBatcher(t.Name, part, log, &p.Ingest, perPartition, opts.eager, &ts.arrivals, in.logger, m))
		}
		ts.arrivals.batchers = ts.batchers
		in.topics[t.Name] = ts
	}
	in.handler = newHandler(in)
	return in, nil
}

// Ready reports whether the handler accepts events: Run has rebuilt the
// dedup index and not yet stopped.
func (in *Ingest) Ready() bool { return in.ready.Load() }

// Run rebuilds the dedup index from the log, then runs the group commit of
// every partition until ctx is done. Then it stops accepting (new requests
// get 503), sends what is queued and waits until every accepted request
// has its answer. It returns nil after a clean stop, or the error that kept
// it from starting. Run may be called once.
func (in *Ingest) Run(ctx context.Context) error {
	if !in.started.CompareAndSwap(false, true) {
		return errors.New("ingest: Run called twice")
	}
	if err := in.rebuildRetrying(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it was ready
		}
		return err
	}
	var wg sync.WaitGroup
	for _, ts := range in.topics {
		for _, b := range ts.batchers {
			wg.Go(func() { b.run(ctx) })
		}
	}
	in.mu.Lock()
	in.accepting = true
	in.mu.Unlock()
	in.ready.Store(true)
	in.logger.Info("ingest ready", "topics", len(in.topics))

	<-ctx.Done()
	in.ready.Store(false)
	in.mu.Lock()
	in.accepting = false
	for _, ts := range in.topics {
		for _, b := range ts.batchers {
			close(b.in)
		}
	}
	in.mu.Unlock()
	wg.Wait()
	in.logger.Info("ingest stopped")
	return nil
}

// rebuildRetrying rebuilds the dedup index, retrying while the log is
// unavailable (ingest stays not ready meanwhile), until ctx is done.
func (in *Ingest) rebuildRetrying(ctx context.Context) error {
	// 100 ms doubling to 5 s, without jitter: one process waits for its log.
	backoff := retry.Backoff{Base: 100 * time.Millisecond, Cap: 5 * time.Second}
	return backoff.Do(ctx, func(int) error {
		err := in.rebuild(ctx)
		if err != nil && !errors.Is(err, broker.ErrUnavailable) {
			return retry.Permanent(err)
		}
		return err
	}, func(_ int, err error, wait time.Duration) {
		in.logger.Warn("ingest: log unavailable, retrying", "err", err, "in", wait)
	})
}

// rebuild builds the id index of every partition from the last
// dedup_window of the log, so that a retry after a restart, or through
// another ingest process, is still recognised.
func (in *Ingest) rebuild(ctx context.Context) error {
	if in.p.Ingest.DedupWindow.D() <= 0 {
		return nil
	}
	start := time.Now()
	for _, ts := range in.topics {
		for part := range ts.batchers {
			if err := in.log.PrepareDedup(ctx, ts.topic.Name, part); err != nil {
				return fmt.Errorf("ingest: build the dedup index of %s/%d: %w", ts.topic.Name, part, err)
			}
		}
	}
	in.logger.Info("ingest dedup index built", "window", in.p.Ingest.DedupWindow.D(), "took", time.Since(start))
	return nil
}

// acquire takes n events of max_in_flight without waiting.
func (in *Ingest) acquire(n int) bool {
	for {
		cur := in.inFlight.Load()
		if cur+int64(n) > in.maxInFlight {
			return false
		}
		if in.inFlight.CompareAndSwap(cur, cur+int64(n)) {
			return true
		}
	}
}

func (in *Ingest) release(n int) { in.inFlight.Add(-int64(n)) }

// submit hands chunks to their partitions' batchers, all or none.
func (in *Ingest) submit(ts *topicState, parts []int, chunks []*chunk) error {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if !in.accepting {
		return errNotReady
	}
	for i, c := range chunks {
		ts.batchers[parts[i]].in <- c
	}
	return nil
}
