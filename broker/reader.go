package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Position says where reading starts. Build one with FromOffset, FromTime,
// FromStart or FromEnd.
type Position struct {
	kind   posKind
	offset int64
	t      time.Time
}

type posKind uint8

const (
	posStart posKind = iota
	posEnd
	posOffset
	posTime
)

// FromOffset starts at the event with offset o (the first event still held
// if o was removed by retention; the next appended event if o is not yet
// written, skipping events before o).
func FromOffset(o int64) Position { return Position{kind: posOffset, offset: o} }

// FromTime starts at the first entry the log stored at or after t (the
// entry's store time, close to its ingest time; not its events' times).
func FromTime(t time.Time) Position { return Position{kind: posTime, t: t} }

// FromStart starts at the first event still held.
func FromStart() Position { return Position{kind: posStart} }

// FromEnd starts at the next event appended after the Reader is created.
func FromEnd() Position { return Position{kind: posEnd} }

func (p Position) String() string {
	switch p.kind {
	case posEnd:
		return "end"
	case posOffset:
		return fmt.Sprintf("offset %d", p.offset)
	case posTime:
		return "time " + p.t.UTC().Format(time.RFC3339Nano)
	default:
		return "start"
	}
}

// Entry is one log entry, decoded.
type Entry struct {
	Topic     string
	Partition int
	// Offset is the offset of Events[0]; the others follow it.
	Offset int64
	// Seq is the entry's JetStream stream sequence.
	Seq uint64
	// Ingest is the entry's ingest time, UTC microseconds.
	Ingest int64
	// Appended is when the log stored the entry (JetStream's timestamp
	// of the message), UTC microseconds: what lag in seconds counts from.
	Appended int64
	// MinTime is the smallest event time of the whole entry (its
	// Lf-Min-Time), UTC microseconds: what event-time lag counts from.
	MinTime int64
	// Events are in the topic's current schema. An entry may share its
	// events with the entries other Readers and fetches of the partition
	// got (see decodedCache): read them, never write them.
	Events []event.Event
	// Bytes is the size of the entry as stored (its payload), in
	// proportion to the events kept when it was cut.
	Bytes int
}

// End returns the offset after the entry's last event.
func (e Entry) End() int64 { return e.Offset + int64(len(e.Events)) }

