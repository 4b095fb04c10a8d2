package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// Fields of a dead-letter event, in the order of the dead-letter topic's
// schema (pipelines.Pipeline.DeadLetterTopic).
const (
	dlSource = iota
	dlPartition
	dlOffset
	dlRecord
	dlError
	dlTime
	dlFields
)

const (
	// maxRecordBytes bounds the record kept in a dead letter so that one
	// huge row cannot make its dead letter exceed the log's message size.
	maxRecordBytes = 256 << 10
	// maxDeadLetterEntryBytes bounds the dead letters appended as one entry.
	maxDeadLetterEntryBytes = 512 << 10
)

// deadLetter appends the rejected rows of a batch of src to the dead-letter
// topic, retrying until ctx ends: a rejected row must never be dropped.
func (r *Runner) deadLetter(ctx context.Context, src *source, rows []Row, rejected RowErrors) error {
	now := r.opts.Now().UTC().UnixMicro()
	events := make([]event.Event, len(rejected))
	for i, re := range rejected {
		row := &rows[re.Index]
		rec := encodeRecord(src.table.Columns, row.Values)
		id := fmt.Sprintf("%s/%d/%d", row.Source, row.Partition, row.Offset)
		events[i] = deadLetterEvent(id, row.Source, row.Partition, row.Offset, rec, re.Err.Error(), now)
		r.logger.Warn("record dead-lettered", "source", row.Source, "partition", row.Partition,
			"offset", row.Offset, "error", re.Err)
	}
	if _, err := r.appendDeadLetters(ctx, events); err != nil {
		return err
	}
	src.m.deadLetters.Add(float64(len(events)))
	return nil
}

func deadLetterEvent(id, source string, part int, off int64, record []byte, reason string, now int64) event.Event {
	if len(record) > maxRecordBytes {
		reason += fmt.Sprintf(" (record of %d bytes truncated to %d)", len(record), maxRecordBytes)
		record = record[:maxRecordBytes]
	}
	return event.Event{
		ID:   id,
		Time: now,
		Values: []event.Value{
			dlSource:    {S: source, Valid: true},
			dlPartition: {I: int64(part), Valid: true},
			dlOffset:    {I: off, Valid: true},
			dlRecord:    {S: string(record), Valid: true},
			dlError:     {S: reason, Valid: true},
			dlTime:      {I: now, Valid: true},
		},
	}
}

// appendDeadLetters appends events to the dead-letter topic in entries of
// bounded size, retrying each until ctx ends. It returns the offset of the
// first event appended.
func (r *Runner) appendDeadLetters(ctx context.Context, events []event.Event) (int64, error) {
	first := int64(-1)
	for len(events) > 0 {
		n, size := 0, 0
		for n < len(events) && (n == 0 || size+len(events[n].Values[dlRecord].S) < maxDeadLetterEntryBytes) && n < broker.MaxEntryEvents {
			size += len(events[n].Values[dlRecord].S) + len(events[n].Values[dlError].S)
			n++
		}
		err := r.backoff.Do(ctx, func(int) error {
			off, err := r.log.Append(ctx, r.dlq, 0, events[:n])
			if err == nil && first < 0 {
				first = off
			}
			if fatal(err) {
				return retry.Permanent(err)
			}
			return err
		}, func(_ int, err error, _ time.Duration) {
			r.logger.Warn("appending dead letters failed; retrying", "topic", r.dlq, "error", err)
		})
		if err != nil && ctx.Err() != nil {
			return first, ctx.Err()
		}
		if err != nil {
			return first, err
		}
		events = events[n:]
	}
	return first, nil
}

// encodeRecord writes a row as a JSON object keyed by column name, in column
// order, in the exact JSON form of package event (event.AppendExactJSON),
// so that a replay writes what the log holds. A row without values (an
// undecodable entry) is null.
func encodeRecord(cols event.Schema, vals []event.Value) []byte {
	if vals == nil {
		return []byte("null")
	}
	return event.AppendExactRecordJSON(make([]byte, 0, 32*len(cols)), cols, vals)
}

