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
	"github.com/lambdaflow/lambdaflow/internal/retry"
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

	// tick, when set, gives each view the channel that replaces its real
	// ticker, which makes it look at idleness, the watermark and
	// checkpoints (tests drive it along with a fake clock).
	tick func(view string) <-chan time.Time
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
		bucket: "speed_" + p.Name}
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

// Run computes every view until ctx is done, then stops softly: each view
// finishes the entry in hand, makes its final rows durable and checkpoints.
// A view whose log fails is restarted from its last checkpoint, which
// gives the same results (see the package doc). Run returns nil after a
// soft stop, or the first error that stopped a view for good (a checkpoint
// it cannot read, a topic the log does not have); the other views then
// stop softly too.
func (s *Speed) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, vs := range s.views {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.runView(ctx, vs); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// runView runs one view, restarting it from its checkpoint after a failure
// of the log, until ctx is done.
func (s *Speed) runView(ctx context.Context, vs *viewSpec) error {
	// 100 ms doubling to 10 s, without jitter: each view waits for its log.
	backoff := retry.Backoff{Base: 100 * time.Millisecond, Cap: 10 * time.Second}
	err := backoff.Do(ctx, func(int) error {
		err := s.runViewOnce(ctx, vs)
		switch {
		case ctx.Err() != nil:
			return nil // stopping
		case err == nil:
			// The view ended on its own: restart it like a failed one.
			return errors.New("the view stopped")
		case !retryable(err):
			return retry.Permanent(err)
		}
		return err
	}, func(_ int, err error, wait time.Duration) {
		s.logger.Warn("speed: view failed; restarting from its checkpoint", "view", vs.view.Name, "err", err, "in", wait)
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// retryable reports whether a view that failed with err should be
// restarted: the log was unavailable, a reader stopped, or the checkpoint
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

func (s *Speed) runViewOnce(ctx context.Context, vs *viewSpec) error {
	r, err := s.restore(ctx, vs)
	if err != nil {
		return err
	}
	return r.run(ctx)
}

// restore builds a view's engine and emitter from its checkpoint (or
// fresh), shows the final rows still within retention again and registers
// the view's consumer.
func (s *Speed) restore(ctx context.Context, vs *viewSpec) (*viewRun, error) {
	v := vs.view
	if err := s.log.Register(ctx, vs.consumer, vs.topic.Name); err != nil {
		return nil, fmt.Errorf("speed: view %q: register consumer: %w", v.Name, err)
	}
	e := newEngine(vs.plan, max(vs.topic.Partitions, 1))
	every, _ := v.Emit.Open()
	e.SetEmitInterval(every)
	em := newEmitter(s.p, v, s.store)
	em.append = s.log.Append
	r := &viewRun{s: s, vs: vs, e: e, em: em, lastCheckpoint: s.now()}

	data, ok, err := s.log.LoadCheckpoint(ctx, s.bucket, v.Name)
	if err != nil {
		return nil, fmt.Errorf("speed: view %q: %w", v.Name, err)
	}
	if !ok {
		s.logger.Info("speed: no checkpoint; computing the view from the start of the log", "view", v.Name)
		// A run killed before its first checkpoint may have appended
		// open windows' rows.
		return r, r.retract(ctx, nil)
	}
	h, cr, err := decodeCheckpoint(data)
	if err == nil && h.def != vs.def {
		s.logger.Warn("speed: the view's definition changed since its checkpoint; recomputing it from the start of the log", "view", v.Name)
		return r, nil
	}
	if err == nil {
		err = r.restoreFrom(h, cr)
	}
	if err != nil {
		return nil, fmt.Errorf("speed: view %q: checkpoint %s/%s: %w", v.Name, s.bucket, v.Name, err)
	}
	if err := r.retract(ctx, h.viewEnds); err != nil {
		return nil, err
	}
	if err := r.showRetained(ctx, h); err != nil {
		return nil, err
	}
	s.logger.Info("speed: restored checkpoint", "view", v.Name, "windows", e.OpenWindows(),
		"saved_at", time.UnixMicro(h.savedAt).UTC(), "offsets", h.next)
	return r, nil
}

// retract removes the rows of open windows that the previous run appended
// after its checkpoint (from[p] on, to the end of each partition of the
// view's topic; from nil: from the start): the replay may form its windows
// otherwise (sessions meeting in another order when a group's events come
// from several partitions, an event late in one run and not in the other),
// so such a row might never be overwritten. It appends a tombstone for each
// window whose last row there is an open one; the replay shows the windows
// that exist again. Windows finalised there are left as they are: the
// replay finalises them again, with the same values.
func (r *viewRun) retract(ctx context.Context, from []int64) error {
	em, ng, na := r.em, len(r.vs.plan.GroupBy()), len(r.vs.plan.Columns())
	if em.append == nil {
		return nil
	}
	for p := range em.parts {
		off := int64(0)
		if p < len(from) {
			off = from[p]
		}
		last := map[string]viewrow.Row{}
		var order []string
		for {
			entries, err := r.s.log.Fetch(ctx, em.topic, p, off, 10000)
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
					row, ok := viewrow.FromValues(ev.Values, ng, na)
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
		em.ends[p] = max(em.ends[p], off)
		var tombs []viewrow.Row
		for _, id := range order {
			if row := last[id]; !row.Final && !row.Deleted {
				tombs = append(tombs, viewrow.Row{Start: row.Start, End: row.End, Group: row.Group,
					Aggs: make([]event.Value, na), Deleted: true})
			}
		}
		if len(tombs) > 0 {
			r.s.logger.Info("speed: removing the open windows the last run showed after its checkpoint", "view", em.view, "partition", p, "windows", len(tombs))
			em.pending = append(em.pending, tombs...)
			if err := em.flushPending(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// showRetained reads the view's final rows still within retention back
// from its log topic into the store, as they were before the restart: the
// ranges of final rows the checkpoint names, skipping open windows' rows,
// tombstones and the batch layer's rows.
func (r *viewRun) showRetained(ctx context.Context, h checkpointHeader) error {
	em, ng, na := r.em, len(r.vs.plan.GroupBy()), len(r.vs.plan.Columns())
	cutoff := em.cutoff(r.e.wm)
	em.evicted = cutoff
	clear(em.ranges) // rebuilt from what is read, with the rows' ends
	var rows []viewrow.Row
	for p := range min(em.parts, len(h.retain)) {
		for _, rg := range h.retain[p] {
			from := rg.from
			for from < rg.to {
				entries, err := r.s.log.Fetch(ctx, em.topic, p, from, 10000)
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
						row, ok := viewrow.FromValues(ev.Values, ng, na)
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
						}
					}
					if kept.from >= 0 && kept.maxEnd >= cutoff {
						em.addRange(p, kept)
					}
					from = ent.End()
				}
				if len(rows) > 0 {
					em.store.PutSpeed(em.view, rows)
				}
			}
		}
	}
	return nil
}
