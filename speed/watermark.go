package speed

import (
	"math"
	"time"
)

// The watermark of a view is how far its event time has certainly advanced:
// windows that end at or before it are final, and an event that could only
// change such windows is late.
//
// Per partition the watermark is the newest event time seen in it minus the
// view's lateness (nothing before the partition's first event). The view's
// watermark combines them:
//
//   - it is the minimum over the partitions that are not idle;
//   - a partition is idle when its reader is caught up with the end of the
//     log and has received nothing for Options.Idle (default 5 s, on the
//     injected clock). Its first event makes it active again;
//   - when every partition is idle it is the maximum over all partitions, so
//     that a stream that stopped still closes the windows its own events
//     have passed;
//   - it never moves back: a partition that comes back from idleness does
//     not reopen windows that were already final.
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

// noWatermark stands for "no event yet".
const noWatermark = math.MinInt64

// DefaultIdle is how long a caught-up partition may go without events before
// it stops holding the view's watermark back.
const DefaultIdle = 5 * time.Second

// partState is what the engine keeps per partition of the view's topic.
type partState struct {
	next    int64 // offset of the next event to process
	maxTime int64 // newest event time seen, µs; valid when seen
	seen    bool
	idle    bool
}

// watermark returns the partition's own watermark.
func (p *partState) watermark(lateness int64) int64 {
	if !p.seen {
		return noWatermark
	}
	return satSub(p.maxTime, lateness)
}

// combineWatermarks applies the rule above to the partitions' watermarks
// and the view's current watermark.
func combineWatermarks(parts []partState, lateness, current int64) int64 {
	low, high := int64(math.MaxInt64), int64(noWatermark)
	active := false
	for i := range parts {
		w := parts[i].watermark(lateness)
		high = max(high, w)
		if !parts[i].idle {
			low = min(low, w)
			active = true
		}
	}
	if !active {
		low = high
	}
	return max(current, low)
}

// isIdle is the idle rule for one partition: caught up (its reader waits on
// the log and nothing of it is queued) since waitingSince, for at least idle.
func isIdle(caughtUp bool, waitingSince, now time.Time, idle time.Duration) bool {
	return caughtUp && !waitingSince.IsZero() && now.Sub(waitingSince) >= idle
}

// satSub is a - b, saturating at the int64 limits so that a huge lateness
// cannot wrap a watermark around.
func satSub(a, b int64) int64 {
	d := a - b
	if (b > 0 && d > a) || (b < 0 && d < a) {
		if b > 0 {
			return math.MinInt64 + 1
		}
		return math.MaxInt64
	}
	return d
}
