package batch

import (
	"encoding/binary"
	"math/bits"
	"unsafe"

	pqdelta "github.com/parquet-go/parquet-go/encoding/delta"
)

// DELTA_BINARY_PACKED's layout as the lake writes it: blocks of 128 deltas,
// each in 4 miniblocks of 32 (the layout every writer uses, and the one
// parquet-java's and DuckDB's readers are fastest on).
const (
	deltaBlock     = 128
	deltaMinis     = 4
	deltaMiniCount = deltaBlock / deltaMinis
)

// deltaPacking is the lake's DELTA_BINARY_PACKED encoder (parquet-go's
// decodes; only encoding differs). Two things make its pages smaller than
// parquet-go's encoder's, both within the format, so every reader reads
// them as any delta-packed page:
//
//   - The last block's smallest delta is taken over its values only.
//     parquet-go's takes it over the whole block with the missing values
//     as zeros, so a column of timestamps (or offsets, or clock times) had
//     its last block packed at ~60 bits a value: 0.2 B/row of the daily
//     lake's time columns.
//   - In a file of fewer than bestFileRows rows (a sparse topic's daily
//     file, a backfill's hourly ones) each page is packed two ways, at
//     each miniblock's tightest bit width and at that width rounded up to
//     whole bytes, and the one smaller after compression is kept
//     (lakeCodec.pageSize). Deltas with structure a bit
//     width hides (event times to the minute are multiples of 60,000,000
//     µs, a handful of distinct 29-bit values) repeat as whole bytes when
//     aligned, and zstd finds them: the backfill's daily event times take
//     0.67 B/row aligned against 0.98 tight; other columns (flight
//     numbers, offsets) compress better tight. In the few dozen rows of an
//     hourly file, zstd without entropy coding finds nothing in tight
//     29-bit deltas and repeats in aligned ones. The format lets a writer
//     pack a miniblock at any width its values fit. Files of bestFileRows
//     rows or more (busy topics) are packed tight: sizing every page twice
//     would slow their writer for a small share of their bytes.
//
// One deltaPacking belongs to one fileWriter: it sizes pages with that
// writer's trial encoder and reads its codec's row count.
type deltaPacking struct {
	pqdelta.BinaryPackedEncoding
	codec *lakeCodec     // the file's row count; nil: always tight
	trial *encodingTrial // sizes the two packings
	alt   []byte         // the aligned packing, reused
}

// EncodeInt32 packs src into dst (parquet-go's encoding.Encoding).
func (e *deltaPacking) EncodeInt32(dst []byte, src []int32) ([]byte, error) {
	return packDeltas(e, dst, src), nil
}

// EncodeInt64 packs src into dst (parquet-go's encoding.Encoding).
func (e *deltaPacking) EncodeInt64(dst []byte, src []int64) ([]byte, error) {
	return packDeltas(e, dst, src), nil
}

// packDeltas packs src tight, or aligned where e tries both and that is
// smaller.
func packDeltas[T int32 | int64](e *deltaPacking, dst []byte, src []T) []byte {
	dst = appendDeltaPacked(dst[:0], src, false)
	if e.tries() {
		e.alt = appendDeltaPacked(e.alt[:0], src, true)
		dst = e.smaller(dst)
	}
	return dst
}

// tries reports whether pages of the file being written are packed both
// ways (see deltaPacking).
func (e *deltaPacking) tries() bool {
	return e.codec != nil && e.trial != nil && e.codec.rows < bestFileRows
}

// smaller returns tight or the aligned packing in e.alt, whichever is
// smaller stored (tight on a tie: it is smaller uncompressed).
func (e *deltaPacking) smaller(tight []byte) []byte {
	if len(e.alt) == len(tight) {
		return tight // every width already whole bytes: the same bytes
	}
	if e.codec.pageSize(e.alt, e.trial, 1) < e.codec.pageSize(tight, e.trial, 0) {
		return append(tight[:0], e.alt...)
	}
	return tight
}

// appendDeltaPacked appends src DELTA_BINARY_PACKED to dst. Deltas are
// taken in the values' own width, wrapping (as the format says for INT32
// and INT64 columns); aligned rounds every miniblock's bit width up to
// whole bytes.
func appendDeltaPacked[T int32 | int64](dst []byte, src []T, aligned bool) []byte {
	mask := ^uint64(0)
	if unsafe.Sizeof(T(0)) == 4 {
		mask = 1<<32 - 1
	}
	dst = binary.AppendUvarint(dst, deltaBlock)
	dst = binary.AppendUvarint(dst, deltaMinis)
	dst = binary.AppendUvarint(dst, uint64(len(src)))
	if len(src) == 0 {
		return binary.AppendVarint(dst, 0)
	}
	dst = binary.AppendVarint(dst, int64(src[0]))
	var deltas [deltaBlock]T
	var packed [deltaMiniCount]uint64
	prev := src[0]
	for i := 1; i < len(src); i += deltaBlock {
		n := min(deltaBlock, len(src)-i)
		minDelta := src[i] - prev
		for j, v := range src[i : i+n] {
			d := v - prev
			prev = v
			deltas[j] = d
			minDelta = min(minDelta, d)
		}
		dst = binary.AppendVarint(dst, int64(minDelta))
		widthsAt := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		for m := range deltaMinis {
			lo := m * deltaMiniCount
			if lo >= n {
				break // no values: width 0 and no bytes, as the format says
			}
			var or uint64
			for j := range deltaMiniCount {
				var u uint64
				if lo+j < n {
					u = uint64(deltas[lo+j]-minDelta) & mask
				}
				packed[j] = u
				or |= u
			}
			w := bits.Len64(or)
			if aligned {
				w = (w + 7) &^ 7
			}
			dst[widthsAt+m] = byte(w)
			dst = appendPacked(dst, &packed, uint(w))
		}
	}
	return dst
}

// appendPacked appends 32 values packed at width w, least significant bit
// first (4·w bytes).
func appendPacked(dst []byte, vals *[deltaMiniCount]uint64, w uint) []byte {
	switch w {
	case 0:
		return dst
	case 8:
		for _, v := range vals {
			dst = append(dst, byte(v))
		}
		return dst
	case 16:
		for _, v := range vals {
			dst = binary.LittleEndian.AppendUint16(dst, uint16(v))
		}
		return dst
	case 32:
		for _, v := range vals {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(v))
		}
		return dst
	case 64:
		for _, v := range vals {
			dst = binary.LittleEndian.AppendUint64(dst, v)
		}
		return dst
	}
	var acc uint64
	var have uint // bits in acc
	for _, v := range vals {
		acc |= v << have
		if have+w >= 64 {
			dst = binary.LittleEndian.AppendUint64(dst, acc)
			// v's bits that did not fit (a shift by 64 gives 0).
			acc = v >> (64 - have)
			have = have + w - 64
		} else {
			have += w
		}
	}
	for ; have > 0; have -= min(have, 8) {
		dst = append(dst, byte(acc))
		acc >>= 8
	}
	return dst
}
