package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Log is what the batch layer needs of the log: the lake writers read
// partitions, report how far they read and commit their position once it
// is durable; jobs learn how far each partition
// goes (to decide what the lake holds completely) and append recomputed
// view rows to the views' topics. *broker.Broker implements it.
type Log interface {
	Reader(ctx context.Context, topic string, partition int, from broker.Position) (*broker.Reader, error)
	Commit(ctx context.Context, consumer, topic string, partition int, offset, eventTime int64) error
	Committed(ctx context.Context, consumer, topic string, partition int) (int64, bool, error)
	Register(ctx context.Context, consumer, topic string) error
	Progress(consumer, topic string, partition int, offset int64)
	Topics(ctx context.Context) ([]api.Topic, error)
	Append(ctx context.Context, topic string, partition int, events []event.Event) (int64, error)
}

// Store is what the batch layer needs of the serving store: install a
// run's rows (which advances the horizon). *serving.Store implements it.
type Store interface {
	PutBatch(view string, from, to, horizon int64, rows []viewrow.Row) (drift int)
}

var _ Log = (*broker.Broker)(nil)

// Options are the dependencies a Batch gets from its owner.
type Options struct {
	// Logger gets the layer's messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock for file ages, schedules, horizons and job times;
	// nil means time.Now.
	Now func() time.Time
	// Registerer gets the layer's metrics; nil means they are not exported.
	Registerer prometheus.Registerer
	// Poll is how often (real time) idle loops look at the clock: the lake
	// writers for max_age, the scheduler for due runs, compaction for its
	// interval. Zero means one second.
	Poll time.Duration
	// CompactGrace is how long files replaced by compaction stay on disk
	// (hidden) for readers of older manifests in other processes. Zero
	// means 10 minutes.
	CompactGrace time.Duration
	// JobHistory is how many finished jobs GET /v1/jobs keeps; zero means 100.
	JobHistory int
}

// Batch is the batch layer of one pipeline. Its methods are safe for
// concurrent use.
type Batch struct {
	p       *pipelines.Pipeline
	log     Log
	store   Store
	logger  *slog.Logger
	now     func() time.Time
	poll    time.Duration
	grace   time.Duration
	metrics *metrics
	lakeDir string
	viewDir string

	lakes map[string]*topicLake // by topic
	views map[string]*viewJob   // by view

	jobs *jobTable
}

// New builds the batch layer of p: it opens each topic's lake manifest,
// compiles every view's plan and schedule (a bad cron expression is an
// error naming the view), and loads each view's last batch result into
// store. Nothing runs until Run; Recompute works without Run.
func New(p *pipelines.Pipeline, log Log, store Store, opts Options) (*Batch, error) {
	b := &Batch{
		p: p, log: log, store: store, logger: opts.Logger, now: opts.Now,
		poll: opts.Poll, grace: opts.CompactGrace,
		lakes: map[string]*topicLake{}, views: map[string]*viewJob{},
	}
	if b.logger == nil {
		b.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.poll <= 0 {
		b.poll = time.Second
	}
	if b.grace <= 0 {
		b.grace = 10 * time.Minute
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("batch: metrics: %w", err)
	}
	b.metrics = m
	var topicNames, viewNames []string
	for i := range p.Topics {
		topicNames = append(topicNames, p.Topics[i].Name)
	}
	for i := range p.Views {
		viewNames = append(viewNames, p.Views[i].Name)
	}
	m.init(topicNames, viewNames)
	b.jobs = newJobTable(opts.JobHistory)
	b.lakeDir = LakeDir(p)
	b.viewDir = filepath.Join(p.DataDir, "views")
	for i := range p.Topics {
		tl, err := openTopicLake(b.lakeDir, &p.Topics[i])
		if err != nil {
			return nil, err
		}
		b.lakes[p.Topics[i].Name] = tl
	}
	for i := range p.Views {
		vj, err := b.newViewJob(&p.Views[i])
		if err != nil {
			return nil, err
		}
		b.views[p.Views[i].Name] = vj
	}
	return b, nil
}

// Run runs the lake writers, compaction and the scheduler until ctx is
// done. On the way out (soft stop) each lake writer closes its open files
// durably and commits, and a running job is cancelled (it leaves the
// previous result in place). Run returns nil after a soft stop, or the
// error that stopped it.
func (b *Batch) Run(ctx context.Context) error {
	for _, tl := range b.lakes {
		if err := tl.recover(b.logger); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	report := func(err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			select {
			case errc <- err:
			default:
			}
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, tl := range b.lakes {
		roll := b.p.Lake.Roll
		if roll.MaxRows <= 0 {
			roll.MaxRows = 1_000_000
		}
		if roll.MaxAge <= 0 {
			roll.MaxAge = pipelines.Duration(5 * time.Minute)
		}
		w := &lakeWriter{tl: tl, log: b.log, logger: b.logger, now: b.now, roll: roll, poll: b.poll, metrics: b.metrics}
		wg.Go(func() { report(w.run(runCtx)) })
		c := &compactor{tl: tl, logger: b.logger, now: b.now, cfg: b.p.Lake.Compact, grace: b.grace, metrics: b.metrics}
		wg.Go(func() { report(c.run(runCtx, b.poll)) })
	}
	wg.Go(func() { report(b.schedule(runCtx)) })
	wg.Go(func() { report(b.jobs.run(runCtx)) })
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	return err
}

// manifestOf returns the current manifest of a topic's lake, or nil for an
// unknown topic.
func (b *Batch) manifestOf(topic string) *manifest {
	if tl := b.lakes[topic]; tl != nil {
		return tl.ms.snapshot()
	}
	return nil
}
