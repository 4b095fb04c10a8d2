package speed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// partRun computes partition part of one view while this process owns it
// (the lease): stage 1 over source partition part, stage 2 over partition
// part of the view (see merge.go). One goroutine, run, owns the engine, the
// merger and the emitter; around it a reader per topic, an appender of
// stage 1's records and at most one checkpoint upload, all waited for
// before run returns.
type partRun struct {
	s        *Speed
	vs       *viewSpec
	lease    Lease
	part     int
	source   string // the view's topic
	partials string // the view's partials topic
	parts    int    // partitions of the partials topic (= the view's)

	e1 *engine
	m  *merger
	em *emitter
	ho *handover // the turn to show the partition in the store
	// sent tells the view's other runs here that stage 1 sends nothing
	// more (stop.go).
	sent func()

	next2    int64 // offset of the next partials record to apply
	out1     output
	out2     output
	marks    []markState // per view partition: the last progress sent
	batchSeq uint64      // stage-1 batches numbered
	// unsent holds stage-1 batches not yet handed to the appender: the
	// run's context ended while it waited for room (flush1).
	unsent   []partialBatch
	flushed1 time.Time // when stage 1 last sent its records
	dirty1   bool      // stage 1 processed events since

	src, prt readerState // for the idle rule
	errs     chan error
	appends  chan partialBatch
	durable  atomic.Uint64 // stage-1 batches durable in the partials topic

	// app appends stage 2's rows to the view's topic while run runs; nil
	// before (restore), when flush2 appends itself.
	app *appender
	// appending counts rows handed to app whose result has not come back.
	appending int

	ckName         string // the last checkpoint committed
	lastCheckpoint time.Time
	uploading      bool
	uploaded       chan uploadResult
	uploadWG       sync.WaitGroup
	last1, last2   Stats // what the view's counters were last set from
	lastLate2      uint64
	lastOpen       int
	lastIdle       int // 1 when the view's idle gauge counts the source partition
}

// markState is the progress of the source partition last sent to one view
// partition.
type markState struct {
	sent       bool
	newest     int64
	seen, idle bool
}

// partialBatch is one flush of stage 1: records per view partition.
type partialBatch struct {
	seq     uint64
	records [][]event.Event
}

// merge appends next's records after b's, partition by partition: next was
// flushed after b, so each partition's records keep their order.
func (b *partialBatch) merge(next partialBatch) {
	for g, recs := range next.records {
		b.records[g] = append(b.records[g], recs...)
	}
	b.seq = next.seq
}

// emitEvery is the shortest time between two flushes of stage 1 while
// events arrive: the records of a window that changes often are sent once
// per period, and the next stage sees them this much later at most.
const emitEvery = 5 * time.Millisecond

// runPart is the lease's work (Node.Own's run) for partition lease.Partition()
// of view vs.
func (s *Speed) runPart(ctx context.Context, vs *viewSpec, lease Lease) error {
	s.slots.own(vs.view.Name, lease.Partition())
	defer s.slots.release(vs.view.Name, lease.Partition())
	sent := s.stops.start(vs.view.Name)
	defer sent()
	// The replica of the partition here stops (own); its rows in the store
	// become this run's (handover.go).
	ho, err := s.handovers.take(ctx, vs.view.Name, lease.Partition())
	if err != nil {
		return err
	}
	defer ho.give()
	r, err := s.restorePart(ctx, vs, lease, ho)
	if err != nil {
		return err
	}
	r.sent = sent
	return r.run(ctx)
}

// checkpointObject names a partition checkpoint: a new name for every
// checkpoint (the owner's epoch and a random part), so that a predecessor
// that writes after it lost the partition can never replace the one the
// commit names.
func checkpointObject(view string, part int, epoch uint64) string {
	return view + "." + strconv.Itoa(part) + "." + strconv.FormatUint(epoch, 10) + "." + strconv.FormatUint(rand.Uint64(), 36)
}

