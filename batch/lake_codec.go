package batch

import (
	"encoding/binary"
	"slices"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// lakeCodec is the compression of every lake column chunk: zstd, in one of
// several ways chosen per page by its size and the file's row count.
//
//   - In a file of fewer than smallFileRows rows (an hourly file of a
//     backfill holds a few dozen), a page of fewer than rawPageBytes is
//     stored as a zstd frame of one raw (uncompressed) block: compressing
//     it costs building entropy tables for a few hundred bytes and saves a
//     few of them; the other pages are compressed at zstd's fastest level
//     without entropy coding: matches (repeated ids, strings, bytes) are
//     found, the tables are not built.
//   - In a file of smallFileRows to bestFileRows rows (a daily file of a
//     sparse topic), every page is compressed at zstd's best level, and
//     kept raw when that is no smaller: such files are few, and their
//     bytes per row are what they cost (the best level takes 0.5 to 0.9
//     B/row off the backfill's daily files, ~1,000 rows each, for about
//     twice the CPU: 10 ms a file).
//   - Larger files, at zstd's default level (the writer's throughput on
//     busy topics).
//
// Every zstd decoder reads them all, so the file says ZSTD for every
// column whichever was chosen. On the backfill's hourly files (48 rows, 21
// pages and 5 dictionaries each) zstd was a quarter of the writer's CPU;
// measured on them, see BENCHMARKS.md ("Backfill").
type lakeCodec struct {
	zstd.Codec // the default level
	best       zstd.Codec
	fast       *kzstd.Encoder
	// rows is the row count of the file being written; its fileWriter
	// sets it per file.
	rows int64
}

const (
	rawPageBytes  = 256
	smallFileRows = 256
	// bestFileRows bounds the files (sparse topics' daily ones: a few
	// thousand rows or fewer) whose pages get zstd's best level and whose
	// numeric columns' encodings are tried (encodingTrial): on larger
	// files their CPU would slow the writer of busy topics, where footers
	// and page headers are a small share of the bytes anyway.
	bestFileRows = 1 << 14
)

// maxRawFrame is the largest content appendRawFrame writes: what a
// two-byte frame content size holds (and below zstd's 128 KiB block limit).
const maxRawFrame = 0xffff + 256

func newLakeCodec() *lakeCodec {
	fast, err := kzstd.NewWriter(nil, kzstd.WithEncoderLevel(kzstd.SpeedFastest), kzstd.WithNoEntropyCompression(true),
		kzstd.WithEncoderConcurrency(1), kzstd.WithZeroFrames(true), kzstd.WithEncoderCRC(false))
	if err != nil {
		panic(err) // only invalid options fail, and these are fixed
	}
	return &lakeCodec{fast: fast, best: zstd.Codec{Level: zstd.SpeedBestCompression}}
}

// Encode compresses src into dst (parquet-go's compress.Codec).
func (c *lakeCodec) Encode(dst, src []byte) ([]byte, error) {
	switch {
	case c.rows < smallFileRows && len(src) < rawPageBytes:
		return appendRawFrame(dst[:0], src), nil
	case c.rows < smallFileRows:
		return c.fast.EncodeAll(src, dst[:0]), nil
	case c.rows >= bestFileRows:
		return c.Codec.Encode(dst, src)
	}
	out, err := c.best.Encode(dst, src)
	if err == nil && len(src) <= maxRawFrame && len(out) >= rawFrameLen(len(src)) {
		// Tiny or random pages (a few hundred bits of booleans, bytes
		// zstd finds nothing in) are smaller raw.
		return appendRawFrame(out[:0], src), nil
	}
	return out, err
}

// zstdMagic starts every zstd frame (RFC 8878, section 3.1.1).
const zstdMagic = 0xFD2FB528

// rawFrameLen is the length of the raw frame appendRawFrame writes for n
// bytes.
func rawFrameLen(n int) int {
	if n <= 0xff {
		return n + 9
	}
	return n + 10
}

// appendRawFrame appends a zstd frame holding src (at most maxRawFrame
// bytes) as one raw block (RFC 8878): the magic number; a frame header
// descriptor saying "single segment" (no window descriptor: the content
// size is the window), no checksum, no dictionary, and a content size
// field of one byte (sizes up to 255) or two (256 to maxRawFrame, stored
// minus 256); then one block header (last block, type raw, size) and the
// bytes.
func appendRawFrame(dst, src []byte) []byte {
	dst = slices.Grow(dst, rawFrameLen(len(src)))
	n := len(src)
	dst = binary.LittleEndian.AppendUint32(dst, zstdMagic)
	if n <= 0xff {
		dst = append(dst, 0x20, byte(n))
	} else {
		dst = append(dst, 0x60)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(n-256))
	}
	h := uint32(1 | n<<3) // last block, raw (type 0), size
	dst = append(dst, byte(h), byte(h>>8), byte(h>>16))
	return append(dst, src...)
}
