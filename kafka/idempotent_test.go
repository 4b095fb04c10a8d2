package kafka

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// batchBytes encodes a record batch as an idempotent producer sends it.
func batchBytes(pid int64, epoch int16, seq int32, values ...string) []byte {
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		body := r.AppendTo(nil)[1:] // without the placeholder length byte (0)
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: int32(len(values) - 1),
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(len(values)), Records: recs,
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

func produceReq(part int32, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	t := kmsg.NewProduceRequestTopic()
	t.Topic = "metrics"
	p := kmsg.NewProduceRequestTopicPartition()
	p.Partition, p.Records = part, batch
	t.Partitions = []kmsg.ProduceRequestTopicPartition{p}
	req.Topics = []kmsg.ProduceRequestTopic{t}
	return req
}

// TestIdempotentProducerSequences: a retried batch (same producer, same
// sequence) is answered with its original offset and not appended again;
// a batch that skips sequence numbers is OUT_OF_ORDER_SEQUENCE_NUMBER.
func TestIdempotentProducerSequences(t *testing.T) {
	e := start(t, "", "")
	cl := e.client()
	ctx := context.Background()
	init, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl)
	if err != nil || init.ErrorCode != 0 || init.ProducerID <= 0 {
		t.Fatalf("InitProducerId: %v %+v", err, init)
	}
	// A second producer gets another id.
	if other, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl); err != nil || other.ProducerID == init.ProducerID {
		t.Fatalf("second InitProducerId: %v, id %d again", err, other.ProducerID)
	}
	pid, epoch := init.ProducerID, init.ProducerEpoch
	send := func(seq int32, values ...string) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		resp, err := produceReq(0, batchBytes(pid, epoch, seq, values...)).RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0]
	}
	if p := send(0, sample(0, "h"), sample(1, "h"), sample(2, "h")); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("first batch: %+v", p)
	}
	if p := send(0, sample(0, "h"), sample(1, "h"), sample(2, "h")); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("retried batch: error %d base %d, want success at 0", p.ErrorCode, p.BaseOffset)
	}
	if p := send(5, sample(5, "h")); p.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("batch after a gap: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", p.ErrorCode)
	}
	if p := send(3, sample(3, "h")); p.ErrorCode != 0 || p.BaseOffset != 3 {
		t.Fatalf("next batch: %+v", p)
	}
	if bd, _ := e.b.Bounds(ctx, "metrics", 0); bd.End != 4 {
		t.Errorf("partition 0 holds %d events, want 4 (no duplicate appended)", bd.End)
	}
	// A corrupted batch is CORRUPT_MESSAGE.
	bad := batchBytes(pid, epoch, 4, sample(4, "h"))
	bad[len(bad)-1] ^= 0xff
	resp, err := produceReq(0, bad).RequestWith(ctx, cl)
	if err != nil || resp.Topics[0].Partitions[0].ErrorCode != kerr.CorruptMessage.Code {
		t.Errorf("corrupt batch: %v %+v", err, resp)
	}
	// Transactions are refused.
	txn := kmsg.NewPtrInitProducerIDRequest()
	id := "txn"
	txn.TransactionalID = &id
	// (franz-go asks for a transaction coordinator first, and is refused.)
	if r, err := txn.RequestWith(ctx, cl); err == nil && r.ErrorCode == 0 {
		t.Errorf("transactional InitProducerId succeeded: %+v", r)
	}
}

// TestUnsupportedRequests: an API the listener does not serve gets an
// error code in its answer, not a dropped connection; ApiVersions lists
// what is served.
func TestUnsupportedRequests(t *testing.T) {
	e := start(t, "", "")
	cl := e.client()
	ctx := context.Background()
	av, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil || av.ErrorCode != 0 {
		t.Fatalf("ApiVersions: %v", err)
	}
	served := map[int16]bool{}
	for _, k := range av.ApiKeys {
		served[k.ApiKey] = true
	}
	for _, k := range []int16{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 22, 32, 36, 60} {
		if !served[k] {
			t.Errorf("ApiVersions does not list %s", kmsg.NameForKey(k))
		}
	}
	// CreateTopics refuses: topics come from the pipeline file.
	ct := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range []string{"metrics", "other"} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
		ct.Topics = append(ct.Topics, rt)
	}
	cr, err := ct.RequestWith(ctx, cl)
	if err != nil || cr.Topics[0].ErrorCode != kerr.TopicAlreadyExists.Code || cr.Topics[1].ErrorCode != kerr.PolicyViolation.Code {
		t.Errorf("CreateTopics: %v %+v", err, cr)
	}
	// A known API that is not served answers UNSUPPORTED_VERSION (sent on
	// a raw connection: clients do not send what ApiVersions left out).
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := kmsg.NewPtrDescribeLogDirsRequest()
	req.SetVersion(3)
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw"))
	if _, err := conn.Write(f.AppendRequest(nil, req, 7)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatalf("DescribeLogDirs: no answer: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	// v3 is flexible: the header ends with an empty tag section.
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	resp.SetVersion(3)
	if corr := int32(binary.BigEndian.Uint32(body)); corr != 7 {
		t.Fatalf("correlation id %d, want 7", corr)
	}
	if err := resp.ReadFrom(body[5:]); err != nil || resp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Errorf("DescribeLogDirs: %v, code %d, want UNSUPPORTED_VERSION", err, resp.ErrorCode)
	}
}