// decodeRecord reads a record written by encodeRecord back into values in
// cols order. Columns the record lacks (added since) are null; keys the
// table lacks (dropped since) are ignored.
func decodeRecord(cols event.Schema, rec []byte) ([]event.Value, error) {
	vals, err := event.ParseExactRecordJSON(cols, rec)
	if errors.Is(err, event.ErrNullRecord) {
		return nil, errors.New("record is null: the log entry could not be decoded")
	}
	return vals, err
}

func decodeDeadLetter(ev *event.Event, dlqOffset int64) api.DeadLetter {
	v := ev.Values
	if len(v) < dlFields {
		v = append(v, make([]event.Value, dlFields-len(v))...)
	}
	rec := json.RawMessage(v[dlRecord].S)
	if !json.Valid(rec) {
		rec, _ = json.Marshal(v[dlRecord].S) // a truncated record is kept as text
	}
	return api.DeadLetter{
		DLQOffset: dlqOffset,
		Source:    v[dlSource].S,
		Partition: int(v[dlPartition].I),
		Offset:    v[dlOffset].I,
		Record:    rec,
		Error:     v[dlError].S,
		Time:      time.UnixMicro(v[dlTime].I).UTC(),
	}
}

// DeadLetters lists up to limit dead letters not yet replayed, oldest first.
func (r *Runner) DeadLetters(ctx context.Context, limit int) ([]api.DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	pos, _, err := r.log.Committed(ctx, replayConsumerName(r.spec), r.dlq, 0)
	if err != nil {
		return nil, fmt.Errorf("sink %q: dead letters: %w", r.spec.Name, err)
	}
	var out []api.DeadLetter
	for len(out) < limit {
		entries, err := r.log.Fetch(ctx, r.dlq, 0, broker.FromOffset(pos), limit-len(out))
		if err != nil {
			return nil, fmt.Errorf("sink %q: dead letters: %w", r.spec.Name, err)
		}
		if len(entries) == 0 {
			break
		}
		start := pos
		for _, e := range entries {
			for i := range e.Events {
				off := e.Offset + int64(i)
				if off < pos || len(out) >= limit {
					continue
				}
				out = append(out, decodeDeadLetter(&e.Events[i], off))
				pos = off + 1
			}
		}
		if pos == start {
			break
		}
	}
	return out, nil
}

// replayChunk is how many dead letters Replay writes at a time.
const replayChunk = 1000

// Replay writes the dead letters not yet replayed (those after the committed
// offset of consumer "sink.<name>.replay") through the target again, for
// after the cause was fixed. Records the target rejects again go back to the
// dead-letter topic with the new error and count as failed; the position is
// committed after each chunk. A transient failure is retried
// batch.max_retries times, then Replay stops and returns it, having
// committed what it finished. Dead letters appended while it runs may wait
// for the next Replay. Replay may run beside Run.
//
// The event time of a replayed row (used, e.g., for date-pattern index
// names) is window_start for a view and the topic's time field for a topic;
// a topic timed by ingest time gets the time it was dead-lettered.
func (r *Runner) Replay(ctx context.Context) (replayed, failed int, err error) {
	r.replayMu.Lock()
	defer r.replayMu.Unlock()
	consumer := replayConsumerName(r.spec)
	if err := r.log.Register(ctx, consumer, r.dlq); err != nil {
		return 0, 0, fmt.Errorf("sink %q: replay: %w", r.spec.Name, err)
	}
	pos, _, err := r.log.Committed(ctx, consumer, r.dlq, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("sink %q: replay: %w", r.spec.Name, err)
	}
	// Records that fail again are appended at the end: stop before the
	// first of them, or Replay would chase its own tail.
	stopAt := int64(math.MaxInt64)
	for pos < stopAt {
		entries, err := r.log.Fetch(ctx, r.dlq, 0, broker.FromOffset(pos), replayChunk)
		if err != nil {
			return replayed, failed, fmt.Errorf("sink %q: replay: %w", r.spec.Name, err)
		}
		var items []replayItem
		next := pos
		for _, e := range entries {
			for i := range e.Events {
				off := e.Offset + int64(i)
				if off < pos || off >= stopAt {
					continue
				}
				items = append(items, replayItem{dl: decodeDeadLetter(&e.Events[i], off)})
				next = off + 1
			}
		}
		if len(items) == 0 {
			break
		}
		ok, bad, first, err := r.replayChunk(ctx, items)
		if err != nil {
			return replayed, failed, fmt.Errorf("sink %q: replay: %w", r.spec.Name, err)
		}
		if first >= 0 {
			stopAt = min(stopAt, first)
		}
		if err := r.log.Commit(ctx, consumer, r.dlq, 0, next, items[len(items)-1].dl.Time.UnixMicro()); err != nil {
			return replayed, failed, fmt.Errorf("sink %q: replay: %w", r.spec.Name, err)
		}
		replayed += ok
		failed += bad
		pos = next
	}
	if replayed+failed > 0 {
		r.logger.Info("dead letters replayed", "replayed", replayed, "failed", failed)
	}
	return replayed, failed, nil
}

