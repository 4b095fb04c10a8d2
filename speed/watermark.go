package speed

import (
	"context"
	"time"
)

// The speed layer applies the view watermark rule of package plan
// (plan.CombineWatermarks) to the events it has read from the log:
//
//   - a partition's newest event time is the newest it has processed;
//   - a partition is idle when its reader is caught up with the end of the
//     log and has received nothing for Options.Idle (default 5 s, on the
//     injected clock). Its first event makes it active again; when every
//     partition was idle, the first event after the pause makes them all
//     active again (plan.Activate) and their idleness counts from then, so
//     the partition read first after a pause does not move the watermark
//     past what the others got in the same instant;
//   - an idle partition is left out of the view's watermark only while the
//     log holds nothing of it that it has not read: before leaving it out
//     moves the watermark, the view's merger (which may run in another
//     process than the partition's stage 1) compares the log's end of the
//     partition with the position the partition reported being idle at
//     (merger.watermark). Events that reached the partition, before or after
//     it was found idle, hold the watermark back until they are read, even
//     when the records of busier partitions reach the merger first. With
//     truly nothing unread it is left out, so a quiet partition never
//     stalls a view; while the log cannot answer, it holds the watermark
//     back.
//
// An event is late when it is behind its own partition's watermark, or
// behind the view's watermark (which is higher only while some partition is
// idle, or after a test forced it forward). Which events are late therefore
// depends only on each partition's own order of events, not on how the
// partitions' entries interleave, how they were batched, or whether the
// process restarted in between, as long as no partition was left out as
// idle. That is what makes a restarted speed layer compute exactly what an
// uninterrupted one would have. A partition is left out only when it has
// read everything the log held of it, so in-order events are never late
// because of idleness or of the order in which partitions are read: an
// event can be late for that reason only if it reached its partition after
// the view's watermark had passed its window, that is after events of other
// partitions newer than its window's end plus the lateness had been read and
// merged: out of order as the log received them. (A request's events reach
// their partitions independently, but one of them would have to take longer
// than the others' way through stage 1, the partials topic and the merger.)
// Whether such an event is late depends on timing; like every late event it
// is counted by lambdaflow_speed_late_events_total and the batch layer
// includes it.

// DefaultIdle is how long a caught-up partition may go without events before
// it stops holding the view's watermark back.
const DefaultIdle = 5 * time.Second

// isIdle is the idle rule for one partition: caught up (its reader waits on
// the log and nothing of it is queued) since waitingSince, for at least idle.
func isIdle(caughtUp bool, waitingSince, now time.Time, idle time.Duration) bool {
	return caughtUp && !waitingSince.IsZero() && now.Sub(waitingSince) >= idle
}

// logEndTimeout bounds one question to the log about where a source
// partition ends; without an answer the partition holds the watermark back.
const logEndTimeout = 2 * time.Second

// viewMerger returns the merger of a partition of view vs in this process:
// the idle rule of Options.Idle, and the source partitions' ends read from
// the log, whose owners may be other processes (merger.watermark). The
// questions outlive ctx: a soft stop's last flush asks too.
func (s *Speed) viewMerger(ctx context.Context, vs *viewSpec) *merger {
	m := newViewMerger(vs, s.opts.Idle)
	ctx = context.WithoutCancel(ctx)
	m.logEnd = func(part int) (int64, bool) {
		c, cancel := context.WithTimeout(ctx, logEndTimeout)
		defer cancel()
		end, err := s.log.End(c, vs.topic.Name, part)
		if err != nil {
			s.logger.Debug("speed: reading the end of a source partition; it holds the watermark back", "view", vs.view.Name, "partition", part, "err", err)
			return 0, false
		}
		return end, true
	}
	return m
}