// Reader reads one partition in order. Next and Close may be called from
// different goroutines; Next itself is not for concurrent use.
//
// A Reader outlives the loss of the NATS server it reads through, or of the
// partition's stream leader: when its JetStream consumer fails (an error,
// heartbeats missing for readerHeartbeat×2, or a message missing in its
// delivery sequence) it logs a warning and creates a new one after the last
// entry it returned, with backoff, until the log answers again or its ctx
// ends. Callers see a pause, not an error.
//
// The consumer is a plain ephemeral pull consumer the Reader creates,
// checks and deletes itself, not a JetStream ordered consumer: an ordered
// consumer re-creates itself inside the client, and a Stop landing while
// it does leaves the new subscription running for good (its goroutines,
// and the server's consumer until its inactivity threshold). Owning every
// re-creation, the Reader stops exactly what it created.
type Reader struct {
	b      *Broker
	schema event.Schema
	p      *partition
	ahead  int // ReaderAhead's bound; 0: readerMaxBytes of entries

	mu  sync.Mutex
	cur *readerIt
	// nextSeq is the stream sequence after the last entry delivered (the
	// start sequence before the first).
	nextSeq uint64
	// minOffset: events before it are dropped (the start position fell
	// inside an entry, or beyond the end; or they were returned before a
	// re-creation).
	minOffset int64
	failures  int
	// retryAt is when the consumer may be created again after the last
	// failure: a deadline rather than a wait, so that callers polling
	// Next with deadlines shorter than the backoff still get there.
	retryAt   time.Time
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

// readerIt is one consumer of a Reader: its iterator, the stop of its
// subscription, and the goroutine that drives it. nats.go notices missing
// heartbeats (a consumer whose server died) only while one call of the
// iterator's Next lasts twice the heartbeat interval: callers that poll
// Next with short deadlines (the lake writer waits a poll interval at a
// time) would never see a dead consumer, and would wait for good with no
// error. So pump calls it without a deadline and hands what it gets to
// Reader.Next.
type readerIt struct {
	name     string // the consumer's, on the partition's stream
	it       jetstream.MessagesContext
	got      chan pumped   // what pump read, in order
	quit     chan struct{} // closed by stopIt: pump stops handing over
	pumpDone chan struct{} // closed when pump returned
	stopOnce sync.Once
	// delivered is the consumer sequence of the last message Reader.Next
	// took: the next one must follow it, or messages were lost on the way
	// (a slow subscription drops them, a reconnect loses those in flight).
	delivered uint64
}

// pumped is one result of the iterator's Next.
type pumped struct {
	msg jetstream.Msg
	err error
}

func newReaderIt(name string, it jetstream.MessagesContext) *readerIt {
	ri := &readerIt{name: name, it: it, got: make(chan pumped), quit: make(chan struct{}), pumpDone: make(chan struct{})}
	go ri.pump()
	return ri
}

// pump hands every message of the iterator over until the iterator fails
// or stops (the error is handed over too, unless the reader stopped it).
func (ri *readerIt) pump() {
	defer close(ri.pumpDone)
	for {
		msg, err := ri.it.Next()
		select {
		case ri.got <- pumped{msg, err}:
		case <-ri.quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// Consumer settings of a Reader: heartbeats let a consumer whose server
// died be noticed within seconds instead of the default 30 s.
const (
	readerHeartbeat = time.Second
	readerExpiry    = 5 * time.Second
	// readerInactive is when the server removes a consumer no pull
	// request was waiting on for that long: one whose Reader went away
	// without deleting it (the delete failed, or the process died).
	readerInactive = 5 * time.Minute
	// readerDeleteWait bounds the deletion of a stopped consumer, which is
	// best-effort: readerInactive removes it anyway.
	readerDeleteWait = 2 * time.Second
	// readerCreateWait bounds one creation of a consumer within Next.
	readerCreateWait = 10 * time.Second
	readerMaxBytes   = 16 << 20 // bound on one fetch, above the largest entry
	// readerAhead is Reader's bound on entries read ahead: entries batch
	// events, so a few hundred keep a reader busy, and a count bound keeps
	// the JetStream client from sizing its buffer for a million messages.
	readerAhead = 512
)

// Reader opens a reader of topic's partition starting at from. It follows
// the log: Next waits for entries appended later. Close it when done
// (Broker.Close closes open readers). It reads up to readerAhead entries
// (and readerMaxBytes per fetch) ahead of Next.
func (b *Broker) Reader(ctx context.Context, topicName string, part int, from Position) (*Reader, error) {
	return b.reader(ctx, topicName, part, from, readerAhead)
}

// ReaderAhead is Reader with what the Reader holds read ahead of Next
// bounded to entries entries (each fetch from the server to readerMaxBytes,
// which stays above the largest entry). Bounded by bytes alone, the
// JetStream client sizes its buffer for a million messages: 8 MB per
// Reader, allocated when it opens. A process that opens many Readers (the
// speed layer: two per partition of every view) bounds each tighter than
// Reader does; it holds at most entries times the largest entry.
func (b *Broker) ReaderAhead(ctx context.Context, topicName string, part int, from Position, entries int) (*Reader, error) {
	return b.reader(ctx, topicName, part, from, max(entries, 1))
}

func (b *Broker) reader(ctx context.Context, topicName string, part int, from Position, ahead int) (*Reader, error) {
	t, p, err := b.partition(topicName, part)
	if err != nil {
		return nil, err
	}
	if b.isClosed() {
		return nil, ErrClosed
	}
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return nil, err
	}
	seq, minOffset, err := b.resolve(ctx, st, p, from)
	if err != nil {
		return nil, err
	}
	r := &Reader{b: b, schema: t.spec.Schema, p: p, ahead: ahead, nextSeq: seq, minOffset: minOffset, done: make(chan struct{})}
	if err := r.open(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		r.stop()
		return nil, ErrClosed
	}
	b.readers[r] = struct{}{}
	b.mu.Unlock()
	return r, nil
}

// open creates the JetStream consumer and its iterator from r.nextSeq.
func (r *Reader) open(ctx context.Context) error {
	cons, err := r.b.js.CreateConsumer(ctx, r.p.stream, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   r.nextSeq,
		// What the Reader returned is its own business: nothing is acked,
		// nothing redelivered, and the consumer is cheap (one replica, in
		// memory) since the Reader creates it again when it is lost.
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: readerInactive,
		Replicas:          1,
		MemoryStorage:     true,
	})
	if err != nil {
		return fmt.Errorf("broker: reader %q/%d: %w", r.p.topic, r.p.index, unavailable(err))
	}
	name := cons.CachedInfo().Name
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(r.ahead, readerMaxBytes),
		jetstream.PullHeartbeat(readerHeartbeat), jetstream.PullExpiry(readerExpiry),
		jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		r.deleteConsumer(name)
		return fmt.Errorf("broker: reader %q/%d: %w", r.p.topic, r.p.index, unavailable(err))
	}
	ri := newReaderIt(name, it)
	r.mu.Lock()
	select {
	case <-r.done:
		r.mu.Unlock()
		r.stopIt(ri)
		return ErrClosed
	default:
	}
	r.cur = ri
	r.mu.Unlock()
	return nil
}

// Next returns the next entry, waiting until one is appended or ctx is
// done (then ctx.Err()). After Close it returns ErrClosed. An entry that
// cannot be decoded is returned as an error wrapping ErrCorruptEntry or
// ErrSchemaMismatch; the next call goes on after it. A failure of the log
// is not returned: the Reader logs it and reads again (see Reader).
func (r *Reader) Next(ctx context.Context) (Entry, error) {
	for {
		r.mu.Lock()
		cur := r.cur
		r.mu.Unlock()
		if cur == nil {
			if err := r.reopen(ctx); err != nil {
				return Entry{}, err
			}
			continue
		}
		var got pumped
		select {
		case got = <-cur.got:
		case <-ctx.Done():
			return Entry{}, ctx.Err()
		case <-r.done:
			return Entry{}, ErrClosed
		}
		msg, err := got.msg, got.err
		if err != nil {
			if r.fail(cur, err) {
				return Entry{}, ErrClosed
			}
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			return Entry{}, fmt.Errorf("broker: read %q/%d: %w", r.p.topic, r.p.index, err)
		}
		if md.Sequence.Consumer != cur.delivered+1 {
			// Lost messages: the stream sequence after the last entry
			// returned is where a new consumer starts, so nothing is
			// skipped and nothing returned twice.
			err := fmt.Errorf("%w: consumer sequence %d after %d", errReaderGap, md.Sequence.Consumer, cur.delivered)
			if r.fail(cur, err) {
				return Entry{}, ErrClosed
			}
			continue
		}
		cur.delivered = md.Sequence.Consumer
		r.nextSeq = md.Sequence.Stream + 1
		r.failures = 0
		e, err := decodeMsg(r.p, r.schema, md.Sequence.Stream, md.Timestamp, msg.Headers(), msg.Data(), r.minOffset)
		if err != nil {
			return Entry{}, err
		}
		if len(e.Events) > 0 {
			r.minOffset = max(r.minOffset, e.End())
			return e, nil
		}
	}
}

// errReaderGap is the failure of a consumer that skipped messages.
var errReaderGap = errors.New("messages missing in the consumer's delivery")

// fail stops cur, which failed with err, so that Next creates a consumer
// again; it reports whether the Reader was closed (then err is of no
// interest: stopping ends the iterator with an error).
func (r *Reader) fail(cur *readerIt, err error) (closed bool) {
	select {
	case <-r.done:
		return true
	default:
	}
	r.b.log.Warn("broker: reader failed; creating it again", "topic", r.p.topic, "partition", r.p.index,
		"from_seq", r.nextSeq, "err", err)
	r.mu.Lock()
	if r.cur == cur {
		r.cur = nil
	}
	r.mu.Unlock()
	r.stopIt(cur)
	r.backOff()
	return false
}

// backOff counts one more consecutive failure and sets when the consumer
// may be created again.
func (r *Reader) backOff() {
	r.failures++
	r.retryAt = time.Now().Add(readerBackoff.Delay(r.failures))
}

// readerBackoff spaces the re-creations of a failed reader: 100 ms doubling
// to 5 s, without jitter (the wait is for the log to come back).
var readerBackoff = retry.Backoff{Base: 100 * time.Millisecond, Cap: 5 * time.Second}

// reopen creates the consumer again after a failure, once the backoff,
// which grows with consecutive failures, has passed.
func (r *Reader) reopen(ctx context.Context) error {
	if wait := time.Until(r.retryAt); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-r.done:
			t.Stop()
			return ErrClosed
		}
	}
	if r.b.isClosed() {
		return ErrClosed
	}
	cctx, cancel := createContext(ctx)
	err := r.open(cctx)
	cancel()
	switch {
	case err == nil:
		r.b.log.Info("broker: reader created again", "topic", r.p.topic, "partition", r.p.index, "from_seq", r.nextSeq)
		return nil
	case errors.Is(err, ErrClosed):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	r.b.log.Warn("broker: creating a reader failed; retrying", "topic", r.p.topic, "partition", r.p.index, "err", err)
	r.backOff()
	return nil
}

