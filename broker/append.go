package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// ErrUnavailable is returned (wrapped, with the cause) when the log cannot
// be reached or does not answer in time. Nothing is known about whether an
// append that failed with it was stored; ingest answers 503.
var ErrUnavailable error = &sentinel{"broker: log unavailable", "unavailable"}

// sentinel is an error value that also says, in a word or two, what
// anyone may be told of it (/readyz shows the reason of a part that is
// down, never an error's text).
type sentinel struct{ msg, reason string }

func (e *sentinel) Error() string  { return e.msg }
func (e *sentinel) Reason() string { return e.reason }

const (
	// appendAttempt bounds one publish; a leader election in a cluster
	// takes a few seconds, after which the append is retried.
	appendAttempt = 5 * time.Second
	// appendBudget bounds an Append whose ctx has no deadline.
	appendBudget = 15 * time.Second
)

var payloadPool = sync.Pool{New: func() any { return new([]byte) }}

// Placement is where one event of AppendUnique is in the log.
type Placement struct {
	// Partition and Offset are the event's, or for a duplicate those of
	// the event with the same id that the log already held.
	Partition int
	Offset    int64
	Duplicate bool
}

// Append writes events, all of one partition of topic, as one log entry and
// returns the offset of the first; the others follow it. It returns only
// after JetStream acknowledged the entry: fsynced on an embedded server with
// sync "always", stored on a quorum of a replicated stream. Every event's
// Values must be in the order of the topic's schema; Event.Ingest is
// ignored, the entry is stamped with the broker clock instead.
//
// The broker numbers events itself and stores with the expectation of the
// stream's last sequence, so writers in other processes never produce
// overlapping offsets: on a conflict Append reads what the others appended
// and retries. A retry of an append whose acknowledgement was lost is
// recognised by its message id and not stored twice.
//
// Appends to one partition are serialised (a pipelined append could not
// tell another writer's entry from its own predecessor by sequence alone);
// appends to different partitions run in parallel. Safe for concurrent use.
//
// Errors: ErrUnknownTopic, ErrUnknownPartition, ErrUnavailable when the log
// is down or ctx's deadline (15 s without one) passes first, ErrDiskFull
// when the log's disk (or an external cluster's storage) is full, ctx.Err()
// when ctx is cancelled, ErrClosed.
func (b *Broker) Append(ctx context.Context, topicName string, part int, events []event.Event) (int64, error) {
	return b.appendEntry(ctx, topicName, part, events, nil)
}

// appendEntry is Append, and AppendFrom when src is set.
func (b *Broker) appendEntry(ctx context.Context, topicName string, part int, events []event.Event, src *sourceAppend) (int64, error) {
	out, err := b.append(ctx, topicName, part, events, nil, src)
	if err != nil {
		return 0, err
	}
	return out[0].Offset, nil
}

// AppendUnique is Append for events with ids of their own: an event with
// unique[i] set whose id the log already holds within
// ingest.dedup_window (at most ingest.dedup_max_ids ids per topic) — in
// this partition, whichever process appended it, or in another partition of
// the topic appended through this process — is not appended again, nor is
// a repeat of an earlier event of the same call; its Placement is the
// first one's, marked Duplicate. The others are appended as one entry in
// their order. Events without unique set are always appended and not
// remembered (their ids are generated). The first call on a partition
// builds its index from the log (PrepareDedup). Errors as Append's.
func (b *Broker) AppendUnique(ctx context.Context, topicName string, part int, events []event.Event, unique []bool) ([]Placement, error) {
	if len(unique) != len(events) {
		return nil, fmt.Errorf("broker: append to %q partition %d: %d events, %d unique flags", topicName, part, len(events), len(unique))
	}
	return b.append(ctx, topicName, part, events, unique, nil)
}

