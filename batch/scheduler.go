package batch

import (
	"context"
	"time"
)

// schedule starts each scheduled view's job when its cron schedule is due,
// by the injected clock, looked at every poll. A view whose previous
// scheduled run is still queued or running is not queued again: runs
// catch up on everything since the last one anyway.
func (b *Batch) schedule(ctx context.Context) error {
	next := map[string]time.Time{}
	now := b.now()
	for name, vj := range b.views {
		if vj.sched != nil {
			next[name] = vj.sched.Next(now)
		}
	}
	t := time.NewTicker(b.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		b.scheduleDue(next)
		b.updateHorizonAge()
	}
}

// updateHorizonAge sets lambdaflow_batch_horizon_age_seconds of every view
// that has a horizon, so that the gauge grows while runs fail or stall.
func (b *Batch) updateHorizonAge() {
	now := b.now()
	for name, vj := range b.views {
		if h, ok := vj.horizon(); ok {
			b.metrics.horizonAge.WithLabelValues(name).Set(now.Sub(time.UnixMicro(h)).Seconds())
		}
	}
}

// scheduleDue submits the jobs that are due and moves their next times.
func (b *Batch) scheduleDue(next map[string]time.Time) {
	now := b.now()
	for name, at := range next {
		if now.Before(at) {
			continue
		}
		next[name] = b.views[name].sched.Next(now)
		if b.jobs.pending(name, "schedule") {
			continue
		}
		if _, err := b.submit(name, "schedule", time.Time{}, time.Time{}, nil); err != nil {
			b.logger.Warn("batch: scheduling a run", "view", name, "err", err)
		}
	}
}