// createContext is the context of a re-creation within Next: it ends
// when ctx is cancelled or after readerCreateWait, but not at ctx's
// deadline. A caller polling Next with deadlines shorter than a creation
// takes (the lake writer, while the cluster elects a new leader) would
// otherwise abandon every attempt, and never read again. Close does not
// end it either: a creation cut short may have created the consumer all
// the same, out of the Reader's reach; open deletes one it finished.
func createContext(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readerCreateWait)
	stop := context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	return cctx, func() {
		stop()
		cancel()
	}
}

// Close stops the reader; a blocked Next returns ErrClosed.
func (r *Reader) Close() error {
	r.stop()
	r.b.mu.Lock()
	delete(r.b.readers, r)
	r.b.mu.Unlock()
	return nil
}

func (r *Reader) stop() {
	r.closeOnce.Do(func() {
		close(r.done)
		r.mu.Lock()
		cur := r.cur
		r.cur = nil
		r.mu.Unlock()
		if cur != nil {
			r.stopIt(cur)
		}
	})
}

// stopIt stops an iterator, waits for its subscription's goroutines, so
// that nothing outlives the reader, and deletes its consumer. nats.go
// closes the channel Closed returns only if the subscription is already
// gone when Closed is called (for Messages iterators), and a later call
// also releases earlier ones, so ask again until it is.
func (r *Reader) stopIt(ri *readerIt) {
	ri.stopOnce.Do(func() {
		close(ri.quit)
		ri.it.Stop()
		defer r.deleteConsumer(ri.name)
		defer func() {
			// The iterator's Next returns once it stopped.
			t := time.NewTimer(5 * time.Second)
			defer t.Stop()
			select {
			case <-ri.pumpDone:
			case <-t.C:
				r.b.log.Warn("broker: reader's consumer did not stop within 5s", "topic", r.p.topic, "partition", r.p.index)
			}
		}()
		c, ok := ri.it.(interface{ Closed() <-chan struct{} })
		if !ok {
			return
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			t := time.NewTimer(2 * time.Millisecond)
			select {
			case <-c.Closed():
				t.Stop()
				return
			case <-t.C:
			}
		}
		r.b.log.Warn("broker: reader did not stop within 5s", "topic", r.p.topic, "partition", r.p.index)
	})
}

