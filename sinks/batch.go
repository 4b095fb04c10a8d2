package sinks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Batch defaults for a spec that left them zero (the loader fills them; a
// hand-built spec may not).
const (
	defaultMaxRows    = 5000
	defaultMaxWait    = 500 * time.Millisecond
	defaultMaxRetries = 10
)

func (r *Runner) maxRows() int {
	if n := r.spec.Batch.MaxRows; n > 0 {
		return n
	}
	return defaultMaxRows
}

func (r *Runner) maxWait() time.Duration {
	if d := r.spec.Batch.MaxWait.D(); d > 0 {
		return d
	}
	return defaultMaxWait
}

func (r *Runner) maxRetries() int {
	if n := r.spec.Batch.MaxRetries; n > 0 {
		return n
	}
	return defaultMaxRetries
}

// worker delivers one partition of one source. Its position is next: every
// event before it is committed; read is the offset after the last event
// taken into the pending batch.
type worker struct {
	r     *Runner
	src   *source
	part  int
	lease *broker.Lease // this process's ownership of the partition
	key   string        // source/partition, for health and logs

	next     int64
	read     int64
	rows     []Row
	lastTime int64 // event time of the last pending row, for lag_seconds
	flushes  int
}

// errLost stops a worker whose partition another process has taken.
var errLost = errors.New("the partition moved to another process")

func (w *worker) run(ctx context.Context) error {
	r := w.r
	// The position committed when the lease was taken: the previous
	// owner's last commit.
	if off, _, ok := w.lease.Committed(w.src.topic.Name); ok {
		w.next = off
	}
	for attempt := 1; ; attempt++ {
		start := w.next
		err := w.consume(ctx)
		if ctx.Err() != nil || errors.Is(err, errStopped) || errors.Is(err, errLost) {
			return nil
		}
		if fatal(err) {
			return fmt.Errorf("sink %q: source %s: %w", r.spec.Name, w.key, err)
		}
		if w.next > start {
			attempt = 1 // it made progress: this is a new failure, not the same one
		}
		r.logger.Warn("reading the log failed; retrying", "source", w.key, "offset", w.next, "error", err)
		if r.backoff.Wait(ctx, attempt) != nil {
			return nil
		}
	}
}

// consume reads from w.next until ctx ends or the reader fails. A goroutine
// owned here pumps entries out of the blocking reader so that the loop can
// also wait for batch.max_wait and for ctx.
func (w *worker) consume(ctx context.Context) error {
	r := w.r
	rd, err := r.log.Reader(ctx, w.src.topic.Name, w.part, broker.FromOffset(w.next))
	if err != nil {
		return err
	}
	defer rd.Close()
	w.rows, w.read = w.rows[:0], w.next

	readCtx, stopReading := context.WithCancel(ctx)
	entries := make(chan read)
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			e, err := rd.Next(readCtx)
			if err != nil && !undecodable(err) {
				readErr <- err
				return
			}
			select {
			case entries <- read{e, err}:
			case <-readCtx.Done():
				readErr <- readCtx.Err()
				return
			}
		}
	}()
	// Stop and wait for the pump before the deferred rd.Close.
	defer wg.Wait()
	defer stopReading()

	var timer <-chan time.Time
	for {
		select {
		case e := <-entries:
			flushes := w.flushes
			if e.err != nil {
				err = w.skip(ctx, e.err)
			} else {
				err = w.add(ctx, e.entry)
			}
			if err != nil {
				return w.stop(ctx, err)
			}
			if w.flushes != flushes {
				timer = nil // the rows left started a new batch
			}
			switch {
			case len(w.rows) == 0:
				timer = nil
			case timer == nil:
				timer = r.opts.After(r.maxWait())
			}
		case <-timer:
			timer = nil
			if err := w.flush(ctx); err != nil {
				return w.stop(ctx, err)
			}
		case err := <-readErr:
			return w.stop(ctx, err)
		case <-ctx.Done():
			return w.stop(ctx, ctx.Err())
		}
	}
}

// fatal reports a log error no retry can fix: the sink cannot run.
func fatal(err error) bool {
	return errors.Is(err, broker.ErrUnknownTopic) || errors.Is(err, broker.ErrUnknownPartition) ||
		errors.Is(err, broker.ErrClosed)
}

// read is what the pump hands the worker: an entry, or the error of one
// that could not be decoded.
type read struct {
	entry broker.Entry
	err   error
}

// undecodable reports a log entry the reader skips: retrying cannot help.
func undecodable(err error) bool {
	return errors.Is(err, broker.ErrCorruptEntry) || errors.Is(err, broker.ErrSchemaMismatch)
}

// skip dead-letters an entry the log cannot decode, so that one bad entry
// never stops the sink. Its offsets are unknown until the next entry; the
// dead letter names the first offset not yet seen and holds no record.
func (w *worker) skip(ctx context.Context, cause error) error {
	w.r.logger.Error("skipping an undecodable log entry", "source", w.key, "after_offset", w.read, "error", cause)
	if err := w.flush(ctx); err != nil {
		return err
	}
	row := Row{Source: w.src.name, Partition: w.part, Offset: w.read}
	return w.r.deadLetter(ctx, w.src, []Row{row}, RowErrors{{Index: 0, Err: cause}})
}

