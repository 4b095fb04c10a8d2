package kafka

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// FuzzDecodeBatches feeds record batches of a produce request to the
// decoder: no panic, no allocation past the limit, and what it accepts
// re-encodes to batches it reads back the same. With fixCRC the input's
// CRC is made right first, so that the fuzzer gets past it.
func FuzzDecodeBatches(f *testing.F) {
	var w batchWriter
	w.begin(nil, 0, 1764950000000)
	w.add(nil, []byte(`{"x":1}`), "a")
	w.add([]byte("k"), []byte(`{"x":2}`), "")
	one := w.end()
	w.begin(append([]byte(nil), one...), 2, 1764950000001)
	w.add(nil, []byte(`{}`), "b")
	two := w.end()
	f.Add(false, one)
	f.Add(false, two)
	f.Add(true, one[:len(one)-3])
	f.Add(true, []byte{})
	dec := kgo.DefaultDecompressor()
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, fixCRC bool, b []byte) {
		if fixCRC && len(b) >= 21 {
			binary.BigEndian.PutUint32(b[17:21], crc32.Checksum(b[21:], crc32c))
		}
		batches, err := decodeBatches(b, dec, limit)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		var w batchWriter
		var again []byte
		for _, bt := range batches {
			w.begin(again, 0, 0)
			for _, r := range bt.recs {
				w.add(nil, r.Value, r.ID)
			}
			if len(bt.recs) > 0 {
				again = w.end()
			} else {
				again = again[:w.start]
			}
		}
		back, err := decodeBatches(again, dec, limit)
		if err != nil {
			t.Fatalf("re-encoded batches do not decode: %v", err)
		}
		var n int
		for i, bt := range batches {
			if len(bt.recs) == 0 {
				continue
			}
			got := back[n]
			n++
			if len(got.recs) != len(bt.recs) {
				t.Fatalf("batch %d: %d records, then %d", i, len(bt.recs), len(got.recs))
			}
			for j := range bt.recs {
				if !bytes.Equal(got.recs[j].Value, bt.recs[j].Value) || got.recs[j].ID != bt.recs[j].ID {
					t.Fatalf("batch %d record %d differs after re-encoding", i, j)
				}
			}
		}
	})
}