// append is AppendUnique, and AppendFrom when src is set.
func (b *Broker) append(ctx context.Context, topicName string, part int, events []event.Event, unique []bool, src *sourceAppend) ([]Placement, error) {
	t, p, err := b.partition(topicName, part)
	if err != nil {
		return nil, err
	}
	if b.isClosed() {
		return nil, ErrClosed
	}
	if b.readOnly {
		return nil, fmt.Errorf("broker: append to %q partition %d: another site's log is read-only", topicName, part)
	}
	n := len(events)
	if n == 0 {
		return nil, fmt.Errorf("broker: append to %q partition %d: no events", topicName, part)
	}
	if n > MaxEntryEvents {
		return nil, fmt.Errorf("broker: append to %q partition %d: %d events, at most %d fit one entry", topicName, part, n, MaxEntryEvents)
	}
	schema := t.spec.Schema
	for i := range events {
		if len(events[i].Values) != len(schema) {
			return nil, fmt.Errorf("broker: append to %q partition %d: event %d (id %q) has %d values, the schema %d fields",
				topicName, part, i, events[i].ID, len(events[i].Values), len(schema))
		}
	}
	a := &appendCall{b: b, p: p, schema: schema, events: events, unique: unique, src: src, start: time.Now()}
	if unique != nil {
		// Hashing needs no lock: do it before taking the partition.
		a.hashes = make([]idHash, n)
		for i := range events {
			if unique[i] {
				a.hashes[i] = b.hashID(events[i].ID)
			}
		}
	}

	if b.disk != nil && b.disk.refuse(time.Now()) {
		return nil, b.disk.err(p.topic, p.index)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, appendBudget)
		defer cancel()
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, b.ctxErr(ctx, p, nil)
	}
	defer func() { <-p.sem }()
	return a.run(ctx)
}

// appendCall is one Append in progress; it runs holding its partition's sem.
type appendCall struct {
	b      *Broker
	p      *partition
	schema event.Schema
	events []event.Event
	unique []bool        // nil: append every event
	src    *sourceAppend // AppendFrom's origin; nil for Append
	hashes []idHash      // where unique
	start  time.Time

	out      []Placement
	placed   []bool
	dupOf    []int     // event index whose placement a repeat takes; -1 none
	attempts []attempt // payloads published so far, newest last
	send     []int     // events of the current payload
	sendEvs  []event.Event
}

// attempt is one payload published by an appendCall.
type attempt struct {
	id  string // Nats-Msg-Id
	idx []int  // the events it holds, in order
}

func (a *appendCall) run(ctx context.Context) ([]Placement, error) {
	b, p := a.b, a.p
	n := len(a.events)
	a.out = make([]Placement, n)
	a.placed = make([]bool, n)
	bufp := payloadPool.Get().(*[]byte)
	defer payloadPool.Put(bufp)

	var x *partDedup
	if a.unique != nil {
		var err error
		if x, err = b.dedupIndexOf(ctx, p); err != nil {
			return nil, b.wrapErr(ctx, p, err)
		}
	} else {
		x = p.dedup // nil unless this partition deduplicates
	}
	conflicts := 0
	// final says the append's error is decided; otherwise ctx ended while
	// waiting to retry the error Do returns.
	final := false
	// Retries after transient failures and repeated conflicts wait 25 ms
	// doubling to 1 s, without jitter: the wait is for the log to come
	// back, and competing writers are already out of step.
	backoff := retry.Backoff{Base: 25 * time.Millisecond, Cap: time.Second}
	err := backoff.Do(ctx, func(int) error {
		for {
			_, err := a.attempt(ctx, x, bufp)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, ErrAhead):
				final = true
				return retry.Permanent(err)
			case b.disk != nil && b.disk.full.Load():
				// Found full while this entry waited: a write that fails
				// for space gets no answer, so waiting on would only
				// time out.
				final = true
				return retry.Permanent(b.disk.err(p.topic, p.index))
			case storageExhausted(err):
				final = true
				return retry.Permanent(fmt.Errorf("%w: append to %q partition %d: %w", ErrDiskFull, p.topic, p.index, err))
			case ctx.Err() != nil:
				final = true
				return retry.Permanent(b.ctxErr(ctx, p, err))
			case wrongLastSequence(err) && conflicts < 8:
				// Another writer appended, or our own earlier attempt
				// landed: read what it appended and retry at once.
				conflicts++
				b.log.Debug("broker: append conflict, reading the end of the log", "topic", p.topic, "partition", p.index, "err", err)
			case wrongLastSequence(err) || transient(err):
				// Past a few conflicts in a row, back off so that
				// competing writers do not keep colliding.
				b.log.Debug("broker: append retry", "topic", p.topic, "partition", p.index, "err", err)
				return err
			case b.isClosed():
				final = true
				return retry.Permanent(fmt.Errorf("broker: append to %q partition %d: %w (%w)", p.topic, p.index, ErrClosed, err))
			default:
				final = true
				return retry.Permanent(fmt.Errorf("broker: append to %q partition %d: %w", p.topic, p.index, err))
			}
		}
	}, nil)
	if err != nil {
		if !final {
			err = b.ctxErr(ctx, p, err)
		}
		return nil, err
	}
	b.metrics.appendSeconds.Observe(time.Since(a.start).Seconds())
	return a.out, nil
}

