package speed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/binfmt"
)

// viewRun is one run of one view: a reader goroutine per partition of the
// topic feeding entries to the view's own goroutine, which alone touches
// the engine, the emitter and the store, and takes checkpoints, and an
// appender goroutine making its rows durable in the view's topic.
type viewRun struct {
	s  *Speed
	vs *viewSpec
	e  *engine
	em *emitter

	// app appends the view's rows while run runs; nil before (restore,
	// and tests driving the engine by hand), when flush appends itself.
	app *appender
	// appending counts rows handed to app whose result has not come back.
	appending int

	readers []readerState
	entries chan partEntry
	errs    chan error

	out            output
	resumedAt      time.Time // when the stream last resumed after every partition was idle
	lastCheckpoint time.Time
	uploading      bool
	uploaded       chan uploadResult
	uploadWG       sync.WaitGroup
}

// readerState is what the view's goroutine knows of a partition's reader,
// for the idle rule.
type readerState struct {
	// waitingSince is the clock (UnixNano) at which the reader started
	// waiting on the log for the next entry; 0 while it holds one.
	waitingSince atomic.Int64
	// queued counts entries sent to the view but not yet processed.
	queued atomic.Int64
}

type partEntry struct {
	part  int
	entry broker.Entry
}

type uploadResult struct {
	at   time.Time
	size int
	err  error
}

// maxBatch is how many queued entries the view processes before it shows
// the result; under load it shows the store one update per batch rather
// than per entry.
const maxBatch = 64

// restoreFrom puts a decoded checkpoint into the run's empty engine and
// emitter.
func (r *viewRun) restoreFrom(h checkpointHeader, cr *binfmt.Reader) error {
	e, em := r.e, r.em
	if h.view != r.vs.view.Name {
		return fmt.Errorf("%w: it belongs to view %q", ErrCorruptCheckpoint, h.view)
	}
	if len(h.parts) > len(e.times) || len(h.viewEnds) > em.parts {
		return fmt.Errorf("%w: %d partitions, the topic has %d", ErrCorruptCheckpoint, len(h.parts), len(e.times))
	}
	// Partitions added to the topic since the checkpoint start empty.
	copy(e.times, h.parts)
	copy(e.next, h.next)
	e.wm = h.watermark
	copy(em.ends, h.viewEnds)
	// Until showRetained reads them, the ranges' window ends are unknown:
	// keep every range.
	for p, rs := range h.retain {
		for _, rg := range rs {
			rg.maxEnd = math.MaxInt64
			em.ranges[p] = append(em.ranges[p], rg)
		}
	}
	return restoreWindows(e, cr)
}

// run processes the view until ctx is done (then it stops softly and
// returns nil) or a reader fails (then it returns the error, and the view
// restarts from its last checkpoint).
func (r *viewRun) run(ctx context.Context) error {
	s, parts := r.s, r.e.Partitions()
	rctx, stopReaders := context.WithCancel(ctx)
	r.readers = make([]readerState, parts)
	r.entries = make(chan partEntry, 4*parts)
	r.errs = make(chan error, parts)
	r.uploaded = make(chan uploadResult, 1)
	var readers sync.WaitGroup
	for p := range parts {
		readers.Add(1)
		from := r.e.Next(p)
		// A restart reads again from the checkpoint.
		s.log.Progress(r.vs.consumer, r.vs.topic.Name, p, from)
		go func() {
			defer readers.Done()
			r.read(rctx, p, from)
		}()
	}
	defer func() {
		stopReaders()
		readers.Wait()
		r.uploadWG.Wait()
	}()
	// The appender outlives ctx until the soft stop has made the rows
	// durable; it is stopped on every way out.
	actx, stopAppender := context.WithCancel(context.WithoutCancel(ctx))
	r.app, r.appending = newAppender(r.em), 0
	var appenderWG sync.WaitGroup
	appenderWG.Go(func() { r.app.run(actx) })
	defer func() {
		stopAppender()
		close(r.app.in)
		appenderWG.Wait()
		r.app = nil
	}()

	var tick <-chan time.Time
	if s.opts.tick != nil {
		tick = s.opts.tick(r.vs.view.Name)
	} else {
		t := time.NewTicker(tickInterval)
		defer t.Stop()
		tick = t.C
	}
	// Restored windows are shown at once.
	if err := r.flush(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			stopReaders()
			readers.Wait()
			return r.softStop()
		case err := <-r.errs:
			return err
		case pe := <-r.entries:
			r.process(pe)
		batch:
			for range maxBatch - 1 {
				select {
				case pe := <-r.entries:
					r.process(pe)
				default:
					break batch
				}
			}
			if err := r.flush(ctx); err != nil {
				return err
			}
		case <-tick:
			if err := r.onTick(ctx); err != nil {
				return err
			}
		case res := <-r.uploaded:
			r.uploadDone(res)
		case res := <-r.app.out:
			if err := r.landed(res); err != nil {
				return err
			}
		}
	}
}

