package kafka

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/ingest"
)

// decompressor is shared: it pools its decoders.
var decompressor = kgo.DefaultDecompressor()

// produce answers Produce: each partition's batch is decoded, checked
// against the idempotent producer's sequence, validated and appended
// through ingest (group commit, fsync before the answer); partitions are
// handled concurrently. acks=0 gets no answer, as Kafka does.
func (c *conn) produce(ctx context.Context, r *kmsg.ProduceRequest) kmsg.Response {
	resp := kmsg.NewPtrProduceResponse()
	if r.TransactionID != nil {
		for _, t := range r.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.TransactionalIDAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	timeout := time.Duration(r.TimeoutMillis) * time.Millisecond
	if timeout < time.Second {
		timeout = 30 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(r.Topics))
	for ti, t := range r.Topics {
		rt := &resp.Topics[ti]
		*rt = kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		for pi, p := range t.Partitions {
			rp := &rt.Partitions[pi]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			if r.Acks != 0 && r.Acks != 1 && r.Acks != -1 {
				rp.ErrorCode = kerr.InvalidRequiredAcks.Code
				continue
			}
			wg.Go(func() { c.producePartition(pctx, t.Topic, p, rp) })
		}
	}
	wg.Wait()
	if r.Acks == 0 {
		return nil
	}
	return resp
}

// producePartition appends one partition's records and fills rp.
func (c *conn) producePartition(ctx context.Context, topic string, p kmsg.ProduceRequestTopicPartition, rp *kmsg.ProduceResponseTopicPartition) {
	s := c.s
	rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
	fail := func(code int16, msg string) {
		rp.ErrorCode = code
		if msg != "" {
			rp.ErrorMessage = &msg
		}
		s.metrics.produceErrors.WithLabelValues(kerr.ErrorForCode(code).Error()).Inc()
	}
	spec := s.topics[topic]
	if spec == nil || p.Partition < 0 || int(p.Partition) >= max(spec.Partitions, 1) {
		fail(kerr.UnknownTopicOrPartition.Code, "")
		return
	}
	if !c.allowedWrite(topic) {
		fail(kerr.TopicAuthorizationFailed.Code, "a SASL/PLAIN password among the topic's write_tokens is required to produce to "+strconv.Quote(topic))
		return
	}
	batches, err := decodeBatches(p.Records, decompressor, s.maxRequest)
	if err != nil {
		var be *batchError
		if errors.As(err, &be) {
			fail(be.code, be.msg)
		} else {
			fail(kerr.CorruptMessage.Code, err.Error())
		}
		return
	}
	var recs []ingest.Record
	for i := range batches {
		recs = append(recs, batches[i].recs...)
	}
	if len(recs) == 0 {
		fail(kerr.InvalidRecord.Code, "no records")
		return
	}
	// An idempotent producer sends one batch per partition and request.
	var seq *sequence
	if b := &batches[0]; b.producerID >= 0 && len(batches) == 1 {
		var code int16
		var dupBase int64
		seq, dupBase, code = s.pids.check(b.producerID, b.epoch, topic, p.Partition, b.firstSeq, int32(len(b.recs)))
		if code != 0 {
			fail(code, "")
			return
		}
		if seq == nil { // a retry of a batch already appended
			rp.BaseOffset = dupBase
			s.metrics.produceDuplicates.Inc()
			return
		}
		defer seq.unlock()
	}

	results, err := s.producer.PublishRecords(ctx, topic, int(p.Partition), recs)
	if err != nil {
		var re *ingest.RecordError
		switch {
		case errors.As(err, &re):
			fail(kerr.InvalidRecord.Code, re.Error())
			er := kmsg.NewProduceResponseTopicPartitionErrorRecord()
			er.RelativeOffset = int32(re.Record)
			msg := re.Error()
			er.ErrorMessage = &msg
			rp.ErrorRecords = []kmsg.ProduceResponseTopicPartitionErrorRecord{er}
		case errors.Is(err, ingest.ErrNotReady):
			fail(kerr.LeaderNotAvailable.Code, "ingest is starting or stopping")
		case errors.Is(err, ingest.ErrOverloaded):
			fail(kerr.RequestTimedOut.Code, "too many events in flight (ingest.max_in_flight); retry")
		case errors.Is(err, ingest.ErrTooLarge):
			fail(kerr.RecordListTooLarge.Code, err.Error())
		case errors.Is(err, broker.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
			fail(kerr.NotEnoughReplicas.Code, "the log is unavailable: "+err.Error())
		default:
			fail(kerr.KafkaStorageError.Code, err.Error())
		}
		s.logger.Debug("kafka: produce refused", "topic", topic, "partition", p.Partition, "client", c.clientID, "err", err)
		return
	}
	// Records that were duplicates (by id) keep their first offsets; the
	// base is the first one this request appended.
	base := results[0].Offset
	for _, r := range results {
		if !r.Duplicate {
			base = r.Offset
			break
		}
	}
	rp.BaseOffset = base
	if seq != nil {
		seq.record(base)
	}
	s.metrics.produced.WithLabelValues(topic).Add(float64(len(recs)))
}
