package speed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Options are the dependencies a Speed gets from its owner.
type Options struct {
	// Logger gets the speed layer's messages. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for idleness and checkpoint ages; event time drives
	// everything else. It is called from several goroutines. Nil means
	// time.Now.
	Now func() time.Time
	// Registerer gets the speed layer's metrics. Nil means a private
	// registry (not exported).
	Registerer prometheus.Registerer
	// CheckpointInterval is how often each view checkpoints; zero means
	// DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// Idle is how long a caught-up partition may go without events before
	// the watermark stops waiting for it; zero means DefaultIdle.
	Idle time.Duration

	// Owner hands out the partitions of each view this process computes
	// (BrokerOwner adapts a *broker.Node); nil computes none.
	Owner Owner
	// Serve shows every view whole in the store: the partitions owned here
	// as they are computed, the others from their partial states (a
	// replica of the owner's merge, see replica.go).
	Serve bool

	// tick, when set, gives each partition run of a view the channel that
	// replaces its real ticker, which makes it look at idleness, the
	// watermark and checkpoints (tests drive it along with a fake clock).
	tick func(view string, part int) <-chan time.Time
}

// DefaultCheckpointInterval is how often a view checkpoints by default.
const DefaultCheckpointInterval = 10 * time.Second

// tickInterval is how often a view looks at idleness and checkpoints when
// no entry arrives.
const tickInterval = 100 * time.Millisecond

// Speed is the speed layer of one pipeline: every view computed on the
// stream. Create it with New and run it with Run.
type Speed struct {
	p       *pipelines.Pipeline
	log     Log
	store   Store
	logger  *slog.Logger
	now     func() time.Time
	metrics *metrics
	opts    Options
	bucket  string
	views   []*viewSpec
	slots   *slots
	// handovers passes the rows of a partition in the store from one
	// merger to the next.
	handovers *handovers
	// stops lets the partition runs of a view that stop together wait for
	// each other's last partial states (stop.go).
	stops *stopGroup
}

// viewSpec is one view and what New compiled for it.
type viewSpec struct {
	view     *pipelines.View
	topic    *pipelines.Topic
	plan     *plan.Plan
	def      uint64
	consumer string
	m        *viewMetrics
}

