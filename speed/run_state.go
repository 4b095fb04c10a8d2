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

// softStopTimeout bounds the final appends and checkpoint of a soft stop.
const softStopTimeout = 30 * time.Second