// restorePart builds the run of a partition from the checkpoint its last
// commit names, or fresh.
func (s *Speed) restorePart(ctx context.Context, vs *viewSpec, lease Lease, ho *handover) (*partRun, error) {
	v := vs.view
	pt := s.p.PartialsTopic(v)
	r := &partRun{s: s, vs: vs, lease: lease, part: lease.Partition(), source: vs.topic.Name, partials: pt.Name,
		parts: max(pt.Partitions, 1), lastCheckpoint: s.now(), ho: ho}
	r.e1 = newPartialEngine(vs.plan)
	r.m = s.viewMerger(ctx, vs)
	r.em = newEmitter(s.p, v, s.store)
	r.em.append = s.log.Append
	r.marks = make([]markState, r.parts)
	ngroup, naggs := len(vs.plan.GroupBy()), len(vs.plan.Columns())
	_, name, ok := lease.Committed(r.source)
	if !ok || name == "" {
		s.logger.Info("speed: no checkpoint; computing the partition from the start of the log", "view", v.Name, "partition", r.part)
		// A run killed before its first checkpoint may have appended
		// open windows' rows.
		return r, retract(ctx, s.log, s.logger, r.em, r.part, 0, ngroup, naggs)
	}
	data, found, err := s.log.LoadCheckpoint(ctx, s.bucket, name)
	if err != nil {
		return nil, fmt.Errorf("speed: view %q partition %d: %w", v.Name, r.part, err)
	}
	if !found {
		return nil, fmt.Errorf("speed: view %q partition %d: the checkpoint %s/%s its commit names is missing: %w", v.Name, r.part, s.bucket, name, ErrCorruptCheckpoint)
	}
	h, err := decodePart(data, r.e1, r.m)
	if err == nil && h.def != vs.def {
		s.logger.Warn("speed: the view's definition changed since its checkpoint; recomputing the partition from the start of the log", "view", v.Name, "partition", r.part)
		r.e1 = newPartialEngine(vs.plan)
		r.m = s.viewMerger(ctx, vs)
		return r, retract(ctx, s.log, s.logger, r.em, r.part, 0, ngroup, naggs)
	}
	if err == nil && (h.view != v.Name || h.part != r.part) {
		err = fmt.Errorf("%w: it belongs to view %q partition %d", ErrCorruptCheckpoint, h.view, h.part)
	}
	if err != nil {
		return nil, fmt.Errorf("speed: view %q partition %d: checkpoint %s/%s: %w", v.Name, r.part, s.bucket, name, err)
	}
	r.ckName = name
	r.next2 = h.partialsNext
	r.em.ends[r.part] = h.viewEnd
	if err := retract(ctx, s.log, s.logger, r.em, r.part, h.viewEnd, ngroup, naggs); err != nil {
		return nil, err
	}
	if err := showRetained(ctx, s.log, r.em, r.m.wm, r.part, h.retain, ngroup, naggs, ho.retainedIDs()); err != nil {
		return nil, err
	}
	s.logger.Info("speed: restored checkpoint", "view", v.Name, "partition", r.part, "windows", r.e1.OpenWindows(),
		"units", r.m.OpenWindows(), "saved_at", time.UnixMicro(h.savedAt).UTC(), "offset", h.next, "partials_offset", h.partialsNext)
	return r, nil
}