// process runs an entry through the view and reports the read position:
// commits come only with checkpoints, so without the report a view that
// keeps up would look as far behind as its checkpoint interval.
func (r *viewRun) process(pe partEntry) {
	if r.e.Process(pe.part, pe.entry.Offset, pe.entry.Events) {
		r.resumedAt = r.s.now()
	}
	r.readers[pe.part].queued.Add(-1)
	r.s.log.Progress(r.vs.consumer, r.vs.topic.Name, pe.part, r.e.Next(pe.part))
}

// read feeds one partition's entries to the view from offset from on.
func (r *viewRun) read(ctx context.Context, part int, from int64) {
	st := &r.readers[part]
	fail := func(err error) {
		select {
		case r.errs <- fmt.Errorf("speed: view %q: read %q partition %d: %w", r.vs.view.Name, r.vs.topic.Name, part, err):
		default:
		}
	}
	rd, err := r.s.log.Read(ctx, r.vs.topic.Name, part, from)
	if err != nil {
		if ctx.Err() == nil {
			fail(err)
		}
		return
	}
	defer rd.Close()
	for {
		st.waitingSince.Store(r.s.now().UnixNano())
		ent, err := rd.Next(ctx)
		st.waitingSince.Store(0)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, broker.ErrCorruptEntry), errors.Is(err, broker.ErrSchemaMismatch):
			// The reader goes on after it; the view sees a gap, and the
			// batch layer reports the entry too.
			r.s.logger.Error("speed: skipping an entry that cannot be read", "view", r.vs.view.Name, "partition", part, "err", err)
			continue
		case err != nil:
			fail(err)
			return
		}
		st.queued.Add(1)
		select {
		case r.entries <- partEntry{part: part, entry: ent}:
		case <-ctx.Done():
			return
		}
	}
}

