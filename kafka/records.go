package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdaflow/lambdaflow/ingest"
)

// Record batches, magic 2 (the Kafka message format since 0.11): the
// produce side decodes them, the fetch side encodes them.

const batchHeaderLen = 61 // baseOffset through the record count

// Attribute bits of a record batch.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// Error codes a produce batch can fail with.
var (
	codeCorrupt           = kerr.CorruptMessage.Code
	codeUnsupportedFormat = kerr.UnsupportedForMessageFormat.Code
	codeInvalidRecord     = kerr.InvalidRecord.Code
	codeTooLarge          = kerr.RecordListTooLarge.Code
)

// batch is one decoded record batch of a produce request.
type batch struct {
	producerID int64
	epoch      int16
	firstSeq   int32
	recs       []ingest.Record
}

// batchError is a produce batch that cannot be read; code is the Kafka
// error code to answer.
type batchError struct {
	code int16
	msg  string
}

func (e *batchError) Error() string { return e.msg }

// decodeBatches decodes the record batches of one partition of a produce
// request. limit bounds the decompressed size of each batch, so that a
// small compressed request cannot inflate without bound.
func decodeBatches(b []byte, dec kgo.Decompressor, limit int) ([]batch, error) {
	var out []batch
	for len(b) > 0 {
		if len(b) < 12 {
			return nil, &batchError{codeCorrupt, "truncated record batch"}
		}
		length := int(int32(binary.BigEndian.Uint32(b[8:12])))
		if length < batchHeaderLen-12 || length > len(b)-12 {
			return nil, &batchError{codeCorrupt, fmt.Sprintf("record batch length %d does not fit the %d bytes sent", length, len(b)-12)}
		}
		raw := b[:12+length]
		b = b[12+length:]
		if magic := int8(raw[16]); magic != 2 {
			return nil, &batchError{codeUnsupportedFormat, fmt.Sprintf("message format magic %d: only record batches (magic 2, Kafka 0.11+) are accepted", magic)}
		}
		if want, got := binary.BigEndian.Uint32(raw[17:21]), crc32.Checksum(raw[21:], crc32c); want != got {
			return nil, &batchError{codeCorrupt, fmt.Sprintf("record batch CRC %08x, computed %08x", want, got)}
		}
		attrs := int16(binary.BigEndian.Uint16(raw[21:23]))
		if attrs&(attrTransactional|attrControl) != 0 {
			return nil, &batchError{codeInvalidRecord, "transactional and control batches are not supported"}
		}
		bt := batch{
			producerID: int64(binary.BigEndian.Uint64(raw[43:51])),
			epoch:      int16(binary.BigEndian.Uint16(raw[51:53])),
			firstSeq:   int32(binary.BigEndian.Uint32(raw[53:57])),
		}
		count := int(int32(binary.BigEndian.Uint32(raw[57:61])))
		recs := raw[batchHeaderLen:]
		if codec := attrs & attrCodecMask; codec != 0 {
			plain, err := dec.Decompress(recs, kgo.CompressionCodecType(codec))
			if err != nil {
				return nil, &batchError{codeCorrupt, fmt.Sprintf("decompressing records (codec %d): %v", codec, err)}
			}
			if len(plain) > limit {
				return nil, &batchError{codeTooLarge, fmt.Sprintf("records decompress to %d bytes, more than kafka.max_request_bytes (%d)", len(plain), limit)}
			}
			recs = plain
		}
		if count < 0 || count > len(recs) {
			return nil, &batchError{codeCorrupt, fmt.Sprintf("record count %d does not fit the batch", count)}
		}
		bt.recs = make([]ingest.Record, 0, count)
		for i := range count {
			r, rest, err := decodeRecord(recs)
			if err != nil {
				return nil, &batchError{codeCorrupt, fmt.Sprintf("record %d: %v", i, err)}
			}
			recs = rest
			bt.recs = append(bt.recs, r)
		}
		out = append(out, bt)
	}
	return out, nil
}

var errShort = errors.New("truncated")