// deleteConsumer removes a consumer the Reader no longer reads, within
// readerDeleteWait. It is best-effort: a consumer left behind (the server
// is gone, the connection is down) is removed by the server after
// readerInactive, so a Reader does not wait for a connection to come back
// to stop.
func (r *Reader) deleteConsumer(name string) {
	if r.b.nc.Status() != nats.CONNECTED {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), readerDeleteWait)
	defer cancel()
	if err := r.b.js.DeleteConsumer(ctx, r.p.stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		r.b.log.Debug("broker: deleting a reader's consumer failed; the server removes it when idle",
			"topic", r.p.topic, "partition", r.p.index, "consumer", name, "err", err)
	}
}

// Fetch returns up to max events of topic's partition from from on, as
// entries (the last one cut to fit), without waiting for new ones. It is
// for browsing the log; consumers use a Reader.
func (b *Broker) Fetch(ctx context.Context, topicName string, part int, from Position, max int) ([]Entry, error) {
	return b.FetchBudget(ctx, topicName, part, from, max, 0)
}

// FetchBudget is Fetch that also stops once the entries it read hold
// maxBytes of stored payload (Entry.Bytes; 0: no limit), so that browsing
// large events costs bounded memory. It returns the first entry whatever
// its size, so a reader always gets on.
func (b *Broker) FetchBudget(ctx context.Context, topicName string, part int, from Position, max, maxBytes int) ([]Entry, error) {
	t, p, err := b.partition(topicName, part)
	if err != nil {
		return nil, err
	}
	if b.isClosed() {
		return nil, ErrClosed
	}
	if max <= 0 {
		return nil, nil
	}
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return nil, err
	}
	seq, minOffset, err := b.resolve(ctx, st, p, from)
	if err != nil {
		return nil, err
	}
	var out []Entry
	total, bytes := 0, 0
	for total < max && (maxBytes <= 0 || bytes < maxBytes) {
		m, err := b.getAtOrAfter(ctx, st, p, seq)
		if err != nil {
			return nil, err
		}
		if m == nil {
			break
		}
		e, err := decodeMsg(p, t.spec.Schema, m.Sequence, m.Time, m.Header, m.Data, minOffset)
		if err != nil {
			return nil, err
		}
		seq = m.Sequence + 1
		if len(e.Events) == 0 {
			continue
		}
		if len(e.Events) > max-total {
			e.Bytes = e.Bytes * (max - total) / len(e.Events)
			e.Events = e.Events[:max-total]
		}
		total += len(e.Events)
		bytes += e.Bytes
		out = append(out, e)
	}
	return out, nil
}

