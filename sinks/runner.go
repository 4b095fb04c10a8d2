package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Log is what the runner needs from the log; *broker.Broker implements it.
type Log interface {
	// Reader follows one partition from a position; its Next blocks.
	Reader(ctx context.Context, topic string, partition int, from broker.Position) (*broker.Reader, error)
	// Fetch returns up to max entries from a position without waiting.
	Fetch(ctx context.Context, topic string, partition int, from broker.Position, max int) ([]broker.Entry, error)
	// Append writes events durably as one entry and returns the first offset.
	Append(ctx context.Context, topic string, partition int, events []event.Event) (int64, error)
	// Commit records offset as the next event consumer will consume.
	Commit(ctx context.Context, consumer, topic string, partition int, offset, eventTime int64) error
	// Committed returns the committed offset; ok is false before the first commit.
	Committed(ctx context.Context, consumer, topic string, partition int) (offset int64, ok bool, err error)
	// Register makes the consumer's lag visible before its first commit.
	Register(ctx context.Context, consumer, topic string) error
}

var _ Log = (*broker.Broker)(nil)

// Owner runs work for the partitions of a consumer that this process owns
// among the processes running the same sink: *broker.Node. run is called
// per owned partition with its lease, whose context ends when the partition
// moves to another process.
type Owner interface {
	Own(consumer string, topics []string, run func(context.Context, *broker.Lease) error) (*broker.Ownership, error)
}

var _ Owner = (*broker.Node)(nil)

// Defaults of Options.
const (
	DefaultBackoffBase = 100 * time.Millisecond
	DefaultBackoffCap  = 30 * time.Second
	DefaultStopTimeout = 30 * time.Second
)

// Options are the dependencies a Runner gets from its owner. Zero values are
// replaced by the defaults noted.
type Options struct {
	// Logger gets the runner's messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock of dead-letter times and batch latency; nil is time.Now.
	Now func() time.Time
	// Registerer gets the sink metrics; nil means they are not exported.
	// Several runners may share one registerer.
	Registerer prometheus.Registerer
	// After is the timer behind batch.max_wait and the backoff sleeps;
	// nil is time.After. Tests inject a fake clock here.
	After func(d time.Duration) <-chan time.Time
	// Jitter returns a uniformly random duration in [0, d]; nil uses
	// math/rand/v2.
	Jitter func(d time.Duration) time.Duration
	// BackoffBase and BackoffCap bound the exponential backoff between
	// retries of a failed write, read or commit: attempt n waits a random
	// time in [0, min(cap, base·2^(n-1))] (full jitter, so that sinks
	// failing together do not retry in step). Defaults 100ms and 30s.
	BackoffBase, BackoffCap time.Duration
	// StopTimeout bounds the final flush of a soft stop, after which the
	// batch is left to be redelivered. Default 30s.
	StopTimeout time.Duration
	// Owner hands out the partitions this process delivers; required by
	// Run. Every process running the sink shares its partitions this way.
	Owner Owner
}

