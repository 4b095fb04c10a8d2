package broker

import (
	"context"
	"errors"
	"fmt"
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

// Append writes events, all of one partition of topic, as one log entry and
// returns the offset of the first; the others follow it. It returns only
// after JetStream acknowledged the entry: fsynced on an embedded server with
// sync "always", stored on a quorum of a replicated stream. Every event's
// Values must be in the order of the topic's schema; Event.Ingest is
// ignored, the entry is stamped with the broker clock instead.
//
// The broker numbers events itself and stores with the expectation of the
// stream's last sequence, so writers in other processes never produce
// overlapping offsets: on a conflict Append re-reads the end of the log and
// retries. A retry of an append whose acknowledgement was lost is
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
	t, p, err := b.partition(topicName, part)
	if err != nil {
		return 0, err
	}
	if b.isClosed() {
		return 0, ErrClosed
	}
	if b.readOnly {
		return 0, fmt.Errorf("broker: append to %q partition %d: another site's log is read-only", topicName, part)
	}
	n := len(events)
	if n == 0 {
		return 0, fmt.Errorf("broker: append to %q partition %d: no events", topicName, part)
	}
	if n > MaxEntryEvents {
		return 0, fmt.Errorf("broker: append to %q partition %d: %d events, at most %d fit one entry", topicName, part, n, MaxEntryEvents)
	}
	schema := t.spec.Schema
	minTime := events[0].Time
	for i := range events {
		if len(events[i].Values) != len(schema) {
			return 0, fmt.Errorf("broker: append to %q partition %d: event %d (id %q) has %d values, the schema %d fields",
				topicName, part, i, events[i].ID, len(events[i].Values), len(schema))
		}
		minTime = min(minTime, events[i].Time)
	}
	start := time.Now()
	bufp := payloadPool.Get().(*[]byte)
	defer payloadPool.Put(bufp)
	payload := AppendEntry((*bufp)[:0], schema, b.now().UnixMicro(), events)
	*bufp = payload
	// MaxPayload is 0 until the first connection; the server refuses
	// oversized entries then.
	if limit := b.nc.MaxPayload(); limit > 0 && int64(len(payload))+1024 > limit {
		return 0, fmt.Errorf("broker: append to %q partition %d: entry of %d bytes exceeds the server's max payload %d; append fewer events at once",
			topicName, part, len(payload), limit)
	}

	if b.disk != nil && b.disk.refuse(time.Now()) {
		return 0, b.disk.err(p.topic, p.index)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, appendBudget)
		defer cancel()
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, b.ctxErr(ctx, p, nil)
	}
	defer func() { <-p.sem }()

	id := nuid.Next()
	conflicts := 0
	var off int64
	// final says the append's error is decided; otherwise ctx ended while
	// waiting to retry the error Do returns.
	final := false
	// Retries after transient failures and repeated conflicts wait 25 ms
	// doubling to 1 s, without jitter: the wait is for the log to come
	// back, and competing writers are already out of step.
	backoff := retry.Backoff{Base: 25 * time.Millisecond, Cap: time.Second}
	err = backoff.Do(ctx, func(int) error {
		for {
			var err error
			off, err = b.appendOnce(ctx, p, payload, id, n, minTime, src)
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
				// landed: re-read the end of the log and retry at once.
				conflicts++
				b.log.Debug("broker: append conflict, re-reading the end of the log", "topic", p.topic, "partition", p.index, "err", err)
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
		return 0, err
	}
	p.m.appends.Inc()
	p.m.events.Add(float64(n))
	p.m.bytes.Add(float64(len(payload)))
	b.metrics.appendSeconds.Observe(time.Since(start).Seconds())
	return off, nil
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

// appendOnce makes one attempt; the caller holds p.sem.
func (b *Broker) appendOnce(ctx context.Context, p *partition, payload []byte, id string, n int, minTime int64, src *sourceAppend) (int64, error) {
	st, err := b.streamOf(ctx, p)
	if err != nil {
		return 0, err
	}
	if !p.known {
		info, err := st.Info(ctx)
		if err != nil {
			return 0, err
		}
		end, err := b.endAt(ctx, st, p, info.State.LastSeq)
		if err != nil {
			return 0, err
		}
		p.lastSeq, p.next, p.known = info.State.LastSeq, end, true
	}
	msg := &nats.Msg{
		Subject: p.subject,
		Data:    payload,
		Header: nats.Header{
			HeaderOffset:  []string{strconv.FormatInt(p.next, 10)},
			HeaderCount:   []string{strconv.Itoa(n)},
			HeaderMinTime: []string{strconv.FormatInt(minTime, 10)},
		},
	}
	if src != nil {
		// Only if the partition holds nothing of the source from the
		// append's first event on; see AppendFrom.
		if err := b.checkSource(ctx, st, p, src); err != nil {
			return 0, err
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
	ack, err := b.js.PublishMsg(actx, msg, jetstream.WithExpectLastSequence(p.lastSeq), jetstream.WithMsgID(id))
	if err != nil {
		// The entry may still be stored; find out from the log next time.
		p.known = false
		return 0, err
	}
	if ack.Duplicate {
		// An earlier attempt was stored and its acknowledgement lost; its
		// header holds the offsets it was given.
		p.known = false
		m, err := st.GetMsg(ctx, ack.Sequence)
		if err != nil {
			return 0, err
		}
		off, _, _, err := parseHeaders(m.Header)
		if err != nil {
			return 0, fmt.Errorf("entry %d: %w", ack.Sequence, err)
		}
		src.stored(p, ack.Sequence)
		return off, nil
	}
	off := p.next
	p.lastSeq, p.next = ack.Sequence, p.next+int64(n)
	src.stored(p, ack.Sequence)
	p.markMu.Lock()
	p.markSeq, p.markEnd, p.markDirty = p.lastSeq, p.next, true
	p.markMu.Unlock()
	return off, nil
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