// wrapErr turns an error of the index's reads into Append's errors.
func (b *Broker) wrapErr(ctx context.Context, p *partition, err error) error {
	if ctx.Err() != nil {
		return b.ctxErr(ctx, p, err)
	}
	if errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("%w: append to %q partition %d: %w", ErrUnavailable, p.topic, p.index, err)
	}
	return err
}

func (b *Broker) ctxErr(ctx context.Context, p *partition, last error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("broker: append to %q partition %d: %w", p.topic, p.index, ctx.Err())
	}
	if last == nil {
		last = ctx.Err()
	}
	return fmt.Errorf("%w: append to %q partition %d: %w", ErrUnavailable, p.topic, p.index, last)
}

// attempt brings the partition's append position (and index) up to date,
// settles the events found to be duplicates and publishes the rest once.
// done is true when every event is placed.
func (a *appendCall) attempt(ctx context.Context, x *partDedup, bufp *[]byte) (done bool, err error) {
	b, p := a.b, a.p
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return false, err
	}
	if !p.known {
		info, err := st.Info(ctx)
		if err != nil {
			return false, err
		}
		last := info.State.LastSeq
		if x != nil && last > x.seq {
			// Index what others appended since, and find out whether an
			// earlier attempt of this call is among it.
			mine := make([]string, len(a.attempts))
			for i, at := range a.attempts {
				mine[i] = at.id
			}
			found, err := b.catchUp(ctx, st, p, x, last, mine)
			if err != nil {
				return false, err
			}
			if found != nil {
				a.settleLanded(found)
				return true, nil
			}
		}
		if x != nil {
			x.seq = last
		}
		// (lastSeq, next) always describe one entry, so an unchanged last
		// sequence keeps next.
		if p.lastSeq != last || last == 0 {
			end, err := b.endAt(ctx, st, p, last)
			if err != nil {
				return false, err
			}
			p.lastSeq, p.next = last, end
		}
		p.known = true
	}
	a.filter(x)
	if len(a.send) == 0 {
		a.settleRepeats()
		return true, nil
	}
	at := a.payload(bufp)
	minTime := a.sendEvs[0].Time
	for i := range a.sendEvs {
		minTime = min(minTime, a.sendEvs[i].Time)
	}
	payload := *bufp
	// MaxPayload is 0 until the first connection; the server refuses
	// oversized entries then.
	if limit := b.nc.MaxPayload(); limit > 0 && int64(len(payload))+1024 > limit {
		return false, fmt.Errorf("broker: append to %q partition %d: entry of %d bytes exceeds the server's max payload %d; append fewer events at once",
			p.topic, p.index, len(payload), limit)
	}
	msg := &nats.Msg{
		Subject: p.subject,
		Data:    payload,
		Header: nats.Header{
			HeaderOffset:  []string{strconv.FormatInt(p.next, 10)},
			HeaderCount:   []string{strconv.Itoa(len(a.send))},
			HeaderMinTime: []string{strconv.FormatInt(minTime, 10)},
		},
	}
	if src := a.src; src != nil {
		// Only if the partition holds nothing of the source from the
		// append's first event on; see AppendFrom.
		if err := b.checkSource(ctx, st, p, src); err != nil {
			return false, err
		}
		msg.Header[HeaderSource] = []string{src.o.Source}
		msg.Header[HeaderSourceEnd] = []string{strconv.FormatInt(src.o.End, 10)}
	}
	actx, cancel := context.WithTimeout(ctx, appendAttempt)
	defer cancel()
	if b.disk != nil {
		// A full disk ends the wait for the acknowledgement at once.
		defer context.AfterFunc(b.disk.fullCtx(), cancel)()
	}
	ack, err := b.js.PublishMsg(actx, msg, jetstream.WithExpectLastSequence(p.lastSeq), jetstream.WithMsgID(at.id))
	if err != nil {
		// The entry may still be stored; find out from the log next time.
		p.known = false
		return false, err
	}
	if ack.Duplicate {
		// An earlier attempt with this payload was stored and its
		// acknowledgement lost; its header holds the offsets it was given.
		p.known = false
		m, err := st.GetMsg(ctx, ack.Sequence)
		if err != nil {
			return false, err
		}
		off, _, _, err := parseHeaders(m.Header)
		if err != nil {
			return false, fmt.Errorf("entry %d: %w", ack.Sequence, err)
		}
		a.settleLanded(&landed{attempt: len(a.attempts) - 1, offset: off, seq: ack.Sequence})
		a.src.stored(p, ack.Sequence)
		return true, nil
	}
	off := p.next
	p.lastSeq, p.next = ack.Sequence, p.next+int64(len(a.send))
	a.src.stored(p, ack.Sequence)
	ingest := a.sendEvs[0].Ingest
	if x != nil {
		x.x.mu.Lock()
	}
	for k, i := range a.send {
		a.out[i], a.placed[i] = Placement{Partition: p.index, Offset: off + int64(k)}, true
		if x != nil && a.unique != nil && a.unique[i] {
			x.x.insert(a.hashes[i], idOrigin{offset: off + int64(k), at: ingest, partition: x.part})
		}
	}
	if x != nil {
		x.x.evict(ingest)
		x.x.mu.Unlock()
		x.seq = ack.Sequence
	}
	a.settleRepeats()
	p.markMu.Lock()
	p.markSeq, p.markEnd, p.markDirty = p.lastSeq, p.next, true
	p.markMu.Unlock()
	p.m.appends.Inc()
	p.m.events.Add(float64(len(a.send)))
	p.m.bytes.Add(float64(len(payload)))
	return true, nil
}

