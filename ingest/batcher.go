package ingest

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// call is one request's wait for its chunks: done is closed when the last
// chunk is settled, and err holds the first failure.
type call struct {
	remaining atomic.Int32
	done      chan struct{}
	mu        sync.Mutex
	err       error
}

func newCall(chunks int) *call {
	c := &call{done: make(chan struct{})}
	c.remaining.Store(int32(chunks))
	if chunks == 0 {
		close(c.done)
	}
	return c
}

func (c *call) settle(err error) {
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	if c.remaining.Add(-1) == 0 {
		close(c.done)
	}
}

// failure returns the first error; only valid after done is closed.
func (c *call) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// maxEntryBytes caps the estimated encoded size of one log entry, below
// NATS' default max_payload of 1 MiB, which an entry may not exceed. A
// single event above it is refused with 413.
const maxEntryBytes = 512 << 10

// eventBytes estimates an event's size in a log entry, from above.
func eventBytes(ev *event.Event) int { return broker.EventSize(ev) }

// chunk is the events of one request bound for one partition, never more
// than max_batch events or maxEntryBytes, so that it always fits one log
// entry.
type chunk struct {
	call    *call
	bytes   int // estimated, see eventBytes
	events  []event.Event
	unique  []bool  // per event: its id is the client's, deduplicate it
	offsets []int64 // filled with each event's offset before call is settled
	dups    []bool  // filled with offsets: the event is a duplicate
	parts   []int32 // filled with offsets: its partition (a duplicate's may be another)
	ok      bool    // set with offsets: the chunk is durable

	// next, when set, must be appended right after this chunk, with no
	// other chunk between them (a request's contiguous events that need
	// more than one entry); cont marks such a successor.
	next *chunk
	cont bool
}

// batcher is the group commit of one partition: it gathers chunks from
// concurrent requests into log entries of at most maxBatch events and keeps
// at most maxInFlight Appends running. A batch is sent as soon as a slot is
// free and either the batch is full, or its oldest event has waited linger
// (or less, the time an Append takes, when that is shorter), or nothing
// could join it: no chunk is queued and no request of the topic is on its
// way (arrivals).
// While every slot is busy the batch keeps growing up to maxBatch, then the
// batcher stops receiving, which blocks submitters: the queue in front is
// bounded.
//
// Not sending at once when the log is idle while requests are arriving
// looks like added latency, but under load it is what keeps entries large:
// an idle moment would otherwise start an fsync for the first small chunk,
// and the next batch would wait behind it (BenchmarkGroupCommitInFlight
// measures both). When nobody is arriving there is nobody to wait for
// (BenchmarkHTTPIngestOne).
type batcher struct {
	topic       string
	partition   int
	log         Log
	maxBatch    int
	linger      time.Duration
	maxInFlight int
	eager       bool // send at once while no Append runs (for comparison)
	logger      *slog.Logger
	metrics     *metrics

	in chan *chunk // closed by Ingest when it stops accepting

	// arrivals counts the topic's requests on their way here; lingering
	// is set while a batch could be sent but waits for them, and wake
	// (capacity 1) is signalled when the last of them leaves.
	arrivals  *arrivals
	lingering atomic.Bool
	wake      chan struct{}

	// gathered counts events taken from in and not yet handed to an
	// Append; tests wait on it to know a batch is formed.
	gathered atomic.Int64
}

// batchQueue is how many chunks may wait in front of one batcher; beyond
// it submitters block (their events are already counted in max_in_flight).
const batchQueue = 256

func newBatcher(topic string, partition int, log Log, ing *pipelines.Ingest, inFlight int, eager bool, arr *arrivals, logger *slog.Logger, m *metrics) *batcher {
	return &batcher{
		arrivals:    arr,
		wake:        make(chan struct{}, 1),
		eager:       eager,
		topic:       topic,
		partition:   partition,
		log:         log,
		maxBatch:    max(ing.MaxBatch, 1),
		linger:      ing.Linger.D(),
		maxInFlight: max(inFlight, 1),
		logger:      logger,
		metrics:     m,
		in:          make(chan *chunk, batchQueue),
	}
}