// run processes the partition until ctx is done (then it stops softly and
// returns nil) or the log fails (then it returns the error, and the run
// starts again from the last checkpoint).
func (r *partRun) run(ctx context.Context) error {
	s := r.s
	rctx, stopReaders := context.WithCancel(ctx)
	srcCh := make(chan broker.Entry, entryQueue)
	prtCh := make(chan broker.Entry, entryQueue)
	r.errs = make(chan error, 3)
	r.appends = make(chan partialBatch, partialsQueue)
	r.uploaded = make(chan uploadResult, 1)
	appendErr := make(chan error, 1)
	// Commits come only with checkpoints; the read positions are reported
	// as they move, so that a view that keeps up does not look as far
	// behind as its checkpoint interval. A restart reads again from the
	// checkpoint.
	s.log.Progress(r.vs.consumer, r.source, r.part, r.e1.Next(0))
	s.log.Progress(r.vs.consumer, r.partials, r.part, r.next2)
	var workers sync.WaitGroup
	workers.Go(func() { r.read(rctx, r.source, r.part, r.e1.Next(0), &r.src, srcCh) })
	workers.Go(func() { r.read(rctx, r.partials, r.part, r.next2, &r.prt, prtCh) })
	// The appender outlives the readers on a soft stop: the last records
	// must be durable before the last checkpoint.
	appendCtx, stopAppender := context.WithCancel(context.WithoutCancel(ctx))
	var appender sync.WaitGroup
	appender.Go(func() {
		if err := r.appendLoop(appendCtx); err != nil {
			appendErr <- err
		}
	})
	// Stage 2's rows reach the view's topic through an appender of their
	// own, so that the view goes on computing while the log makes them
	// durable. Like the other appender it outlives ctx until the soft stop
	// is done.
	rowsCtx, stopRows := context.WithCancel(context.WithoutCancel(ctx))
	r.app, r.appending = newAppender(r.em), 0
	var rowsWG sync.WaitGroup
	rowsWG.Go(func() { r.app.run(rowsCtx) })
	defer func() {
		stopReaders()
		workers.Wait()
		stopAppender()
		appender.Wait()
		stopRows()
		close(r.app.in)
		rowsWG.Wait()
		r.app = nil
		r.uploadWG.Wait()
		r.unobserve()
	}()

	var tick <-chan time.Time
	if s.opts.tick != nil {
		tick = s.opts.tick(r.vs.view.Name, r.part)
	} else {
		t := time.NewTicker(tickInterval)
		defer t.Stop()
		tick = t.C
	}
	emit := time.NewTimer(time.Hour)
	emit.Stop()
	// Restored windows and units are shown and sent at once.
	r.dirty1 = true
	r.flush1(ctx)
	if err := r.flush2(ctx); err != nil {
		return err
	}
	r.ho.reconcile(r.m, &r.out2, r.s.store, r.vs.view.Name)
	for {
		select {
		case <-ctx.Done():
			stopReaders()
			workers.Wait()
			return r.softStop(stopAppender, &appender)
		case err := <-r.errs:
			return err
		case err := <-appendErr:
			return err
		case ent := <-srcCh:
			r.e1.Process(0, ent.Offset, ent.Events)
			r.src.queued.Add(-1)
			r.dirty1 = true
		drain1:
			for range maxBatch - 1 {
				select {
				case ent := <-srcCh:
					r.e1.Process(0, ent.Offset, ent.Events)
					r.src.queued.Add(-1)
				default:
					break drain1
				}
			}
			s.log.Progress(r.vs.consumer, r.source, r.part, r.e1.Next(0))
			if wait := emitEvery - s.now().Sub(r.flushed1); wait > 0 {
				emit.Reset(wait)
			} else {
				r.flush1(ctx)
			}
		case <-emit.C:
			r.flush1(ctx)
		case ent := <-prtCh:
			r.prt.queued.Add(-1)
			r.applyPartials(ent)
		drain2:
			for range maxBatch - 1 {
				select {
				case ent := <-prtCh:
					r.prt.queued.Add(-1)
					r.applyPartials(ent)
				default:
					break drain2
				}
			}
			s.log.Progress(r.vs.consumer, r.partials, r.part, r.next2)
			if err := r.flush2(ctx); err != nil {
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

// read feeds one partition's entries to the run from offset from on.
func (r *partRun) read(ctx context.Context, topic string, part int, from int64, st *readerState, ch chan<- broker.Entry) {
	fail := func(err error) {
		select {
		case r.errs <- fmt.Errorf("speed: view %q: read %q partition %d: %w", r.vs.view.Name, topic, part, err):
		default:
		}
	}
	rd, err := r.s.log.Read(ctx, topic, part, from)
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
			r.s.logger.Error("speed: skipping an entry that cannot be read", "view", r.vs.view.Name, "topic", topic, "partition", part, "err", err)
			continue
		case err != nil:
			fail(err)
			return
		}
		st.queued.Add(1)
		select {
		case ch <- ent:
		case <-ctx.Done():
			return
		}
	}
}

// applyPartials gives stage 2 one entry of the partials topic.
func (r *partRun) applyPartials(ent broker.Entry) {
	for i := range ent.Events {
		if ent.Offset+int64(i) < r.next2 {
			continue
		}
		pr, ok := decodePartial(&ent.Events[i])
		if !ok {
			continue
		}
		if err := r.m.Apply(&pr); err != nil {
			r.s.logger.Error("speed: skipping a partial state that cannot be read", "view", r.vs.view.Name, "partition", r.part, "err", err)
		}
	}
	r.next2 = max(r.next2, ent.End())
}

// flush1 sends stage 1's changed windows and progress to the view's
// partitions. When ctx ends while it waits for the appender, the batch
// waits in unsent for the soft stop, which calls flush1 again: it is never
// dropped, since the engine sends a window's state only once per change.
func (r *partRun) flush1(ctx context.Context) {
	r.flushed1 = r.s.now()
	r.e1.Flush(r.flushed1, &r.out1)
	asOf := r.e1.Next(0)
	epoch := r.lease.Epoch()
	records := make([][]event.Event, r.parts)
	add := func(kind int, rows []viewrow.Row) {
		for _, row := range rows {
			g := event.ViewRowPartition(row.Group, r.parts)
			pr := partial{source: r.part, epoch: epoch, asOf: asOf, kind: kind, key: row.Key, start: row.Start, end: row.End}
			if kind != pipelines.PartialGone {
				if len(row.Aggs) != 1 {
					continue // a state that could not be encoded (unreachable)
				}
				pr.state = []byte(row.Aggs[0].S)
			}
			records[g] = append(records[g], pr.event())
		}
	}
	add(pipelines.PartialGone, r.out1.Gone)
	add(pipelines.PartialOpen, r.out1.Open)
	add(pipelines.PartialFinal, r.out1.Final)
	newest, seen := r.e1.MaxTime(0)
	idle := r.e1.Idle(0)
	sent := false
	for g := range records {
		mk := markState{sent: true, newest: newest, seen: seen, idle: idle}
		if len(records[g]) == 0 && r.marks[g] == mk {
			continue
		}
		pr := partial{source: r.part, epoch: epoch, asOf: asOf, kind: pipelines.PartialMark, newest: newest, seen: seen, idle: idle}
		records[g] = append(records[g], pr.event())
		r.marks[g] = mk
		sent = true
	}
	r.dirty1 = false
	r.observe()
	if sent {
		r.batchSeq++
		r.unsent = append(r.unsent, partialBatch{seq: r.batchSeq, records: records})
	}
	for len(r.unsent) > 0 {
		select {
		case r.appends <- r.unsent[0]:
			r.unsent[0] = partialBatch{}
			r.unsent = r.unsent[1:]
		case <-ctx.Done():
			return
		}
	}
}

// appendLoop appends stage 1's batches in order, each view partition's
// records of a batch in one or more entries, retrying while the log is
// unavailable. The batches that queued while it appended go together, a
// view partition's records of all of them in one entry (up to entryLen):
// in a backfill stage 1 flushes faster than the log makes its entries
// durable, and each entry is a write and an fsync however few records it
// holds. Stage 2 reads the same records in the same order either way.
func (r *partRun) appendLoop(ctx context.Context) error {
	for {
		var b partialBatch
		select {
		case <-ctx.Done():
			return nil
		case b = <-r.appends:
		}
	merge:
		for {
			select {
			case next := <-r.appends:
				b.merge(next)
			default:
				break merge
			}
		}
		for g, recs := range b.records {
			for len(recs) > 0 {
				n := entryLen(recs)
				// 100 ms doubling to 5 s, without jitter: the wait is for
				// the log to come back.
				backoff := retry.Backoff{Base: 100 * time.Millisecond, Cap: 5 * time.Second}
				err := backoff.Do(ctx, func(int) error {
					_, err := r.s.log.Append(ctx, r.partials, g, recs[:n])
					if err != nil && !retryable(err) {
						return retry.Permanent(err)
					}
					return err
				}, func(_ int, err error, _ time.Duration) {
					r.s.logger.Warn("speed: appending partial states failed; retrying", "view", r.vs.view.Name, "partition", r.part, "err", err)
				})
				switch {
				case ctx.Err() != nil:
					return nil
				case err != nil:
					return fmt.Errorf("speed: view %q partition %d: append partial states: %w", r.vs.view.Name, r.part, err)
				}
				recs = recs[n:]
			}
		}
		r.durable.Store(b.seq)
	}
}

// flush2 shows stage 2's changes in the store and hands its rows for the
// view's topic to the appender (or, without one, appends them). When ctx
// ends while it waits for the appender, the rows stay pending for the soft
// stop.
func (r *partRun) flush2(ctx context.Context) error {
	r.m.Flush(r.s.now(), &r.out2)
	r.em.emit(&r.out2)
	r.observe()
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
			r.em.pending = rows
			r.appending -= len(rows)
			return nil
		}
	}
}

