package plan

import "math"

// The watermark of a view is how far its event time has certainly advanced:
// windows that end at or before it are final, and an event that could only
// change such windows is late. Both layers apply this one rule, the speed
// layer to the events it has read from the log and the batch layer to the
// events the lake holds (its horizon), so that a window the batch layer
// calls closed is one the speed layer calls final too.
//
// Per partition the watermark is the newest event time seen in it minus the
// view's lateness (none before the partition's first event). The view's
// watermark combines them:
//
//   - it is the minimum over the partitions that are not idle;
//   - an idle partition is one that has nothing more to give for now (the
//     speed layer: its reader is caught up with the end of the log, has
//     received nothing for a while, and the log still ends where it read up
//     to; the batch layer: the lake holds it up to the end of the log). It
//     is left out, so that a quiet partition does not hold every window
//     open, but never while the log holds events of it not yet counted, so
//     that in-order events are not late because their partition was quiet
//     before them;
//   - when every partition is idle it is the maximum over all partitions, so
//     that a stream that stopped still closes the windows its own events
//     have passed;
//   - it never moves back: a partition that comes back from idleness does
//     not reopen windows that were already final;
//   - a partition is idle only after having nothing to give while others
//     advance. When every partition is idle the stream has paused, not its
//     partitions: the first event after the pause (Activate) makes every
//     partition active again, and each holds the watermark back until its
//     own events come or it is found idle anew. Otherwise the partition read
//     first after a pause would move the watermark past the events the
//     others got in the same instant, and in-order events would be late
//     only because of the order the partitions happen to be read in.

// NoWatermark stands for "no watermark yet": no partition has an event.
const NoWatermark = math.MinInt64

// PartitionTime is what the watermark rule knows of one partition of a
// view's topic.
type PartitionTime struct {
	Newest int64 // newest event time seen, UTC µs; valid when Seen
	Seen   bool  // the partition has an event
	Idle   bool  // the partition does not hold the view's watermark back
}

// Watermark returns the partition's own watermark: Newest minus lateness
// (µs), or NoWatermark before its first event.
func (p PartitionTime) Watermark(lateness int64) int64 {
	if !p.Seen {
		return NoWatermark
	}
	return Earlier(p.Newest, lateness)
}

// Activate marks partition i active because it has an event. It reports
// whether the stream resumed, every partition having been idle: then every
// partition is active again (see the rule above), and whoever finds
// partitions idle starts counting their idleness anew.
func Activate(parts []PartitionTime, i int) (resumed bool) {
	if !parts[i].Idle {
		return false
	}
	for j := range parts {
		if !parts[j].Idle {
			parts[i].Idle = false
			return false
		}
	}
	for j := range parts {
		parts[j].Idle = false
	}
	return true
}

// CombineWatermarks returns the view's watermark given its partitions, its
// lateness (µs) and its current watermark (NoWatermark for none), by the
// rule above.
func CombineWatermarks(parts []PartitionTime, lateness, current int64) int64 {
	low, high := int64(math.MaxInt64), int64(NoWatermark)
	active := false
	for i := range parts {
		w := parts[i].Watermark(lateness)
		high = max(high, w)
		if !parts[i].Idle {
			low = min(low, w)
			active = true
		}
	}
	if !active {
		low = high
	}
	return max(current, low)
}

// Earlier returns t - d (UTC µs), saturating at the int64 limits so that a
// huge lateness or retention cannot wrap a time around.
func Earlier(t, d int64) int64 {
	r := t - d
	if (d > 0 && r > t) || (d < 0 && r < t) {
		if d > 0 {
			return math.MinInt64 + 1
		}
		return math.MaxInt64
	}
	return r
}