func (o *Options) fill() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Jitter == nil {
		o.Jitter = retry.Uniform
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffCap <= 0 {
		o.BackoffCap = DefaultBackoffCap
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
}

// source is one entry of the sink's from list: the log topic to read and
// the table its rows land in.
type source struct {
	name  string
	topic pipelines.Topic
	table Table
	view  bool
	m     sourceMetrics
}

// Runner delivers one sink: every partition of every source that this
// process owns (Options.Owner) is followed by its own goroutine, which
// batches rows, writes them through the target with retries, dead-letters
// what the target rejects for good and commits the offsets of consumer
// "sink.<name>", fenced by the partition's lease. Partition p of the sink is
// partition p of each of its sources. Methods are safe for concurrent use;
// Run may be called once at a time.
type Runner struct {
	p        *pipelines.Pipeline
	spec     *pipelines.Sink
	target   Target
	log      Log
	opts     Options
	backoff  retry.Backoff // between retries of everything the runner retries
	logger   *slog.Logger
	consumer string
	dlq      string
	sources  []*source
	m        *metrics

	// targetMu serialises target calls, as the Target contract promises
	// targets (only Prepare for a ConcurrentWriter); prepared (guarded by
	// it) holds the column signature each table was last prepared with.
	targetMu   sync.Mutex
	prepared   map[string]string
	concurrent bool

	health health

	runMu    sync.Mutex // held by Run, so two Runs never share the consumer
	replayMu sync.Mutex // one Replay at a time
}

// NewRunner checks spec against the pipeline and builds its runner. It does
// not touch the log or the target until Run, Replay or Health.
func NewRunner(p *pipelines.Pipeline, spec *pipelines.Sink, target Target, log Log, opts Options) (*Runner, error) {
	if target == nil || log == nil {
		return nil, fmt.Errorf("sink %q: nil target or log", spec.Name)
	}
	if len(spec.From) == 0 {
		return nil, fmt.Errorf("sink %q: from is empty", spec.Name)
	}
	opts.fill()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("sink %q: %w", spec.Name, err)
	}
	r := &Runner{
		p: p, spec: spec, target: target, log: log, opts: opts,
		backoff: retry.Backoff{Base: opts.BackoffBase, Cap: opts.BackoffCap, Jitter: retry.Full,
			Rand: opts.Jitter, After: opts.After},
		logger:   opts.Logger.With("sink", spec.Name, "type", spec.Type),
		consumer: ConsumerName(spec),
		dlq:      p.DeadLetterTopic(spec).Name,
		m:        m,
		prepared: make(map[string]string),
	}
	if cw, ok := target.(ConcurrentWriter); ok {
		r.concurrent = cw.ConcurrentWrites()
	}
	seen := make(map[string]bool)
	for _, name := range spec.From {
		if seen[name] {
			return nil, fmt.Errorf("sink %q: source %q listed twice", spec.Name, name)
		}
		seen[name] = true
		t, isView, ok := p.SourceTopic(name)
		if !ok {
			return nil, fmt.Errorf("sink %q: from %q: no such topic or view", spec.Name, name)
		}
		src := &source{name: name, topic: t, view: isView}
		if isView {
			v := p.ViewByName(name)
			from := p.TopicByName(v.From)
			if from == nil {
				return nil, fmt.Errorf("sink %q: view %q reads topic %q, which does not exist", spec.Name, name, v.From)
			}
			src.table = ViewTable(v, from)
		} else {
			src.table = TopicTable(p.TopicByName(name))
		}
		src.m = m.forSource(spec.Name, name)
		r.sources = append(r.sources, src)
	}
	r.health.up = m.up.WithLabelValues(spec.Name)
	r.health.up.Set(1)
	return r, nil
}

// ConsumerName is the log consumer of a sink, whose lag is the sink's.
func ConsumerName(spec *pipelines.Sink) string { return "sink." + spec.Name }

// replayConsumerName is the consumer that tracks how far a sink's
// dead-letter topic has been replayed.
func replayConsumerName(spec *pipelines.Sink) string { return "sink." + spec.Name + ".replay" }

// Name returns the sink's name.
func (r *Runner) Name() string { return r.spec.Name }

// Type returns the sink's type.
func (r *Runner) Type() string { return r.spec.Type }

// Sources returns the sink's from list.
func (r *Runner) Sources() []string { return append([]string(nil), r.spec.From...) }