// landed records a round of the appender of stage 2's rows.
func (r *partRun) landed(res appended) error {
	r.appending -= res.rows
	r.em.land(res.landed)
	return res.err
}

// drain waits until every row handed to the appender is durable.
func (r *partRun) drain(ctx context.Context) error {
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

// onTick applies the idle rule to the source partition, moves the
// watermarks and checkpoints when due.
func (r *partRun) onTick(ctx context.Context) error {
	now := r.s.now()
	since := r.src.waitingSince.Load()
	caughtUp := since != 0 && r.src.queued.Load() == 0
	if caughtUp && !r.e1.Idle(0) && isIdle(caughtUp, time.Unix(0, since), now, r.s.opts.Idle) {
		r.e1.SetIdle(0, true)
		r.dirty1 = true
	}
	if r.dirty1 || r.marks[0] == (markState{}) {
		r.flush1(ctx)
	}
	// A checkpoint records no row waiting for its interval: the next run
	// would not know it was shown (its tombstones, the rows it retracts).
	due := !r.uploading && now.Sub(r.lastCheckpoint) >= r.s.opts.CheckpointInterval
	if due {
		r.m.showWaiting()
	}
	if err := r.flush2(ctx); err != nil {
		return err
	}
	r.vs.m.checkpointAge.Set(now.Sub(r.lastCheckpoint).Seconds())
	if due {
		// The state may be checkpointed only once every row it emitted is
		// durable: wait for the appender (a pause once per interval).
		if err := r.drain(ctx); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil // the soft stop checkpoints
			}
			return err
		}
		r.startCheckpoint(ctx)
	}
	return nil
}

