package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// maxFetchWait bounds a Fetch's long poll whatever the client asks.
const maxFetchWait = 30 * time.Second

// cursorAt is a connection's fetch position on one partition.
type cursorAt struct{ broker.Cursor }

// fetch answers Fetch. Events are sent as record batches, one per log
// entry, with the entry's offsets: record i of a batch based at offset o
// is the event at offset o+i, exactly where the message browser shows it.
// Each record's value is the event as a JSON object (the topic's fields in
// schema order), its key the canonical text of the topic's key field (null
// without one), its header "id" the event id, its timestamp the entry's
// ingest time (LogAppendTime). When less than MinBytes is ready, the
// answer waits up to MaxWaitMs for appends by any writer.
func (c *conn) fetch(ctx context.Context, r *kmsg.FetchRequest) kmsg.Response {
	s := c.s
	wait := min(time.Duration(r.MaxWaitMillis)*time.Millisecond, maxFetchWait)
	deadline := time.Now().Add(wait)
	budget := s.maxFetch
	if r.Version >= 3 && r.MaxBytes > 0 {
		budget = min(budget, int(r.MaxBytes))
	}
	var parts []broker.Part
	for _, t := range r.Topics {
		if s.topics[t.Topic] == nil {
			continue
		}
		for _, p := range t.Partitions {
			parts = append(parts, broker.Part{Topic: t.Topic, Partition: int(p.Partition)})
		}
	}
	for {
		// Watch first, then read: an append in between still wakes us.
		var watch *broker.Watch
		if wait > 0 && len(parts) > 0 {
			watch, _ = s.log.Appended(parts...) // without one, the wait is the deadline
		}
		resp, size, failed := c.fetchOnce(ctx, r, budget)
		if size >= max(int(r.MinBytes), 1) || failed || wait <= 0 || !time.Now().Before(deadline) {
			watch.Release()
			s.metrics.fetchedBytes.Add(float64(size))
			return resp
		}
		woke := watch.Wait(ctx, deadline)
		watch.Release()
		if !woke && ctx.Err() != nil {
			return resp
		}
	}
}