// decodeMsg decodes one stored entry, stored at appended, dropping events
// before minOffset. The events of an entry decoded a moment before, by a
// Reader or a fetch of the partition, are taken from the partition's
// decodedCache instead of decoded again.
func decodeMsg(p *partition, schema event.Schema, seq uint64, appended time.Time, h nats.Header, data []byte, minOffset int64) (Entry, error) {
	off, count, minTime, err := parseHeaders(h)
	if err != nil {
		return Entry{}, fmt.Errorf("broker: %q/%d entry %d: %w", p.topic, p.index, seq, err)
	}
	if off+count <= minOffset {
		return Entry{Topic: p.topic, Partition: p.index, Offset: off + count, Seq: seq}, nil
	}
	events := p.decoded.get(seq, appended, len(data), schema)
	if events == nil {
		if events, err = DecodeEntry(data, schema, nil); err != nil {
			return Entry{}, fmt.Errorf("broker: %q/%d entry %d: %w", p.topic, p.index, seq, err)
		}
		if int64(len(events)) == count {
			p.decoded.put(seq, appended, len(data), schema, events)
		}
	}
	if int64(len(events)) != count {
		return Entry{}, fmt.Errorf("broker: %q/%d entry %d: %w: header count %d, payload %d events", p.topic, p.index, seq, ErrCorruptEntry, count, len(events))
	}
	e := Entry{Topic: p.topic, Partition: p.index, Offset: off, Seq: seq, Ingest: events[0].Ingest,
		Appended: appended.UnixMicro(), MinTime: minTime, Events: events, Bytes: len(data)}
	if skip := minOffset - off; skip > 0 {
		e.Events = e.Events[skip:]
		e.Offset += skip
		e.Bytes = e.Bytes * len(e.Events) / int(count)
	}
	return e, nil
}

// resolve turns a position into the stream sequence to start at and the
// smallest offset to deliver.
func (b *Broker) resolve(ctx context.Context, st jetstream.Stream, p *partition, from Position) (uint64, int64, error) {
	info, err := st.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("broker: %q/%d: stream info: %w", p.topic, p.index, unavailable(err))
	}
	s := info.State
	next := s.LastSeq + 1
	switch from.kind {
	case posStart:
		return max(s.FirstSeq, 1), 0, nil
	case posEnd:
		return next, 0, nil
	case posOffset:
		end, err := b.endAt(ctx, st, p, s.LastSeq)
		if err != nil {
			return 0, 0, err
		}
		m, err := b.seekOffset(ctx, st, p, s, end, from.offset)
		if err != nil || m == nil {
			// Nothing at or before the offset: start at the first entry.
			return max(s.FirstSeq, 1), from.offset, err
		}
		off, count, _, _ := parseHeaders(m.Header)
		if from.offset < off+count {
			return m.Sequence, from.offset, nil
		}
		return m.Sequence + 1, from.offset, nil
	default:
		m, err := b.seek(ctx, st, p, s, func(m *jetstream.RawStreamMsg) (bool, error) {
			return m.Time.Before(from.t), nil
		})
		if err != nil || m == nil {
			return max(s.FirstSeq, 1), 0, err
		}
		return m.Sequence + 1, 0, nil
	}
}