type replayItem struct {
	dl  api.DeadLetter
	src *source
	row int   // index into its source's rows, or -1
	err error // why it cannot be written, or was rejected again
}

// replayChunk writes one chunk of dead letters, source by source, then
// appends those that failed again. Nothing is appended unless every source
// was written, so a transient failure leaves the chunk to be replayed whole.
func (r *Runner) replayChunk(ctx context.Context, items []replayItem) (ok, bad int, first int64, err error) {
	bySource := make(map[*source][]Row)
	for i := range items {
		it := &items[i]
		it.row = -1
		it.src = r.sourceByName(it.dl.Source)
		if it.src == nil {
			it.err = fmt.Errorf("replay: sink %q no longer delivers %q", r.spec.Name, it.dl.Source)
			continue
		}
		vals, err := decodeRecord(it.src.table.Columns, it.dl.Record)
		if err != nil {
			it.err = fmt.Errorf("replay: %w", err)
			continue
		}
		row := Row{Values: vals, Source: it.dl.Source, Partition: it.dl.Partition, Offset: it.dl.Offset}
		row.Time = it.src.rowTime(vals, it.dl.Time)
		it.row = len(bySource[it.src])
		bySource[it.src] = append(bySource[it.src], row)
	}
	rejected := make(map[*source]map[int]error)
	for _, src := range r.sources {
		rows := bySource[src]
		if len(rows) == 0 {
			continue
		}
		errs, err := r.writeBounded(ctx, src, rows)
		if err != nil {
			return 0, 0, -1, err
		}
		m := make(map[int]error, len(errs))
		for _, e := range errs {
			m[e.Index] = e.Err
		}
		rejected[src] = m
		src.m.written.Add(float64(len(rows) - len(errs)))
	}
	now := r.opts.Now().UTC().UnixMicro()
	var again []event.Event
	for i := range items {
		it := &items[i]
		if it.err == nil {
			it.err = rejected[it.src][it.row]
		}
		if it.err == nil {
			ok++
			continue
		}
		bad++
		if it.src != nil {
			it.src.m.deadLetters.Inc()
		}
		id := fmt.Sprintf("%s/%d/%d@%d", it.dl.Source, it.dl.Partition, it.dl.Offset, it.dl.DLQOffset)
		again = append(again, deadLetterEvent(id, it.dl.Source, it.dl.Partition, it.dl.Offset, it.dl.Record, it.err.Error(), now))
	}
	first = -1
	if len(again) > 0 {
		first, err = r.appendDeadLetters(ctx, again)
		if err != nil {
			return 0, 0, -1, err
		}
	}
	return ok, bad, first, nil
}

func (r *Runner) sourceByName(name string) *source {
	for _, s := range r.sources {
		if s.name == name {
			return s
		}
	}
	return nil
}

// rowTime recovers a row's event time from its values: window_start for a
// view, the topic's time field for a topic, else fallback.
func (s *source) rowTime(vals []event.Value, fallback time.Time) int64 {
	field := s.topic.Time
	if s.view {
		field = viewrow.ColWindowStart
	}
	if field != "" {
		if i := s.table.Columns.Index(field); i >= 0 && i < len(vals) && vals[i].Valid {
			return vals[i].I
		}
	}
	return fallback.UnixMicro()
}
