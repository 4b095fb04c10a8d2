package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Record is one record of a produce request of another protocol (Kafka):
// Value is one event as a JSON object, decoded and validated exactly like
// a record of an HTTP body; ID, when not empty, is the event id and takes
// precedence over an "id" key of the value.
type Record struct {
	Value []byte
	ID    string
}

// Result says where one record landed: its partition and offset, and
// whether it was a duplicate of an event appended earlier (then the
// partition and offset are that event's).
type Result struct {
	Partition int32
	Offset    int64
	Duplicate bool
}

// RecordError rejects a produce request because of one record.
type RecordError struct {
	// Record is the 0-based index of the record in the request.
	Record int
	// Field names the offending key, empty when the record as a whole is
	// at fault.
	Field string
	// Msg is the reason.
	Msg string
}

// Error reads as the error of an HTTP body's record: "record 3: field
// "cpu": expected double, got string".
func (e *RecordError) Error() string {
	return (&decodeError{Record: e.Record, Field: e.Field, Msg: e.Msg}).Error()
}

// Errors of PublishRecords, besides *RecordError and the log's errors
// (transient ones wrap broker.ErrUnavailable).
var (
	ErrUnknownTopic     = errors.New("ingest: unknown topic")
	ErrUnknownPartition = errors.New("ingest: unknown partition")
	// ErrNotReady: ingest is starting (rebuilding its dedup index) or
	// stopping; retry later.
	ErrNotReady = errNotReady
	// ErrOverloaded: max_in_flight events are already waiting for the log;
	// retry later.
	ErrOverloaded = errors.New("ingest: too many events in flight")
	// ErrTooLarge: more events than max_in_flight in one request.
	ErrTooLarge = errors.New("ingest: request holds more events than ingest.max_in_flight")
)

// PublishRecords appends records to one partition of topic, in their
// order, after validating every one of them against the topic's schema:
// one invalid record (*RecordError) rejects them all and nothing is
// written. It returns once every record is durable, with the same
// guarantee and the same deduplication by id as HTTP ingest.
//
// The records that are not duplicates get consecutive offsets: when they
// need more than one log entry, no other request's events come between
// them. (A record whose id another request is appending at the same moment,
// and which that request fails to append, is appended afterwards and may
// break the run; this is the only exception.)
//
// If the log fails, some records may be durable and others not; retried
// with the same ids, the durable ones are answered as duplicates.
func (in *Ingest) PublishRecords(ctx context.Context, topic string, partition int, recs []Record) ([]Result, error) {
	ts := in.topics[topic]
	if ts == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownTopic, topic)
	}
	if partition < 0 || partition >= len(ts.batchers) {
		return nil, fmt.Errorf("%w: %q has %d partitions, not %d", ErrUnknownPartition, topic, len(ts.batchers), partition)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	if !in.Ready() {
		return nil, errNotReady
	}
	arr := ts.arrivals.arrive()
	defer arr.leave()
	start := in.now()
	events, derr := ts.dec.decodeRecords(recs, start.UnixMicro())
	if derr != nil {
		ts.m.rejects[reasonInvalid].Inc()
		return nil, derr
	}
	for i := range events {
		if eventBytes(&events[i]) > maxEntryBytes {
			ts.m.rejects[reasonTooLarge].Inc()
			return nil, &RecordError{Record: i, Msg: "event larger than a log entry may hold (" + strconv.Itoa(maxEntryBytes) + " bytes)"}
		}
	}
	n := len(events)
	if int64(n) > in.maxInFlight {
		ts.m.rejects[reasonTooLarge].Inc()
		return nil, ErrTooLarge
	}
	if !in.acquire(n) {
		ts.m.rejects[reasonOverloaded].Inc()
		return nil, ErrOverloaded
	}
	defer in.release(n)

	dedupable := in.assignIDs(events, "", start)
	results, accepted, err := in.publish(ts, events, dedupable, placement{partition: partition, contiguous: true}, nil, arr)
	if err != nil {
		ts.m.rejects[reasonUnavailable].Inc()
		return nil, err
	}
	ts.m.events.Add(float64(accepted))
	ts.m.duplicates.Add(float64(n - accepted))
	size := 0
	for i := range recs {
		size += len(recs[i].Value)
	}
	ts.m.bytes.Add(float64(size))
	in.metrics.ackSeconds.Observe(in.now().Sub(start).Seconds())
	out := make([]Result, n)
	for i, r := range results {
		out[i] = Result{Partition: r.partition, Offset: r.offset, Duplicate: r.duplicate}
	}
	return out, nil
}

// decodeRecords decodes each record's value as exactly one JSON object.
// The values are copied into one string, which the events' strings slice.
func (d *decoder) decodeRecords(recs []Record, ingest int64) ([]event.Event, *RecordError) {
	total := 0
	for i := range recs {
		total += len(recs[i].Value)
	}
	var sb strings.Builder
	sb.Grow(total)
	for i := range recs {
		sb.Write(recs[i].Value)
	}
	all := sb.String()

	var seen [32]uint32
	st := decodeState{d: d, ingest: ingest, seen: seen[:0]}
	if len(d.schema) <= len(seen) {
		st.seen = seen[:len(d.schema)]
	} else {
		st.seen = make([]uint32, len(d.schema))
	}
	st.s = all
	st.reserve(len(recs))
	pos := 0
	for i := range recs {
		st.s, st.pos = all[pos:pos+len(recs[i].Value)], 0
		pos += len(recs[i].Value)
		st.skipSpace()
		if st.pos >= len(st.s) {
			return nil, &RecordError{Record: i, Msg: "empty value: want one JSON object"}
		}
		if st.s[st.pos] != '{' {
			return nil, &RecordError{Record: i, Msg: "expected a JSON object, got " + st.describe()}
		}
		if err := st.object(i, st.pos); err != nil {
			return nil, &RecordError{Record: i, Field: err.Field, Msg: err.Msg}
		}
		st.skipSpace()
		if st.pos < len(st.s) {
			return nil, &RecordError{Record: i, Msg: "unexpected " + st.describe() + " after the object: a record's value is one JSON object"}
		}
		if id := recs[i].ID; id != "" {
			st.events[i].ID = id
		}
	}
	return st.events, nil
}
