package batch

import (
	"context"
	"time"
)

// schedule starts view vj's job when its cron schedule is due, by the
// injected clock, looked at every poll, until ctx ends. A run still queued
// or running is not queued again: runs catch up on everything since the
// last one anyway.
func (b *Batch) schedule(ctx context.Context, vj *viewJob) error {
	next := vj.sched.Next(b.now())
	t := time.NewTicker(b.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := b.now()
		if now.Before(next) {
			continue
		}
		next = vj.sched.Next(now)
		if b.jobs.pending(vj.v.Name, "schedule") {
			continue
		}
		if _, err := b.submit(vj.v.Name, "schedule", time.Time{}, time.Time{}, nil); err != nil {
			b.logger.Warn("batch: scheduling a run", "view", vj.v.Name, "err", err)
		}
	}
}

// watchHorizons keeps lambdaflow_batch_horizon_age_seconds of every view
// current until ctx ends.
func (b *Batch) watchHorizons(ctx context.Context) error {
	t := time.NewTicker(b.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
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
