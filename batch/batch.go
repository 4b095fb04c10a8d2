package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/batch/lakestore"
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
	// Store is the lake's storage; nil means the one the pipeline's lake
	// section names (its url, or its directory).
	Store lakestore.Store
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
	p         *pipelines.Pipeline
	log       Log
	store     Store
	logger    *slog.Logger
	now       func() time.Time
	poll      time.Duration
	grace     time.Duration
	owner     Owner
	serve     bool
	shared    *results // nil without a log
	metrics   *metrics
	lakeStore lakestore.Store
	ownStore  bool // lakeStore was opened by New: Run and Close release its connections
	viewDir   string

	lakes   map[string]*topicLake   // by topic
	writers map[string]*topicWriter // by topic
	budget  *memBudget              // the lake writers' memory
	views   map[string]*viewJob     // by view

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
		lakes: map[string]*topicLake{}, writers: map[string]*topicWriter{}, views: map[string]*viewJob{},
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
	if o, ok := log.(objects); ok && log != nil {
		b.shared = &results{log: o, bucket: "batch_" + p.Name}
	}
	b.viewDir = filepath.Join(p.DataDir, "views")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.lakeStore = opts.Store
	if b.lakeStore == nil {
		if b.lakeStore, err = OpenStore(ctx, p); err != nil {
			return nil, fmt.Errorf("batch: %w", err)
		}
		b.ownStore = true
	}
	// Two encoders of zstd's best level (~34 MiB each) serve every topic:
	// daily-sized files are few, and two cores' worth of them is plenty.
	best := newBestEncoders(2)
	var cache *fileCache
	if _, local := b.lakeStore.(*lakestore.Dir); !local {
		cache = newFileCache(int64(p.Lake.Cache), m)
	}
	for i := range p.Topics {
		tl, err := openTopicLake(ctx, b.lakeStore, &p.Topics[i], b.now, b.logger)
		if err != nil {
			return nil, err
		}
		tl.best, tl.cache = best, cache
		b.lakes[p.Topics[i].Name] = tl
	}
	b.budget = newMemBudget(int64(b.lakeBuffer()))
	for name, tl := range b.lakes {
		b.writers[name] = newTopicWriter(tl, b.log, b.logger, b.now, b.roll(), b.poll, b.metrics, b.budget)
	}
	for i := range p.Views {
		vj, err := b.newViewJob(&p.Views[i])
		if err != nil {
			return nil, err
		}
		b.views[p.Views[i].Name] = vj
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newHeldCollector(b)); err != nil {
			return nil, fmt.Errorf("batch: metrics: %w", err)
		}
	}
	return b, nil
}

// OpenStore opens the storage of p's lake: its url (object storage) or
// its directory (default <data_dir>/lake).
func OpenStore(ctx context.Context, p *pipelines.Pipeline) (lakestore.Store, error) {
	return lakestore.Open(ctx, lakestore.Config{
		Dir: LakeDir(p), URL: p.Lake.URL, Endpoint: p.Lake.Endpoint, Region: p.Lake.Region,
		AccessKeyID: p.Lake.AccessKeyID, SecretAccessKey: p.Lake.SecretAccessKey, PathStyle: p.Lake.PathStyle,
	})
}

// releaseStore closes the idle connections of a lake store New opened.
func (b *Batch) releaseStore() {
	if b.ownStore {
		lakestore.CloseIdle(b.lakeStore)
	}
}

// Run runs the lake writers, compaction and the scheduler until ctx is
// done. The lake's partitions are shared with every other process running
// the batch role: this one reads the partitions it owns (Options.Owner)
// into one buffer per topic, whose flushes commit them under their leases,
// and compacts the periods those partitions answer for. On the way out
// (soft stop) each partition's reader stops, what was read is written and
// committed, its partitions are given back, and a running job is
// cancelled (it leaves the previous result in place). Run returns nil
// after a soft stop, or the error that stopped it.
func (b *Batch) Run(ctx context.Context) error {
	if b.owner == nil && !(b.serve && b.shared != nil) {
		return errors.New("batch: nothing to run: no owner of partitions and not serving")
	}
	defer b.releaseStore()
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
		for _, tl := range b.lakes {
			name := tl.topic.Name
			if err := b.log.Register(ctx, lakeConsumer, name); err != nil && ctx.Err() == nil {
				b.logger.Warn("lake: registering consumer", "topic", name, "err", err)
			}
			topics = append(topics, name)
			// The flusher and the compactor run for the whole run; they
			// have work only while the process owns partitions of the
			// topic.
			tw := b.writers[name]
			c := newCompactor(tl, b.logger, b.now, b.p.Lake.Compact, b.grace, b.metrics)
			c.fence = tw.fenceOf
			tw.flushed = c.poke
			wg.Go(func() { tw.run(runCtx) })
			wg.Go(func() { c.run(runCtx, b.poll) })
		}
		slices.Sort(topics)
		if len(topics) > 0 {
			o, err := b.owner.Own(lakeConsumer, topics, b.writeLake)
			if err != nil {
				cancel()
				wg.Wait()
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
				for _, o := range owned {
					o.Stop()
				}
				owned = nil
				cancel()
				wg.Wait()
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
	case <-runCtx.Done():
	case err = <-errc:
	}
	// The partitions' readers stop first (each writes what it read and
	// gives its partition back); the flushers and compactors, after.
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

// writeLake reads partition lease.Partition() of every topic that has it
// into the topic's buffer, while the lease holds. The lease is the
// partition's Fence: it is first recorded in the manifest (no commit of a
// previous owner is accepted after that), then the partition is read from
// the manifest's Next on while what a previous writer of it left
// unfinished is removed (attach).
func (b *Batch) writeLake(ctx context.Context, lease *broker.Lease) error {
	part := lease.Partition()
	var wg sync.WaitGroup
	errs := make([]error, 0, len(b.lakes))
	var mu sync.Mutex
	for name, tl := range b.lakes {
		if part >= max(tl.topic.Partitions, 1) {
			continue
		}
		tw := b.writers[name]
		wg.Go(func() {
			err := tw.takeOver(ctx, part, lease)
			if err == nil {
				err = tw.attach(ctx, part, lease)
			}
			if err != nil && ctx.Err() == nil {
				b.logger.Error("lake: writer of a partition stopped", "topic", name, "partition", part, "err", err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// Returning while the partition is still owned runs it again after a
	// backoff (from the manifest).
	return errors.Join(errs...)
}

// roll is the pipeline's lake.roll with defaults for what is unset.
func (b *Batch) roll() pipelines.LakeRoll {
	roll := b.p.Lake.Roll
	if roll.MaxRows <= 0 {
		roll.MaxRows = 1_000_000
	}
	if roll.MaxAge <= 0 {
		roll.MaxAge = pipelines.Duration(5 * time.Minute)
	}
	return roll
}

// lakeBuffer is lake.buffer, 128 MiB when unset.
func (b *Batch) lakeBuffer() pipelines.ByteSize {
	if b.p.Lake.Buffer <= 0 {
		return 128 << 20
	}
	return b.p.Lake.Buffer
}

// manifestOf returns the current manifest of a topic's lake, or nil for an
// unknown topic.
func (b *Batch) manifestOf(topic string) *manifest {
	if tl := b.lakes[topic]; tl != nil {
		return tl.ms.snapshot()
	}
	return nil
}

// LakeStore returns the lake's storage.
func (b *Batch) LakeStore() lakestore.Store { return b.lakeStore }