// stop ends consume: on a soft stop it flushes the pending batch on a
// context that outlives ctx by at most StopTimeout and returns errStopped;
// after a read error it flushes on ctx and returns the error.
func (w *worker) stop(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		if ferr := w.flush(ctx); ferr != nil {
			return ferr
		}
		return err
	}
	if len(w.rows) > 0 {
		drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.r.opts.StopTimeout)
		defer cancel()
		if ferr := w.flush(drain); ferr != nil {
			w.r.logger.Warn("soft stop: batch not flushed; it will be redelivered",
				"source", w.key, "rows", len(w.rows), "error", ferr)
		}
	}
	return errStopped
}

// add turns an entry's events into pending rows, flushing whenever the
// batch is full. Events before w.read are skipped: a reader positioned
// inside an entry still returns the whole entry.
func (w *worker) add(ctx context.Context, e broker.Entry) error {
	cols := len(w.src.table.Columns)
	// One allocation for the values of the entry's rows; targets must not
	// keep rows after Write returns, but the batch outlives the entry.
	vals := make([]event.Value, len(e.Events)*cols)
	maxRows := w.r.maxRows()
	for i := range e.Events {
		off := e.Offset + int64(i)
		if off < w.read {
			continue
		}
		ev := &e.Events[i]
		row := Row{Values: vals[i*cols : (i+1)*cols : (i+1)*cols], Source: w.src.name, Partition: w.part, Offset: off}
		w.src.fill(&row, ev, w.part, off)
		w.rows = append(w.rows, row)
		w.read = off + 1
		w.lastTime = ev.Time
		if len(w.rows) >= maxRows {
			if err := w.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// fill copies an event into row.Values: for a topic its values then _id, for
// a view its values. Values missing from the event (an older schema) stay
// null.
func (s *source) fill(row *Row, ev *event.Event, part int, off int64) {
	if s.view {
		// The table's columns are the first fields of the view's topic:
		// the row's values, then final; _deleted follows them.
		copy(row.Values, ev.Values)
		nvalues := len(row.Values) - 1
		final, deleted := viewrow.Flags(ev.Values, nvalues)
		row.Values[nvalues] = event.Value{Valid: true}
		if final {
			row.Values[nvalues].I = 1
		}
		row.Delete = deleted
		row.Time = ev.Time
		if start, ok := viewrow.Start(ev.Values); ok {
			row.Time = start
		}
		return
	}
	n := len(row.Values) - 1
	copy(row.Values[:n], ev.Values)
	id := ev.ID
	if id == "" {
		// Ingest always assigns ids; an event appended without one still
		// needs a key that is the same on every redelivery.
		id = "p" + strconv.Itoa(part) + "-" + strconv.FormatInt(off, 10)
	}
	row.Values[n] = event.Value{S: id, Valid: true}
	row.Time = ev.Time
}

// flush writes the pending batch, dead-letters the rows the target rejects
// for good, and commits past the batch. It fails only when ctx ends: every
// other failure is retried.
func (w *worker) flush(ctx context.Context) error {
	if len(w.rows) == 0 {
		return nil
	}
	r := w.r
	rows := w.rows
	start := r.opts.Now()
	// A database write cannot be fenced: do not start one once another
	// process may own the partition.
	if !w.lease.Valid() {
		return errLost
	}
	rejected, err := r.deliver(ctx, w.src, w.key, rows)
	if err != nil {
		return err
	}
	next := rows[len(rows)-1].Offset + 1
	if err := w.commit(ctx, next); err != nil {
		return err
	}
	w.next = next
	w.rows = w.rows[:0]
	w.flushes++
	w.src.m.written.Add(float64(len(rows) - rejected))
	w.src.m.batchSeconds.Observe(r.opts.Now().Sub(start).Seconds())
	return nil
}

// deliver writes rows with retries and dead-letters the rejected ones; it
// returns how many were rejected.
func (r *Runner) deliver(ctx context.Context, src *source, key string, rows []Row) (int, error) {
	rejected, err := r.writeWithRetry(ctx, src, key, rows)
	if err != nil {
		return 0, err
	}
	if len(rejected) > 0 {
		if err := r.deadLetter(ctx, src, rows, rejected); err != nil {
			return 0, err
		}
	}
	return len(rejected), nil
}

// commit records the worker's position under its lease, retrying until
// ctx ends; errLost when another process took the partition.
func (w *worker) commit(ctx context.Context, offset int64) error {
	r := w.r
	err := r.backoff.Do(ctx, func(int) error {
		err := w.lease.Commit(ctx, w.src.topic.Name, offset, w.lastTime, "")
		switch {
		case errors.Is(err, broker.ErrFenced):
			r.logger.Warn("partition taken by another process; stopping", "source", w.key, "error", err)
			return retry.Permanent(errLost)
		case fatal(err):
			return retry.Permanent(err)
		}
		return err
	}, func(_ int, err error, _ time.Duration) {
		r.logger.Warn("commit failed; retrying", "source", w.key, "offset", offset, "error", err)
	})
	if err != nil && ctx.Err() != nil && !errors.Is(err, errLost) {
		return ctx.Err()
	}
	return err
}