// filter settles the events whose ids the index holds and the repeats
// within the call, and lists the others in a.send.
func (a *appendCall) filter(pd *partDedup) {
	a.send = a.send[:0]
	var seen map[idHash]int
	var horizon int64
	var x *dedupIndex
	if a.unique != nil {
		x = pd.x
		x.mu.Lock()
		defer x.mu.Unlock()
		horizon = a.b.now().UnixMicro() - x.window
		if a.dupOf == nil {
			a.dupOf = make([]int, len(a.events))
		}
	}
	for i := range a.events {
		if a.placed[i] {
			continue
		}
		if a.unique != nil {
			a.dupOf[i] = -1
			if a.unique[i] {
				if o, ok := x.lookup(a.hashes[i], horizon); ok {
					a.out[i], a.placed[i] = Placement{Partition: int(o.partition), Offset: o.offset, Duplicate: true}, true
					continue
				}
				if seen == nil {
					seen = make(map[idHash]int)
				}
				if first, ok := seen[a.hashes[i]]; ok {
					a.dupOf[i] = first
					continue
				}
				seen[a.hashes[i]] = i
			}
		}
		a.send = append(a.send, i)
	}
}

// payload encodes the events of a.send into *bufp and returns the attempt
// it is: the previous one again when the events are the same (so that
// JetStream recognises a retry of it), else a new one.
func (a *appendCall) payload(bufp *[]byte) attempt {
	if k := len(a.attempts) - 1; k >= 0 && slices.Equal(a.attempts[k].idx, a.send) {
		return a.attempts[k]
	}
	a.sendEvs = a.sendEvs[:0]
	for _, i := range a.send {
		a.sendEvs = append(a.sendEvs, a.events[i])
	}
	ingest := a.b.now().UnixMicro()
	for i := range a.sendEvs {
		a.sendEvs[i].Ingest = ingest
	}
	*bufp = AppendEntry((*bufp)[:0], a.schema, ingest, a.sendEvs)
	at := attempt{id: nuid.Next(), idx: slices.Clone(a.send)}
	a.attempts = append(a.attempts, at)
	return at
}

// settleLanded places the events of an attempt found stored in the log.
func (a *appendCall) settleLanded(l *landed) {
	at := a.attempts[l.attempt]
	for k, i := range at.idx {
		a.out[i], a.placed[i] = Placement{Partition: a.p.index, Offset: l.offset + int64(k)}, true
	}
	a.settleRepeats()
	a.b.log.Debug("broker: an earlier attempt of the append was stored", "topic", a.p.topic, "partition", a.p.index, "seq", l.seq)
}

// settleRepeats gives the repeats within the call their first's placement.
func (a *appendCall) settleRepeats() {
	for i, f := range a.dupOf {
		if f >= 0 && !a.placed[i] && a.placed[f] {
			a.out[i], a.placed[i] = Placement{Partition: a.out[f].Partition, Offset: a.out[f].Offset, Duplicate: true}, true
		}
	}
}

func wrongLastSequence(err error) bool {
	var je jetstream.JetStreamError
	if errors.As(err, &je) && je.APIError() != nil {
		c := je.APIError().ErrorCode
		return c == jetstream.JSErrCodeStreamWrongLastSequence || c == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// transient reports whether err means the log is (maybe briefly) out of
// reach rather than that the request was wrong.
func transient(err error) bool {
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return true
	}
	var je jetstream.JetStreamError
	if errors.As(err, &je) && je.APIError() != nil {
		return je.APIError().Code >= 500
	}
	return false
}

// unavailable marks transient errors with ErrUnavailable, keeping the cause.
func unavailable(err error) error {
	if err != nil && transient(err) && !errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