// New prepares the speed layer of pipeline p: it compiles every view (an
// error names the view that does not compile) and registers the metrics.
// p must have its defaults filled and must not change afterwards.
func New(p *pipelines.Pipeline, log Log, store Store, opts Options) (*Speed, error) {
	if p == nil || log == nil || store == nil {
		return nil, errors.New("speed: New needs a pipeline, a log and a store")
	}
	s := &Speed{p: p, log: log, store: store, logger: opts.Logger, now: opts.Now, opts: opts,
		bucket: "speed_" + p.Name, slots: newSlots(), handovers: newHandovers(), stops: newStopGroup()}
	if !opts.Serve {
		// Rows nobody queries are not kept.
		s.store = nopStore{}
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.CheckpointInterval <= 0 {
		s.opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if s.opts.Idle <= 0 {
		s.opts.Idle = DefaultIdle
	}
	specs, err := compileViews(p)
	if err != nil {
		return nil, err
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if s.metrics, err = newMetrics(reg); err != nil {
		return nil, err
	}
	for _, vs := range specs {
		vs.m = s.metrics.forView(vs.view.Name)
	}
	s.views = specs
	return s, nil
}

func compileViews(p *pipelines.Pipeline) ([]*viewSpec, error) {
	var specs []*viewSpec
	for i := range p.Views {
		v := &p.Views[i]
		t := p.TopicByName(v.From)
		if t == nil {
			return nil, fmt.Errorf("speed: view %q reads unknown topic %q", v.Name, v.From)
		}
		pl, err := plan.Compile(v, t)
		if err != nil {
			return nil, fmt.Errorf("speed: %w", err)
		}
		specs = append(specs, &viewSpec{view: v, topic: t, plan: pl, def: pl.Definition(), consumer: "speed." + v.Name})
	}
	return specs, nil
}

// Run computes the partitions of every view that this process owns
// (Options.Owner) and, with Options.Serve, shows the rest of every view in
// the store from its partials (replicas), until ctx is done; then it stops
// softly: each owned partition sends its last partial states and, once
// every partition of the view here has, applies its partials to their end,
// makes its rows durable, checkpoints and is given back, so that what this
// process last shows and checkpoints includes every event it read
// (stop.go). A partition whose log fails starts again from its last
// checkpoint, which gives the same results (see the package doc). Run returns nil after a soft stop, or the
// first error that stopped a view for good (a checkpoint it cannot read, a
// topic the log does not have); the others then stop softly too.
func (s *Speed) Run(ctx context.Context) error {
	if s.opts.Owner == nil && !s.opts.Serve {
		return errors.New("speed: nothing to run: no Owner of partitions and not serving")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var owned []Stopper
	defer func() {
		for _, o := range owned {
			o.Stop()
		}
	}()
	if s.opts.Owner != nil {
		for _, vs := range s.views {
			pt := s.p.PartialsTopic(vs.view)
			for _, t := range []string{vs.topic.Name, pt.Name} {
				// Only for the lag listing; a log that is down is retried
				// by the partitions' runs.
				if err := s.log.Register(ctx, vs.consumer, t); err != nil && ctx.Err() == nil {
					if !retryable(err) {
						return fmt.Errorf("speed: view %q: %w", vs.view.Name, err)
					}
					s.logger.Warn("speed: registering the consumer", "view", vs.view.Name, "topic", t, "err", err)
				}
			}
			o, err := s.opts.Owner.Own(vs.consumer, []string{vs.topic.Name, pt.Name}, func(pctx context.Context, l Lease) error {
				err := s.runPart(pctx, vs, l)
				if err != nil && pctx.Err() == nil && !retryable(err) {
					cancel(err)
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("speed: view %q: %w", vs.view.Name, err)
			}
			owned = append(owned, o)
		}
	}
	var replicas sync.WaitGroup
	if s.opts.Serve {
		for _, vs := range s.views {
			for part := range max(s.p.PartialsTopic(vs.view).Partitions, 1) {
				replicas.Go(func() {
					if err := s.replicate(ctx, vs, part); err != nil {
						cancel(err)
					}
				})
			}
		}
	}
	<-ctx.Done()
	s.stops.stopAll()
	for _, o := range owned {
		o.Stop()
	}
	owned = nil
	replicas.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// retryable reports whether a partition that failed with err should be
// run again: the log was unavailable, a reader stopped, or the checkpoint
// could not be stored, all of which may pass. A checkpoint that cannot be
// read, or a topic the log does not have, will not.
func retryable(err error) bool {
	switch {
	case errors.Is(err, ErrCorruptCheckpoint), errors.Is(err, ErrCheckpointVersion),
		errors.Is(err, broker.ErrUnknownTopic), errors.Is(err, broker.ErrUnknownPartition),
		errors.Is(err, broker.ErrClosed):
		return false
	}
	return true
}

// retract removes the rows of open windows that the previous owner of
// partition part of the view's topic appended after its checkpoint (from
// offset from on, to the end of the partition): the replay may form its
// windows otherwise (sessions meeting in another order, an event late in one
// run and not in the other), so such a row might never be overwritten. It
// appends a tombstone for each window whose last row there is an open one;
// the replay shows the windows that exist again. Windows finalised there are
// left as they are: the replay finalises them again, with the same values.
func retract(ctx context.Context, log Log, logger *slog.Logger, em *emitter, part int, from int64, ngroup, naggs int) error {
	if em.append == nil {
		return nil
	}
	off := from
	last := map[string]viewrow.Row{}
	var order []string
	for {
		entries, err := log.Fetch(ctx, em.topic, part, off, 10000)
		if err != nil {
			return fmt.Errorf("speed: view %q: read the rows of the last run back from topic %q: %w", em.view, em.topic, err)
		}
		if len(entries) == 0 {
			break
		}
		for _, ent := range entries {
			for i, ev := range ent.Events {
				if ent.Offset+int64(i) < off || !strings.HasPrefix(ev.ID, speedIDPrefix) {
					continue
				}
				row, ok := viewrow.FromValues(ev.Values, ngroup, naggs)
				if !ok {
					continue
				}
				if _, seen := last[ev.ID]; !seen {
					order = append(order, ev.ID)
				}
				last[ev.ID] = row
			}
			off = ent.End()
		}
	}
	em.ends[part] = max(em.ends[part], off)
	var tombs []viewrow.Row
	for _, id := range order {
		if row := last[id]; !row.Final && !row.Deleted {
			tombs = append(tombs, viewrow.Row{Start: row.Start, End: row.End, Group: row.Group,
				Aggs: make([]event.Value, naggs), Deleted: true})
		}
	}
	if len(tombs) == 0 {
		return nil
	}
	logger.Info("speed: removing the open windows the last run showed after its checkpoint", "view", em.view, "partition", part, "windows", len(tombs))
	em.pending = append(em.pending, tombs...)
	return em.flushPending(ctx)
}

// showRetained reads the view's final rows still within retention back
// from partition part of its log topic into the store, as they were before
// a restart: the ranges of final rows the checkpoint names, skipping open
// windows' rows, tombstones and the batch layer's rows. It rebuilds the
// emitter's ranges of the partition with the rows' window ends. When
// retained is not nil, it adds the rowID of each row it shows.
func showRetained(ctx context.Context, log Log, em *emitter, wm int64, part int, ranges []finalRange, ngroup, naggs int, retained map[string]bool) error {
	cutoff := em.cutoff(wm)
	em.evicted = cutoff
	em.ranges[part] = nil
	var rows []viewrow.Row
	for _, rg := range ranges {
		from := rg.from
		for from < rg.to {
			entries, err := log.Fetch(ctx, em.topic, part, from, 10000)
			if err != nil {
				return fmt.Errorf("speed: view %q: read final rows back from topic %q: %w", em.view, em.topic, err)
			}
			if len(entries) == 0 {
				break
			}
			rows = rows[:0]
			for _, ent := range entries {
				kept := finalRange{from: -1, maxEnd: plan.NoWatermark}
				for i, ev := range ent.Events {
					off := ent.Offset + int64(i)
					if off < from || off >= rg.to || !strings.HasPrefix(ev.ID, speedIDPrefix) {
						continue
					}
					row, ok := viewrow.FromValues(ev.Values, ngroup, naggs)
					if !ok || !row.Final || row.Deleted {
						continue
					}
					if kept.from < 0 {
						kept.from = off
					}
					kept.to = off + 1
					kept.maxEnd = max(kept.maxEnd, row.End)
					if row.End >= cutoff {
						rows = append(rows, row)
						if retained != nil {
							retained[rowID(row)] = true
						}
					}
				}
				if kept.from >= 0 && kept.maxEnd >= cutoff {
					em.addRange(part, kept)
				}
				from = ent.End()
			}
			if len(rows) > 0 {
				em.store.PutSpeed(em.view, rows)
			}
		}
	}
	return nil
}