// run gathers and sends batches until in is closed and drained, then waits
// for its Appends. Appends run under ctx without its cancellation: what was
// accepted into a batch is sent even while Ingest stops, so that no request
// is left unanswered; the log's own timeouts bound them.
func (b *batcher) run(ctx context.Context) {
	appendCtx := context.WithoutCancel(ctx)
	var (
		wg       sync.WaitGroup
		finished = make(chan time.Duration, b.maxInFlight) // an Append returned, after so long
		inFlight int
		batch    []*chunk
		n, size  int    // events and estimated bytes in batch
		carry    *chunk // received, but did not fit the batch
		in       = b.in

		timer   = time.NewTimer(time.Hour)
		timerC  <-chan time.Time // nil unless the timer runs for batch
		expired bool             // batch's oldest event has waited enough
		ordered bool             // batch continues a chunk of an earlier batch

		// appendTook is a moving average of Append durations. Waiting for
		// company longer than an Append takes gains little: when the log is
		// fast (no fsync), linger would only add latency.
		appendTook = b.linger
	)
	timer.Stop()
	defer wg.Wait()

	add := func(c *chunk) {
		if n == 0 && b.linger > 0 && !(b.eager && inFlight == 0) {
			timer.Reset(min(b.linger, appendTook))
			timerC = timer.C
		}
		batch = append(batch, c)
		n += len(c.events)
		size += c.bytes
		b.gathered.Add(int64(len(c.events)))
		ordered = ordered || c.cont
		if c.next != nil {
			// Nothing may come between c and its successor: take it next,
			// and receive nothing else meanwhile.
			carry = c.next
		}
	}
	due := func() bool {
		if n == 0 || inFlight >= b.maxInFlight || (ordered && inFlight > 0) {
			// A continuation waits for its predecessor's Append, so that
			// concurrent Appends cannot reorder them.
			b.lingering.Store(false)
			return false
		}
		if expired || n >= b.maxBatch || carry != nil || in == nil || b.linger <= 0 || (b.eager && inFlight == 0) {
			return true
		}
		// Linger only for company that is on its way. lingering is set
		// before arrivals is read; see arrival.leave.
		b.lingering.Store(true)
		return len(in) == 0 && b.arrivals.quiet()
	}
	flush := func() {
		b.lingering.Store(false)
		timer.Stop()
		timerC, expired = nil, false
		inFlight++
		wg.Add(1)
		go func(batch []*chunk, n int) {
			defer wg.Done()
			start := time.Now()
			b.send(appendCtx, batch, n)
			finished <- time.Since(start)
		}(batch, n)
		b.gathered.Add(-int64(n))
		batch, n, size, ordered = nil, 0, 0, false
	}

	for {
		if due() {
			flush()
		}
		if carry != nil && n == 0 {
			c := carry
			carry = nil
			add(c) // may set carry to c's successor
			continue
		}
		if in == nil && n == 0 {
			for ; inFlight > 0; inFlight-- {
				<-finished
			}
			return
		}
		recv := in
		if carry != nil || n >= b.maxBatch {
			recv = nil // full: let submitters wait
		}
		select {
		case c, ok := <-recv:
			switch {
			case !ok:
				in = nil
			case n+len(c.events) > b.maxBatch || size+c.bytes > maxEntryBytes:
				carry = c
			default:
				add(c)
			}
		case <-timerC:
			timerC, expired = nil, true
		case <-b.wake:
			// The last request on its way left: due looks again.
		case d := <-finished:
			inFlight--
			appendTook += (d - appendTook) / 8
		}
	}
}

// send appends one batch as one log entry and settles its chunks.
func (b *batcher) send(ctx context.Context, batch []*chunk, n int) {
	events := make([]event.Event, 0, n)
	unique := make([]bool, 0, n)
	for _, c := range batch {
		events = append(events, c.events...)
		unique = append(unique, c.unique...)
	}
	b.metrics.batchEvents.Observe(float64(n))
	placed, err := b.log.AppendUnique(ctx, b.topic, b.partition, events, unique)
	if err != nil {
		b.logger.Warn("append failed", "topic", b.topic, "partition", b.partition, "events", n, "err", err)
	}
	k := 0
	for _, c := range batch {
		if err == nil {
			for i := range c.offsets {
				c.offsets[i], c.dups[i], c.parts[i] = placed[k].Offset, placed[k].Duplicate, int32(placed[k].Partition)
				k++
			}
			c.ok = true
		}
		c.call.settle(err)
	}
}