// seek returns the last entry for which before is true, or nil when it is
// false for the first entry held (or none is held). before must be true
// for a prefix of the stream and false after it: offsets and store times
// grow with the sequence. It reads O(log n) entries; sequences may have
// gaps where entries were removed.
func (b *Broker) seek(ctx context.Context, st jetstream.Stream, p *partition, s jetstream.StreamState,
	before func(*jetstream.RawStreamMsg) (bool, error)) (*jetstream.RawStreamMsg, error) {
	if s.Msgs == 0 {
		return nil, nil
	}
	lo, err := b.getAtOrAfter(ctx, st, p, s.FirstSeq)
	if err != nil || lo == nil {
		return nil, err
	}
	ok, err := before(lo)
	if err != nil {
		return nil, fmt.Errorf("broker: %q/%d entry %d: %w", p.topic, p.index, lo.Sequence, err)
	}
	if !ok {
		return nil, nil
	}
	hi := s.LastSeq
	for lo.Sequence < hi {
		mid := lo.Sequence + (hi-lo.Sequence+1)/2
		m, err := b.getAtOrAfter(ctx, st, p, mid)
		if err != nil {
			return nil, err
		}
		if m == nil || m.Sequence > hi {
			hi = mid - 1
			continue
		}
		ok, err := before(m)
		if err != nil {
			return nil, fmt.Errorf("broker: %q/%d entry %d: %w", p.topic, p.index, m.Sequence, err)
		}
		if ok {
			lo = m
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}

// seekOffset returns the entry holding offset target, or the last entry
// before it; nil when the first entry held starts after it. end is the
// partition's end offset. Entries are usually of similar size, so it probes
// where the offset should be by interpolation, alternating with bisection to
// keep the worst case at O(log n) reads: a consumer's lag costs a few reads,
// not twenty.
func (b *Broker) seekOffset(ctx context.Context, st jetstream.Stream, p *partition, s jetstream.StreamState, end, target int64) (*jetstream.RawStreamMsg, error) {
	if s.Msgs == 0 {
		return nil, nil
	}
	lo, err := b.getAtOrAfter(ctx, st, p, s.FirstSeq)
	if err != nil || lo == nil {
		return nil, err
	}
	loOff, _, _, err := parseHeaders(lo.Header)
	if err != nil {
		return nil, fmt.Errorf("broker: %q/%d entry %d: %w", p.topic, p.index, lo.Sequence, err)
	}
	if loOff > target {
		return nil, nil
	}
	// Invariant: lo holds an offset <= target; every entry after hiSeq
	// starts at hiOff or later, and hiOff > target.
	hiSeq, hiOff := s.LastSeq, end
	for step := 0; lo.Sequence < hiSeq; step++ {
		width := hiSeq - lo.Sequence
		mid := lo.Sequence + (width+1)/2
		if step%2 == 0 && hiOff > loOff {
			frac := float64(target-loOff) / float64(hiOff-loOff)
			mid = lo.Sequence + uint64(frac*float64(width+1))
		}
		mid = min(max(mid, lo.Sequence+1), hiSeq)
		m, err := b.getAtOrAfter(ctx, st, p, mid)
		if err != nil {
			return nil, err
		}
		if m == nil || m.Sequence > hiSeq {
			hiSeq = mid - 1
			continue
		}
		off, _, _, err := parseHeaders(m.Header)
		if err != nil {
			return nil, fmt.Errorf("broker: %q/%d entry %d: %w", p.topic, p.index, m.Sequence, err)
		}
		if off <= target {
			lo, loOff = m, off
		} else {
			hiSeq, hiOff = mid-1, off
		}
	}
	return lo, nil
}
