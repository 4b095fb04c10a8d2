package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// errPrepare marks a Prepare failure. Prepare errors are always retried,
// even permanent ones: a table that cannot be created (create: false, no
// rights) is a configuration problem an operator fixes, and dead-lettering
// every row meanwhile would be wrong.
type errPrepare struct{ err error }

func (e errPrepare) Error() string { return "prepare: " + e.err.Error() }
func (e errPrepare) Unwrap() error { return e.err }

// write prepares src's table when its columns are not yet prepared, then
// writes rows. The target is held for both, unless it is a
// ConcurrentWriter, which is held only to prepare.
func (r *Runner) write(ctx context.Context, src *source, rows []Row) error {
	r.targetMu.Lock()
	sig := signature(src.table)
	if r.prepared[src.table.Name] != sig {
		if err := r.target.Prepare(ctx, src.table); err != nil {
			r.targetMu.Unlock()
			return errPrepare{fmt.Errorf("table %s: %w", src.table.Name, err)}
		}
		r.prepared[src.table.Name] = sig
	}
	if r.concurrent {
		r.targetMu.Unlock()
		return r.target.Write(ctx, src.table, rows)
	}
	defer r.targetMu.Unlock()
	return r.target.Write(ctx, src.table, rows)
}

// signature identifies a table's columns, so a change triggers Prepare.
func signature(t Table) string {
	b := make([]byte, 0, 16*len(t.Columns))
	for _, c := range t.Columns {
		b = append(b, c.Name...)
		b = append(b, ':', byte(c.Type), ',')
	}
	return string(b)
}

// writeWithRetry writes rows until the target takes them, retrying transient
// failures forever with backoff; the rows it returns were rejected for good
// and must be dead-lettered. It fails only when ctx ends. Failures count
// against the health of worker key.
func (r *Runner) writeWithRetry(ctx context.Context, src *source, key string, rows []Row) (RowErrors, error) {
	return r.writeRetrying(ctx, src, key, rows, 0)
}

// writeBounded is writeWithRetry giving up after batch.max_retries transient
// failures, for Replay, whose caller waits; it does not touch health.
func (r *Runner) writeBounded(ctx context.Context, src *source, rows []Row) (RowErrors, error) {
	return r.writeRetrying(ctx, src, "", rows, r.maxRetries())
}

func (r *Runner) writeRetrying(ctx context.Context, src *source, key string, rows []Row, limit int) (RowErrors, error) {
	var rejected RowErrors
	b := r.backoff
	b.Attempts = limit
	err := b.Do(ctx, func(int) error {
		err := r.write(ctx, src, rows)
		if err == nil {
			r.health.ok(key)
			return nil
		}
		var prep errPrepare
		isPrep := errors.As(err, &prep)
		var rowErrs RowErrors
		switch {
		case !isPrep && errors.As(err, &rowErrs):
			r.health.ok(key)
			rejected = cleanRowErrors(rowErrs, len(rows))
			return nil
		case !isPrep && errors.Is(err, ErrPermanent):
			r.health.ok(key)
			rejected = make(RowErrors, len(rows))
			for i := range rows {
				rejected[i] = RowError{Index: i, Err: err}
			}
			return nil
		}
		return err
	}, func(attempt int, err error, _ time.Duration) {
		src.m.retries.Inc()
		r.health.fail(key, attempt, r.maxRetries(), err)
		level := debugOrWarn(attempt, r.maxRetries())
		r.logger.Log(ctx, level, "write failed; retrying", "source", key, "rows", len(rows), "attempt", attempt, "error", err)
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return rejected, nil
}

// cleanRowErrors drops indices outside the batch and repeats, in index order.
func cleanRowErrors(errs RowErrors, n int) RowErrors {
	out := make(RowErrors, 0, len(errs))
	for _, e := range errs {
		if e.Index >= 0 && e.Index < n {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b RowError) int { return a.Index - b.Index })
	return slices.CompactFunc(out, func(a, b RowError) bool { return a.Index == b.Index })
}

// debugOrWarn keeps a long outage from flooding the log: the first failure
// and every maxRetries-th are warnings, the rest debug.
func debugOrWarn(attempt, maxRetries int) slog.Level {
	if attempt == 1 || attempt%maxRetries == 0 {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}
