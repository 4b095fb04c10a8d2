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
	Register(ctx context.Context, consumer, topic string) error
	Progress(consumer, topic string, partition int, offset int64)
	Topics(ctx context.Context) ([]api.Topic, error)
	Append(ctx context.Context, topic string, partition int, events []event.Event) (int64, error)
}

// Owner runs work for the partitions of a consumer that this process owns
// among the processes running the batch role: *broker.Node. The lake
// writer's partitions are shared this way (consumer "lake", partition p of
// every topic).
type Owner interface {
	Own(consumer string, topics []string, run func(context.Context, *broker.Lease) error) (*broker.Ownership, error)
}

var _ Owner = (*broker.Node)(nil)

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
	// Owner hands out the lake's partitions this process writes and the
	// views whose batch runs here; nil runs neither (a process that only
	// serves).
	Owner Owner
	// Serve shows every view's batch result in the store, as the process
	// running the view's batch publishes it (results.go).
	Serve bool
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
	owner   Owner
	serve   bool
	shared  *results // nil without a log
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
		poll: opts.Poll, grace: opts.CompactGrace, owner: opts.Owner, serve: opts.Serve,
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
	if o, ok := log.(objects); ok && log != nil {
		b.shared = &results{log: o, bucket: "batch_" + p.Name}
	}
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
// done. The lake's partitions are shared with every other process running
// the batch role: this one writes and compacts the partitions it owns
// (Options.Owner). On the way out (soft stop) each lake writer closes its
// open files durably and commits, its partitions are given back, and a
// running job is cancelled (it leaves the previous result in place). Run
// returns nil after a soft stop, or the error that stopped it.
func (b *Batch) Run(ctx context.Context) error {
	if b.owner == nil && !(b.serve && b.shared != nil) {
		return errors.New("batch: nothing to run: no owner of partitions and not serving")
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
	var owned []*broker.Ownership
	defer func() {
		for _, o := range owned {
			o.Stop()
		}
	}()
	if b.owner != nil {
		var topics []string
		for i := range b.p.Topics {
			name := b.p.Topics[i].Name
			if err := b.log.Register(ctx, lakeConsumer, name); err != nil && ctx.Err() == nil {
				b.logger.Warn("lake: registering consumer", "topic", name, "err", err)
			}
			topics = append(topics, name)
		}
		if len(topics) > 0 {
			o, err := b.owner.Own(lakeConsumer, topics, b.writeLake)
			if err != nil {
				return fmt.Errorf("batch: %w", err)
			}
			owned = append(owned, o)
		}
		// Each view's runs happen in one process at a time: the one that
		// owns its batch.
		for _, vj := range b.views {
			o, err := b.owner.Own(BatchConsumer(vj.v.Name), nil, func(ctx context.Context, _ *broker.Lease) error {
				return b.takeOver(ctx, vj)
			})
			if err != nil {
				return fmt.Errorf("batch: %w", err)
			}
			owned = append(owned, o)
		}
	}
	if b.serve && b.shared != nil && b.store != nil {
		for _, vj := range b.views {
			wg.Go(func() { b.follow(runCtx, vj) })
		}
	}
	wg.Go(func() { report(b.watchHorizons(runCtx)) })
	wg.Go(func() { report(b.jobs.run(runCtx)) })
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, o := range owned {
		o.Stop()
	}
	owned = nil
	cancel()
	wg.Wait()
	return err
}

// BatchConsumer names the ownership of view's batch runs, as GET
// /v1/cluster shows it: "batch.<view>".
func BatchConsumer(view string) string { return "batch." + view }

// writeLake writes and compacts partition lease.Partition() of every topic
// that has it, while the lease holds.
func (b *Batch) writeLake(ctx context.Context, lease *broker.Lease) error {
	part := lease.Partition()
	roll := b.p.Lake.Roll
	if roll.MaxRows <= 0 {
		roll.MaxRows = 1_000_000
	}
	if roll.MaxAge <= 0 {
		roll.MaxAge = pipelines.Duration(5 * time.Minute)
	}
	var wg sync.WaitGroup
	for _, tl := range b.lakes {
		if part >= max(tl.topic.Partitions, 1) {
			continue
		}
		// Leftovers of a writer of this partition that died are removed
		// before writing; other partitions' files may be in the making
		// in other processes.
		if err := tl.recoverPartition(b.logger, part, lease.Epoch()); err != nil {
			return err
		}
		w := &lakeWriter{tl: tl, log: b.log, logger: b.logger, now: b.now, roll: roll, poll: b.poll, metrics: b.metrics}
		wg.Go(func() { w.runOwned(ctx, part, lease) })
		c := &compactor{tl: tl, logger: b.logger, now: b.now, cfg: b.p.Lake.Compact, grace: b.grace, metrics: b.metrics, parts: []int{part}, lease: lease}
		wg.Go(func() {
			if err := c.run(ctx, b.poll); err != nil && ctx.Err() == nil {
				b.logger.Error("lake: compaction stopped", "topic", tl.topic.Name, "partition", part, "err", err)
			}
		})
	}
	wg.Wait()
	return nil
}

// Manifest returns the current manifest of a topic's lake, or nil for an
// unknown topic.
func (b *Batch) manifestOf(topic string) *manifest {
	if tl := b.lakes[topic]; tl != nil {
		return tl.ms.snapshot()
	}
	return nil
}