// startCheckpoint encodes the state here, where nothing changes it, and
// stores and commits it in the background once the stage-1 records it
// depends on are durable; the run goes on meanwhile.
func (r *partRun) startCheckpoint(ctx context.Context) {
	start := r.s.now()
	ck, err := r.encode(start)
	if err != nil {
		r.s.logger.Error("speed: checkpoint", "view", r.vs.view.Name, "partition", r.part, "err", err)
		return
	}
	r.uploading = true
	r.uploadWG.Go(func() {
		err := r.save(ctx, ck)
		r.uploaded <- uploadResult{at: start, size: len(ck.data), err: err, name: ck.name}
	})
}

// partCk is an encoded checkpoint and what committing it needs.
type partCk struct {
	name         string
	data         []byte
	batch        uint64 // stage-1 batches that must be durable first
	next         int64
	newest       int64
	partialsNext int64
	prev         string
}

func (r *partRun) encode(at time.Time) (partCk, error) {
	data, err := encodePart(nil, r.vs.view.Name, r.vs.def, at.UnixMicro(), r.part, r.lease.Epoch(), r.e1, r.m, r.next2, r.em)
	if err != nil {
		return partCk{}, err
	}
	newest, _ := r.e1.MaxTime(0)
	return partCk{name: checkpointObject(r.vs.view.Name, r.part, r.lease.Epoch()), data: data, batch: r.batchSeq,
		next: r.e1.Next(0), newest: newest, partialsNext: r.next2, prev: r.ckName}, nil
}

