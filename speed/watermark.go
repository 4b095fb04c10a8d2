package speed

import "time"

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
//     past what the others got in the same instant.
//
// An event is late when it is behind its own partition's watermark, or
// behind the view's watermark (which is higher only while some partition is
// idle, or after a test forced it forward). Which events are late therefore
// depends only on each partition's own order of events, not on how the
// partitions' entries interleave, how they were batched, or whether the
// process restarted in between, as long as no partition was left out as
// idle. That is what makes a restarted speed layer compute exactly what an
// uninterrupted one would have. Events that are late only because an idle
// partition was left out depend on timing; like every late event they are
// counted by lambdaflow_speed_late_events_total and the batch layer
// includes them.

// DefaultIdle is how long a caught-up partition may go without events before
// it stops holding the view's watermark back.
const DefaultIdle = 5 * time.Second

// isIdle is the idle rule for one partition: caught up (its reader waits on
// the log and nothing of it is queued) since waitingSince, for at least idle.
func isIdle(caughtUp bool, waitingSince, now time.Time, idle time.Duration) bool {
	return caughtUp && !waitingSince.IsZero() && now.Sub(waitingSince) >= idle
}