// fetchOnce reads every requested partition once. It returns the answer,
// the record bytes in it, and whether a partition failed (then the client
// should hear about it at once rather than after the wait).
func (c *conn) fetchOnce(ctx context.Context, r *kmsg.FetchRequest, budget int) (*kmsg.FetchResponse, int, bool) {
	s := c.s
	resp := kmsg.NewPtrFetchResponse()
	size := 0
	failed := false
	for _, t := range r.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = t.Topic
		spec := s.topics[t.Topic]
		for _, p := range t.Partitions {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p.Partition
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
			// Empty, not null: librdkafka refuses a null record set.
			rp.RecordBatches = []byte{}
			switch {
			case spec == nil || p.Partition < 0 || int(p.Partition) >= max(spec.Partitions, 1):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !c.allowedRead():
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			default:
				limit := budget - size
				if p.PartitionMaxBytes > 0 {
					limit = min(limit, int(p.PartitionMaxBytes))
				}
				if size > 0 && limit <= 0 {
					// Out of budget: the client asks again.
					bd, err := s.log.Bounds(ctx, t.Topic, int(p.Partition))
					if err == nil {
						rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = bd.End, bd.End, bd.Start
					}
					break
				}
				code, batches := c.fetchPartition(ctx, spec, p, &rp, max(limit, 1))
				rp.ErrorCode = code
				if batches != nil {
					rp.RecordBatches = batches
				}
				size += len(rp.RecordBatches)
			}
			if rp.ErrorCode != 0 {
				failed = true
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, size, failed
}

// fetchPartition reads one partition from the requested offset and encodes
// its entries as record batches, stopping once limit bytes are reached (the
// first batch is sent whatever its size, so that a consumer never stalls).
func (c *conn) fetchPartition(ctx context.Context, spec *pipelines.Topic, p kmsg.FetchRequestTopicPartition, rp *kmsg.FetchResponseTopicPartition, limit int) (int16, []byte) {
	s := c.s
	k := topicPartition{spec.Name, p.Partition}
	cur := c.cursors[k]
	if cur == nil {
		if len(c.cursors) > 4096 {
			clear(c.cursors) // bound the memory of a client that reads everything
		}
		cur = &cursorAt{}
		c.cursors[k] = cur
	}
	// Entries are binary; their JSON runs about twice as large.
	entries, bd, err := s.log.FetchFrom(ctx, spec.Name, int(p.Partition), p.FetchOffset, &cur.Cursor, 1<<20, max(limit/2, 1))
	rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = bd.End, bd.End, bd.Start
	if err != nil {
		if errors.Is(err, broker.ErrOffsetOutOfRange) {
			return kerr.OffsetOutOfRange.Code, nil
		}
		s.logger.Warn("kafka: fetch failed", "topic", spec.Name, "partition", p.Partition, "err", err)
		return kerr.KafkaStorageError.Code, nil
	}
	keyIdx := -1
	if spec.Key != "" {
		keyIdx = spec.Schema.Index(spec.Key)
	}
	var out []byte
	var w batchWriter
	var val, key []byte
	for _, e := range entries {
		if len(out) > 0 && len(out) >= limit {
			break
		}
		w.begin(out, e.Offset, e.Ingest/1000)
		for i := range e.Events {
			ev := &e.Events[i]
			val = event.AppendEventJSON(val[:0], spec.Schema, ev.Values)
			var kb []byte
			if keyIdx >= 0 && ev.Values[keyIdx].Valid {
				key = event.AppendCanonical(key[:0], spec.Schema[keyIdx].Type, ev.Values[keyIdx])
				kb = key
			}
			w.add(kb, val, ev.ID)
		}
		out = w.end()
	}
	return 0, out
}

// listOffsets answers ListOffsets: -2 is the first offset held, -1 the end
// of the partition, -3 the last event; a timestamp finds the first entry
// stored at or after it (offset -1 when there is none, as in Kafka).
func (c *conn) listOffsets(ctx context.Context, r *kmsg.ListOffsetsRequest) kmsg.Response {
	s := c.s
	resp := kmsg.NewPtrListOffsetsResponse()
	for _, t := range r.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		spec := s.topics[t.Topic]
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition, rp.Timestamp, rp.Offset, rp.LeaderEpoch = p.Partition, -1, -1, -1
			switch {
			case spec == nil || p.Partition < 0 || int(p.Partition) >= max(spec.Partitions, 1):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !c.allowedRead():
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			default:
				rp.ErrorCode = c.listOffset(ctx, t.Topic, p, &rp)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *conn) listOffset(ctx context.Context, topic string, p kmsg.ListOffsetsRequestTopicPartition, rp *kmsg.ListOffsetsResponseTopicPartition) int16 {
	s := c.s
	bd, err := s.log.Bounds(ctx, topic, int(p.Partition))
	if err != nil {
		s.logger.Warn("kafka: list offsets failed", "topic", topic, "partition", p.Partition, "err", err)
		return kerr.KafkaStorageError.Code
	}
	switch ts := p.Timestamp; {
	case ts == -2:
		rp.Offset = bd.Start
	case ts == -1:
		rp.Offset = bd.End
	case ts == -3:
		if bd.End > bd.Start {
			rp.Offset = bd.End - 1
		}
	case ts < 0:
		return kerr.UnsupportedVersion.Code // -4, -5: tiered storage
	default:
		off, at, err := s.log.OffsetAt(ctx, topic, int(p.Partition), time.UnixMilli(ts))
		if err != nil {
			s.logger.Warn("kafka: list offsets failed", "topic", topic, "partition", p.Partition, "err", err)
			return kerr.KafkaStorageError.Code
		}
		if off < bd.End {
			rp.Offset, rp.Timestamp = off, at.UnixMilli()
		}
	}
	if rp.Offset >= 0 {
		rp.OldStyleOffsets = []int64{rp.Offset}
	}
	return 0
}