// Run delivers until ctx is cancelled, then stops softly: each partition
// flushes the batch it holds (within Options.StopTimeout), commits and
// returns, and the partitions are given back to the other processes running
// the sink. A partition that moves to another process meanwhile stops the
// same way. It returns nil after a soft stop and an error only when the sink
// cannot run at all (a source missing from the log, the broker closed under
// it); failures of the target or the log are retried forever and reported
// by Health. Cancel Run before closing the broker; Run does not close the
// target.
func (r *Runner) Run(ctx context.Context) error {
	if !r.runMu.TryLock() {
		return fmt.Errorf("sink %q: already running", r.spec.Name)
	}
	defer r.runMu.Unlock()
	if r.opts.Owner == nil {
		return fmt.Errorf("sink %q: no owner of partitions (Options.Owner)", r.spec.Name)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	topics := make([]string, 0, len(r.sources))
	for _, src := range r.sources {
		// Only for the lag listing: a sink whose log is down still starts,
		// and its workers retry.
		if err := r.log.Register(ctx, r.consumer, src.topic.Name); err != nil {
			if errors.Is(err, broker.ErrUnknownTopic) {
				return fmt.Errorf("sink %q: source %q: %w", r.spec.Name, src.name, err)
			}
			r.logger.Warn("registering the consumer failed", "source", src.name, "error", err)
		}
		topics = append(topics, src.topic.Name)
	}

	var (
		errMu    sync.Mutex
		firstErr error
	)
	own, err := r.opts.Owner.Own(r.consumer, topics, func(pctx context.Context, l *broker.Lease) error {
		err := r.runPartition(pctx, l)
		if err != nil && fatal(err) {
			errMu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			errMu.Unlock()
			cancel()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sink %q: %w", r.spec.Name, err)
	}
	r.logger.Info("sink started", "sources", r.spec.From)
	<-ctx.Done()
	own.Stop()
	errMu.Lock()
	defer errMu.Unlock()
	r.logger.Info("sink stopped", "error", firstErr)
	return firstErr
}

// runPartition delivers partition p of every source that has one, while
// the lease holds.
func (r *Runner) runPartition(ctx context.Context, l *broker.Lease) error {
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, src := range r.sources {
		part := l.Partition()
		if part >= max(src.topic.Partitions, 1) {
			continue
		}
		w := &worker{r: r, src: src, part: part, lease: l, key: fmt.Sprintf("%s/%d", src.name, part)}
		wg.Go(func() {
			if err := w.run(ctx); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// health tracks the workers that have failed batch.max_retries times in a
// row, and the last error of the target.
type health struct {
	mu      sync.Mutex
	failing map[string]error // worker key -> its last error
	lastErr error
	up      prometheus.Gauge
}

func (h *health) fail(key string, attempt, maxRetries int, err error) {
	if key == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err
	if attempt < maxRetries {
		return
	}
	if h.failing == nil {
		h.failing = make(map[string]error)
	}
	h.failing[key] = err
	h.up.Set(0)
}

func (h *health) ok(key string) {
	if key == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.failing[key]; !ok {
		return
	}
	delete(h.failing, key)
	if len(h.failing) == 0 {
		h.lastErr = nil
		h.up.Set(1)
	}
}

func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failing) == 0 {
		return nil
	}
	return h.lastErr
}

// Health returns nil when the sink is delivering, or an error naming the sink
// and its target's problem: the last failure of a write that has failed
// batch.max_retries times in a row, or else of a Ping. It pings the target
// only when no write is in progress (unless the target is a
// ConcurrentWriter), so it never waits behind one.
func (r *Runner) Health(ctx context.Context) error {
	if err := r.health.err(); err != nil {
		return &httpapi.ReasonError{Err: fmt.Errorf("sink %s (%s): %w", r.spec.Name, r.spec.Type, err), Why: "writes failing"}
	}
	var err error
	switch {
	case r.concurrent:
		err = r.target.Ping(ctx)
	case r.targetMu.TryLock():
		err = r.target.Ping(ctx)
		r.targetMu.Unlock()
	}
	if err != nil {
		return &httpapi.ReasonError{Err: fmt.Errorf("sink %s (%s): target does not answer: %w", r.spec.Name, r.spec.Type, err), Why: "unreachable"}
	}
	return nil
}

// lastError is the error Health would report without pinging, for listings.
func (r *Runner) lastError() error { return r.health.err() }

// errStopped ends a worker's loop on a soft stop.
var errStopped = errors.New("stopped")