// decodeRecord reads one record: its value and its "id" header. The key,
// timestamp and other headers are not kept: the partition was chosen by
// the producer, the event's time is its time field.
func decodeRecord(b []byte) (ingest.Record, []byte, error) {
	n, k := binary.Varint(b)
	if k <= 0 || n < 0 || int64(len(b)-k) < n {
		return ingest.Record{}, nil, errShort
	}
	rest := b[k+int(n):]
	d := b[k : k+int(n)]
	if len(d) < 1 {
		return ingest.Record{}, nil, errShort
	}
	d = d[1:] // attributes
	var ok bool
	if d, ok = skipVarint(d); !ok { // timestamp delta
		return ingest.Record{}, nil, errShort
	}
	if d, ok = skipVarint(d); !ok { // offset delta
		return ingest.Record{}, nil, errShort
	}
	if _, d, ok = varBytes(d); !ok { // key
		return ingest.Record{}, nil, errShort
	}
	var r ingest.Record
	if r.Value, d, ok = varBytes(d); !ok {
		return ingest.Record{}, nil, errShort
	}
	nh, k := binary.Varint(d)
	if k <= 0 || nh < 0 {
		return ingest.Record{}, nil, errShort
	}
	d = d[k:]
	for range nh {
		var hk, hv []byte
		if hk, d, ok = varBytes(d); !ok {
			return ingest.Record{}, nil, errShort
		}
		if hv, d, ok = varBytes(d); !ok {
			return ingest.Record{}, nil, errShort
		}
		if string(hk) == "id" && len(hv) > 0 {
			r.ID = string(hv)
		}
	}
	return r, rest, nil
}

func skipVarint(b []byte) ([]byte, bool) {
	_, k := binary.Varint(b)
	if k <= 0 {
		return nil, false
	}
	return b[k:], true
}

// varBytes reads a varint length and that many bytes; -1 is null.
func varBytes(b []byte) ([]byte, []byte, bool) {
	n, k := binary.Varint(b)
	if k <= 0 || n < -1 || int64(len(b)-k) < n {
		return nil, nil, false
	}
	if n < 0 {
		return nil, b[k:], true
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// batchWriter encodes one record batch for a fetch response: no
// compression, LogAppendTime timestamps (the entry's ingest time).
type batchWriter struct {
	buf   []byte
	start int // where the batch starts in buf
	n     int32
	rec   []byte
}

func (w *batchWriter) begin(dst []byte, baseOffset, appendMillis int64) {
	w.buf, w.start, w.n = dst, len(dst), 0
	b := binary.BigEndian.AppendUint64(w.buf, uint64(baseOffset))
	b = append(b, 0, 0, 0, 0)             // length, set by end
	b = append(b, 0xff, 0xff, 0xff, 0xff) // partition leader epoch -1
	b = append(b, 2)                      // magic
	b = append(b, 0, 0, 0, 0)             // crc, set by end
	b = binary.BigEndian.AppendUint16(b, attrLogAppendTime)
	b = append(b, 0, 0, 0, 0) // last offset delta, set by end
	b = binary.BigEndian.AppendUint64(b, uint64(appendMillis))
	b = binary.BigEndian.AppendUint64(b, uint64(appendMillis))
	b = binary.BigEndian.AppendUint64(b, ^uint64(0)) // producer id -1
	b = append(b, 0xff, 0xff)                        // producer epoch -1
	b = append(b, 0xff, 0xff, 0xff, 0xff)            // base sequence -1
	b = append(b, 0, 0, 0, 0)                        // record count, set by end
	w.buf = b
}

// add appends one record with offset delta n (records are added in order).
func (w *batchWriter) add(key, value []byte, id string) {
	r := w.rec[:0]
	r = append(r, 0)                       // attributes
	r = binary.AppendVarint(r, 0)          // timestamp delta
	r = binary.AppendVarint(r, int64(w.n)) // offset delta
	if key == nil {
		r = binary.AppendVarint(r, -1)
	} else {
		r = binary.AppendVarint(r, int64(len(key)))
		r = append(r, key...)
	}
	r = binary.AppendVarint(r, int64(len(value)))
	r = append(r, value...)
	r = binary.AppendVarint(r, 1) // one header
	r = binary.AppendVarint(r, 2)
	r = append(r, "id"...)
	r = binary.AppendVarint(r, int64(len(id)))
	r = append(r, id...)
	w.buf = binary.AppendVarint(w.buf, int64(len(r)))
	w.buf = append(w.buf, r...)
	w.rec = r
	w.n++
}

// end fills in the header and returns the buffer with the batch.
func (w *batchWriter) end() []byte {
	b := w.buf[w.start:]
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[23:], uint32(w.n-1))
	binary.BigEndian.PutUint32(b[57:], uint32(w.n))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32c))
	return w.buf
}