// flush shows what changed in the store and hands the rows for the log to
// the appender (or, without one, appends them).
func (r *viewRun) flush(ctx context.Context) error {
	r.e.Flush(r.s.now(), &r.out)
	r.em.emit(&r.out)
	r.vs.m.observe(r.e)
	if r.app == nil {
		return r.em.flushPending(ctx)
	}
	if len(r.em.pending) == 0 {
		return nil
	}
	rows := r.em.takePending()
	r.appending += len(rows)
	for {
		select {
		case r.app.in <- rows:
			return nil
		case res := <-r.app.out:
			if err := r.landed(res); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// landed records a round of the appender.
func (r *viewRun) landed(res appended) error {
	r.appending -= res.rows
	r.em.land(res.landed)
	return res.err
}

// drain waits until every row handed to the appender is durable.
func (r *viewRun) drain(ctx context.Context) error {
	for r.app != nil && r.appending > 0 {
		select {
		case res := <-r.app.out:
			if err := r.landed(res); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// onTick applies the idle rule, moves the watermark and checkpoints when due.
func (r *viewRun) onTick(ctx context.Context) error {
	now := r.s.now()
	for p := range r.readers {
		st := &r.readers[p]
		since := st.waitingSince.Load()
		caughtUp := since != 0 && st.queued.Load() == 0
		// Idleness counts from the resume at the latest: a partition whose
		// reader has not yet got what was appended with the resuming
		// partition's events must not be found idle at once.
		waiting := time.Unix(0, since)
		if waiting.Before(r.resumedAt) {
			waiting = r.resumedAt
		}
		if caughtUp && !r.e.Idle(p) && isIdle(caughtUp, waiting, now, r.s.opts.Idle) {
			r.e.SetIdle(p, true)
		}
	}
	due := !r.uploading && now.Sub(r.lastCheckpoint) >= r.s.opts.CheckpointInterval
	if due {
		r.e.showMerged()
	}
	if err := r.flush(ctx); err != nil {
		return err
	}
	r.vs.m.checkpointAge.Set(now.Sub(r.lastCheckpoint).Seconds())
	if due {
		// The state may be checkpointed only once every row it emitted is
		// durable: wait for the appender (a pause once per interval).
		if err := r.drain(ctx); err != nil {
			return err
		}
		r.startCheckpoint(ctx)
	}
	return nil
}

// startCheckpoint encodes the state here, where nothing changes it, and
// stores it in the background; the view goes on meanwhile.
func (r *viewRun) startCheckpoint(ctx context.Context) {
	start := r.s.now()
	data, commits, err := r.encode(start)
	if err != nil {
		r.s.logger.Error("speed: checkpoint", "view", r.vs.view.Name, "err", err)
		return
	}
	r.uploading = true
	r.uploadWG.Add(1)
	go func() {
		defer r.uploadWG.Done()
		err := r.save(ctx, data, commits)
		r.uploaded <- uploadResult{at: start, size: len(data), err: err}
	}()
}

func (r *viewRun) uploadDone(res uploadResult) {
	r.uploading = false
	if res.err != nil {
		r.s.logger.Warn("speed: checkpoint not stored; trying again later", "view", r.vs.view.Name, "err", res.err)
		return
	}
	r.lastCheckpoint = res.at
	r.vs.m.checkpointSecs.Observe(r.s.now().Sub(res.at).Seconds())
	r.vs.m.checkpointBytes.Set(float64(res.size))
}

// commit is a partition position to commit after a checkpoint is stored.
type commit struct {
	part            int
	next, eventTime int64
}

func (r *viewRun) encode(at time.Time) ([]byte, []commit, error) {
	data, err := encodeCheckpoint(nil, r.vs.view.Name, r.vs.def, at.UnixMicro(), r.e, r.em)
	if err != nil {
		return nil, nil, err
	}
	commits := make([]commit, len(r.e.times))
	for p, pt := range r.e.times {
		commits[p] = commit{part: p, next: r.e.next[p], eventTime: pt.Newest}
	}
	return data, commits, nil
}

// save stores a checkpoint and then commits its positions, so that the lag
// of the view's consumer shows what a restart would replay.
func (r *viewRun) save(ctx context.Context, data []byte, commits []commit) error {
	if err := r.s.log.SaveCheckpoint(ctx, r.s.bucket, r.vs.view.Name, data); err != nil {
		return err
	}
	for _, c := range commits {
		if err := r.s.log.Commit(ctx, r.vs.consumer, r.vs.topic.Name, c.part, c.next, c.eventTime); err != nil {
			return fmt.Errorf("speed: view %q: commit: %w", r.vs.view.Name, err)
		}
	}
	return nil
}

// softStopTimeout bounds the final append and checkpoint of a soft stop.
const softStopTimeout = 30 * time.Second

// softStop shows every open window's current value, makes the rows
// durable and checkpoints. Entries read but not processed are left to the
// next run, which reads them again.
func (r *viewRun) softStop() error {
	ctx, cancel := context.WithTimeout(context.Background(), softStopTimeout)
	defer cancel()
	r.uploadWG.Wait()
	if r.uploading {
		r.uploadDone(<-r.uploaded)
	}
	r.e.showWaiting()
	err := r.flush(ctx)
	if err == nil {
		err = r.drain(ctx)
	}
	if err != nil {
		// Without its final rows in the log the state may not be
		// checkpointed; the last checkpoint stays, and the next run
		// replays from it.
		r.s.logger.Error("speed: stopping without a checkpoint", "view", r.vs.view.Name, "err", err)
		return nil
	}
	start := r.s.now()
	data, commits, err := r.encode(start)
	if err == nil {
		err = r.save(ctx, data, commits)
	}
	if err != nil {
		r.s.logger.Error("speed: stopping without a checkpoint", "view", r.vs.view.Name, "err", err)
		return nil
	}
	r.vs.m.checkpointSecs.Observe(r.s.now().Sub(start).Seconds())
	r.s.logger.Info("speed: checkpointed on stop", "view", r.vs.view.Name, "windows", r.e.OpenWindows(), "bytes", len(data))
	return nil
}
