package speed

import (
	"sync/atomic"
	"time"
)

// readerState is what a partition run knows of one of its readers, for
// the idle rule.
type readerState struct {
	// waitingSince is the clock (UnixNano) at which the reader started
	// waiting on the log for the next entry; 0 while it holds one.
	waitingSince atomic.Int64
	// queued counts entries sent to the run but not yet processed.
	queued atomic.Int64
}

// uploadResult is the outcome of a checkpoint stored in the background.
type uploadResult struct {
	at   time.Time
	size int
	err  error
	name string
}

// maxBatch is how many queued entries a run processes before it shows the
// result; under load it shows the store one update per batch rather than
// per entry.
const maxBatch = 64

// What a reader of the speed layer holds ahead of the goroutine it feeds:
// readAhead entries in the log's client (broker.Broker.ReaderAhead) and
// entryQueue decoded ones in the channel between them. A process runs two
// readers per owned partition of every view (the source and the partials)
// and one per replica, all full while a backfill or a restart catches up;
// these bound its read buffers to (readAhead + entryQueue + 1) entries per
// reader, the decoded ones about ten times their stored size. They are
// enough to hide the log's round trip: a run takes an entry in well under
// a millisecond.
const (
	readAhead  = 16
	entryQueue = 2
)

// partialsQueue is how many of stage 1's flushes may wait for the log
// (partialBatch): a flush during a backfill holds a record per window that
// changed, thousands, so the run waits for the log rather than queue more.
const partialsQueue = 4

// softStopTimeout bounds the final appends and checkpoint of a soft stop.
const softStopTimeout = 30 * time.Second
