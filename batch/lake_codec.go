package batch

import (
	"bytes"
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
//     found, the tables are not built; a page that comes out larger is
//     stored raw.
//   - In a file of smallFileRows to bestFileRows rows (a daily file of a
//     sparse topic), every page is compressed at zstd's best level, and
//     kept raw when that is no smaller: such files are few, and their
//     bytes per row are what they cost (the best level takes 0.3 to 0.9
//     B/row off the backfill's daily files, ~1,000 rows each, for about
//     five times the writer's CPU: 5-8 ms a file against 1.2-1.6).
//   - Larger files, at zstd's default level (the writer's throughput on
//     busy topics), with literals entropy coded also in blocks where no
//     match is found: the library leaves such blocks uncompressed at its
//     default level, and pages of bit-packed dictionary indices or of
//     doubles split by byte are just that (a month of flights, 28k rows a
//     file: 20.66 -> 20.21 B/row; `carrier`'s indices 0.49 -> 0.40).
//
// Every zstd decoder reads them all, so the file says ZSTD for every
// column whichever was chosen. On the backfill's hourly files (48 rows, 21
// pages and 5 dictionaries each) zstd was a quarter of the writer's CPU;
// measured on them, see BENCHMARKS.md ("Backfill").
type lakeCodec struct {
	zstd.Codec // the file's codec as parquet-go names it, and its decoder
	best       *bestEncoders
	fast       *kzstd.Encoder
	large      *kzstd.Encoder // made when a file of bestFileRows rows or more is first written
	// rows is the row count of the file being written; its fileWriter
	// sets it per file.
	rows int64
	// sized are the last two pages pageSize compressed, in a small file.
	sized [2]struct{ in, out []byte }
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

// newLakeCodec makes the codec of one file writer; best lends it zstd's
// best level (nil: an encoder of its own, for tests and benchmarks).
func newLakeCodec(best *bestEncoders) *lakeCodec {
	fast := newZstdEncoder(kzstd.SpeedFastest, kzstd.WithNoEntropyCompression(true))
	if best == nil {
		best = newBestEncoders(1)
	}
	return &lakeCodec{fast: fast, best: best}
}

// startFile tells the codec the row count of the next file.
func (c *lakeCodec) startFile(rows int64) {
	c.rows = rows
	for i := range c.sized {
		c.sized[i].in = c.sized[i].in[:0]
	}
}

// Encode compresses src into dst (parquet-go's compress.Codec).
func (c *lakeCodec) Encode(dst, src []byte) ([]byte, error) {
	for i := range c.sized {
		if s := &c.sized[i]; len(s.in) > 0 && bytes.Equal(s.in, src) {
			// pageSize compressed this page already (a required column's
			// page is its values alone).
			return append(dst[:0], s.out...), nil
		}
	}
	return c.encode(dst, src)
}

func (c *lakeCodec) encode(dst, src []byte) ([]byte, error) {
	switch {
	case c.rows < smallFileRows && len(src) < rawPageBytes:
		return appendRawFrame(dst[:0], src), nil
	case c.rows < smallFileRows:
		out := c.fast.EncodeAll(src, dst[:0])
		if len(src) <= maxRawFrame && len(out) > rawFrameLen(len(src)) {
			// Without entropy coding, bytes with no repeats (values
			// packed at odd bit widths) come out larger than they went in.
			return appendRawFrame(out[:0], src), nil
		}
		return out, nil
	case c.rows >= bestFileRows:
		if c.large == nil {
			c.large = newZstdEncoder(kzstd.SpeedDefault, kzstd.WithAllLitEntropyCompression(true))
		}
		return c.large.EncodeAll(src, dst[:0]), nil
	}
	out := c.best.encode(dst, src)
	if len(src) <= maxRawFrame && len(out) >= rawFrameLen(len(src)) {
		// Tiny or random pages (a few hundred bits of booleans, bytes
		// zstd finds nothing in) are smaller raw.
		return appendRawFrame(out[:0], src), nil
	}
	return out, nil
}

// pageSize is the stored size of a page body in the file being written,
// for choosing between two encodings of it: in a small file, what Encode
// stores (cheap there: a raw frame or zstd's fastest level); in a larger
// one, trial's estimate at zstd's fastest level (the best level, which
// the page gets, would cost as much again per candidate).
//
// slot (0 or 1) keeps b and its compressed form until the next call with
// the same slot or the next file, so that Encode does not compress the
// chosen page again.
func (c *lakeCodec) pageSize(b []byte, trial *encodingTrial, slot int) int64 {
	if c.rows >= smallFileRows {
		return trial.size(b)
	}
	s := &c.sized[slot]
	s.in = s.in[:0] // encode, not a stale match
	s.out, _ = c.encode(s.out[:0], b)
	s.in = append(s.in, b...)
	return int64(len(s.out))
}

// bestEncoders lends zstd encoders of the best level to the file writers
// of a process, a few at a time. Each holds about 34 MiB of match tables
// (its own, whatever the size of the input) besides its history
// (pageWindow), so they are not made per
// file writer (four per topic, and a compactor's) nor pooled in a
// sync.Pool, whose emptying at every garbage collection had them made
// again and again (a daily backfill's peak RSS went from 370 MiB to over
// 1 GiB); a writer that finds none free waits for one, as a core would be
// busy anyway. They are made when first needed: a process that writes no
// file of smallFileRows to bestFileRows rows has none.
type bestEncoders struct {
	free chan *kzstd.Encoder // nil: not made yet
}

func newBestEncoders(n int) *bestEncoders {
	b := &bestEncoders{free: make(chan *kzstd.Encoder, n)}
	for range n {
		b.free <- nil
	}
	return b
}

// encode compresses src into dst[:0] with one of the encoders.
func (b *bestEncoders) encode(dst, src []byte) []byte {
	e := <-b.free
	defer func() { b.free <- e }()
	if e == nil {
		e = newZstdEncoder(kzstd.SpeedBestCompression)
	}
	return e.EncodeAll(src, dst[:0])
}

// pageWindow is the window of the lake's zstd encoders. A page is cut at
// pageBuffer bytes, so no match in it lies farther back, and a page up to
// the window is compressed to the same bytes as with the library's default
// window of 8 MiB (TestZstdEncoderWindow); an encoder's history is twice
// its window, so the default held 12 MiB more per encoder (a file writer
// has two or three, a process a few writers per topic).
const pageWindow = 2 * pageBuffer

// newZstdEncoder makes an encoder of pages at level, with opts: one
// goroutine (pages are compressed whole, by EncodeAll), no frame checksum
// (4 bytes a page), a frame even for an empty page, and a window of
// pageWindow.
func newZstdEncoder(level kzstd.EncoderLevel, opts ...kzstd.EOption) *kzstd.Encoder {
	e, err := kzstd.NewWriter(nil, append([]kzstd.EOption{kzstd.WithEncoderLevel(level),
		kzstd.WithEncoderConcurrency(1), kzstd.WithZeroFrames(true), kzstd.WithEncoderCRC(false),
		kzstd.WithWindowSize(pageWindow)}, opts...)...)
	if err != nil {
		panic(err) // only invalid options fail, and callers' are fixed
	}
	return e
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