// save stores a checkpoint, waits until the stage-1 records it covers are
// durable, commits its positions under the lease (naming it), then removes
// the previous checkpoint and the partials it made unnecessary.
func (r *partRun) save(ctx context.Context, ck partCk) error {
	if err := r.s.log.SaveCheckpoint(ctx, r.s.bucket, ck.name, ck.data); err != nil {
		return err
	}
	for r.durable.Load() < ck.batch {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	if err := r.lease.Commit(ctx, r.source, ck.next, ck.newest, ck.name); err != nil {
		return fmt.Errorf("speed: view %q partition %d: commit: %w", r.vs.view.Name, r.part, err)
	}
	if err := r.lease.Commit(ctx, r.partials, ck.partialsNext, 0, ck.name); err != nil {
		return fmt.Errorf("speed: view %q partition %d: commit: %w", r.vs.view.Name, r.part, err)
	}
	if ck.prev != "" {
		if err := r.s.log.DeleteCheckpoint(ctx, r.s.bucket, ck.prev); err != nil {
			r.s.logger.Warn("speed: removing an old checkpoint", "view", r.vs.view.Name, "partition", r.part, "object", ck.prev, "err", err)
		}
	}
	// The records before the checkpoint's position are in it: drop them.
	if err := r.s.log.Purge(ctx, r.partials, r.part, ck.partialsNext); err != nil {
		r.s.logger.Warn("speed: removing applied partial states", "view", r.vs.view.Name, "partition", r.part, "err", err)
	}
	return nil
}

func (r *partRun) uploadDone(res uploadResult) {
	r.uploading = false
	if res.err != nil {
		r.s.logger.Warn("speed: checkpoint not stored; trying again later", "view", r.vs.view.Name, "partition", r.part, "err", res.err)
		return
	}
	r.ckName = res.name
	r.lastCheckpoint = res.at
	r.vs.m.checkpointSecs.Observe(r.s.now().Sub(res.at).Seconds())
	r.vs.m.checkpointBytes.Set(float64(res.size))
}

// softStop sends stage 1's last records, waits until they are durable
// (and, when the whole process stops, until the view's other runs here
// have sent theirs), applies the partials topic to its end, makes stage 2's
// rows durable and checkpoints (stop.go). Source entries read but not
// processed are left to the next owner, which reads them again.
func (r *partRun) softStop(stopAppender context.CancelFunc, appender *sync.WaitGroup) error {
	ctx, cancel := context.WithTimeout(context.Background(), softStopTimeout)
	defer cancel()
	r.uploadWG.Wait()
	if r.uploading {
		r.uploadDone(<-r.uploaded)
	}
	fail := func(what string, err error) error {
		r.s.logger.Error("speed: stopping without a checkpoint", "view", r.vs.view.Name, "partition", r.part, "step", what, "err", err)
		return nil
	}
	if !r.lease.Valid() {
		return fail("lease", errors.New("the partition is no longer this process's"))
	}
	r.flush1(ctx)
	for r.durable.Load() < r.batchSeq {
		select {
		case <-ctx.Done():
			return fail("send partial states", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	r.sent()
	if err := r.s.stops.wait(ctx, r.vs.view.Name); err != nil {
		return fail("apply partial states", err)
	}
	if err := r.catchUp(ctx); err != nil {
		return fail("apply partial states", err)
	}
	r.m.showWaiting()
	err := r.flush2(ctx)
	if err == nil {
		err = r.drain(ctx)
	}
	if err != nil {
		return fail("final rows", err)
	}
	start := r.s.now()
	ck, err := r.encode(start)
	if err == nil {
		err = r.save(ctx, ck)
	}
	if err != nil {
		return fail("checkpoint", err)
	}
	r.vs.m.checkpointSecs.Observe(r.s.now().Sub(start).Seconds())
	r.s.logger.Info("speed: checkpointed on stop", "view", r.vs.view.Name, "partition", r.part, "windows", r.e1.OpenWindows(),
		"units", r.m.OpenWindows(), "bytes", len(ck.data))
	return nil
}

// observe adds what the engine and the merger did since the last call to
// the view's metrics, which every partition run of the view in this
// process shares.
func (r *partRun) observe() {
	vm := r.vs.m
	s := r.e1.Stats()
	vm.events.Add(float64(s.Events - r.last1.Events))
	vm.late.Add(float64(s.Late-r.last1.Late) + float64(r.m.Late()-r.lastLate2))
	vm.rejected.Add(float64(s.Rejected - r.last1.Rejected))
	r.last1, r.lastLate2 = s, r.m.Late()
	open := r.m.OpenWindows()
	vm.stateWindows.Add(float64(open - r.lastOpen))
	r.lastOpen = open
	idle := r.e1.IdlePartitions()
	vm.idleParts.Add(float64(idle - r.lastIdle))
	r.lastIdle = idle
	if wm, ok := r.m.Watermark(); ok {
		vm.watermark.Set(float64(wm) / 1e6)
	}
}

// unobserve takes the run's open windows out of the view's gauge.
func (r *partRun) unobserve() {
	r.vs.m.stateWindows.Add(-float64(r.lastOpen))
	r.vs.m.idleParts.Add(-float64(r.lastIdle))
	r.lastOpen, r.lastIdle = 0, 0
}
