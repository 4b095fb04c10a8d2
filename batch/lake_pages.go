package batch

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"unsafe"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding/bytestreamsplit"
	"github.com/parquet-go/parquet-go/format"
)

// The lake's own page decoder: a column chunk's pages read from the file's
// bytes in memory (read whole or mapped, lake_reader.go) straight into the
// typed vectors a pageCursor hands out — the page header parsed in place,
// the page decompressed into one buffer reused from page to page, levels
// and values decoded from it without copies in between. It reads the flat
// columns, codecs and encodings the lake's writer produces (and the other
// plain ones of the same types); a chunk with anything else (a nested
// column, another codec, DELTA_LENGTH_BYTE_ARRAY, an external file path) is
// read by parquet-go's page reader instead, so correctness never depends on
// this decoder knowing every writer (pageChunk, decodable).

// maxPageBytes bounds a page's decompressed size: a corrupt header cannot
// make the reader allocate more. Lake pages are about 1 MiB at most.
const maxPageBytes = 256 << 20

// maxPageValues bounds the values (rows) of a page, for the same reason:
// run-length encoding can say many in few bytes. A lake page holds at most
// a row group's million rows.
const maxPageValues = 1 << 26

// zstdSlack is the room a page's buffer has past the page.
const zstdSlack = 64

// pageDecoders are page decoders with their buffers and zstd decoders,
// reused from chunk to chunk, file to file and job to job (a recompute's
// workers are its own): decoding a column's pages takes a few MiB of
// buffers.
var pageDecoders = sync.Pool{New: func() any { return &pageDecoder{zstd: newPageZstd(maxPageBytes)} }}

// newPageZstd returns the zstd decoder of a reader's pages: one goroutine,
// outputs up to limit bytes.
func newPageZstd(limit uint64) *kzstd.Decoder {
	d, err := kzstd.NewReader(nil, kzstd.WithDecoderConcurrency(1), kzstd.WithDecoderMaxMemory(limit))
	if err != nil {
		panic(err) // only invalid options fail, and these are fixed
	}
	return d
}

// decodable reports whether the page decoder reads a column chunk of this
// metadata, with the column's maximum repetition and definition levels.
func decodable(md *chunkMeta, maxRep, maxDef int) bool {
	if md.external || maxRep != 0 || maxDef > 1 {
		return false
	}
	switch md.codec {
	case format.Uncompressed, format.Zstd:
	default:
		return false
	}
	switch md.typ {
	case format.Boolean, format.Int32, format.Int64, format.Double, format.ByteArray:
	default:
		return false
	}
	for _, e := range md.encodings {
		switch e {
		case format.Plain, format.PlainDictionary, format.RLE, format.RLEDictionary, format.DeltaBinaryPacked:
		case format.ByteStreamSplit:
			if md.typ == format.Boolean || md.typ == format.ByteArray {
				return false
			}
		case format.DeltaByteArray:
			if md.typ != format.ByteArray {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// pageChunk returns the bytes of column chunk md in the file b and their
// offset, or false when they are not where the metadata says
// (parquet-go's reader then reports what is wrong).
func pageChunk(b []byte, md *chunkMeta) ([]byte, int64, bool) {
	start := md.dataPage
	if md.dictPage > 0 && md.dictPage < start {
		start = md.dictPage
	}
	end := start + md.size
	if start < 4 || md.size <= 0 || end > int64(len(b)) || end < start {
		return nil, 0, false
	}
	return b[start:end:end], start, true
}

// pageValues is one data page's content: rows, their definition levels,
// and the values of the rows that have one, in one of i64, i32, f64, bits
// (booleans, bit 0 first), idx into words (a string dictionary), or data
// with offs (strings: value j is data[offs[j]:offs[j+1]]).
type pageValues struct {
	rows int
	defs []byte // nil: the column is required
	i64  []int64
	i32  []int32
	f64  []float64
	bits []byte
	idx  []int32
	// words are the string dictionary's values; a new slice for each
	// dictionary (consumers recognise a dictionary by its words' array).
	words []string
	data  string
	offs  []uint32
}

// pageDecoder reads the pages of one column chunk. It is reused from chunk
// to chunk (reset), keeping its buffers.
type pageDecoder struct {
	zstd *kzstd.Decoder
	rest []byte // the chunk's pages not read yet
	typ  format.Type
	// codec is the chunk's; maxDef is 0 (required) or 1 (optional).
	codec  format.CompressionCodec
	maxDef int
	// maxValues and maxBytes bound a page's values and decompressed size
	// (0: maxPageValues, maxPageBytes).
	maxValues, maxBytes int
	page                int   // the page read last, counted from 0, for messages
	off                 int64 // its offset in the file
	base                int64 // the chunk's offset in the file
	// checkCRC checks each page's CRC-32 where its header has one: set
	// for files whose checksum as a whole was not checked.
	checkCRC bool

	// The chunk's dictionary: words (strings) or numbers.
	hasDict bool
	words   []string
	dictI64 []int64
	dictI32 []int32
	dictF64 []float64

	buf     []byte // the decompressed page
	defs    []byte
	levels  []int32
	i64     []int64
	i32     []int32
	f64     []float64
	idx     []int32
	bits    []byte
	offs    []uint32
	hybrid  hybridDecoder
	delta   deltaDecoder
	scratch []int64
}

// reset starts on the chunk of type typ whose bytes are chunk, at offset
// base of its file.
func (d *pageDecoder) reset(chunk []byte, base int64, typ format.Type, codec format.CompressionCodec, maxDef int) {
	d.rest, d.base, d.typ, d.codec, d.maxDef, d.checkCRC = chunk, base, typ, codec, maxDef, false
	d.page, d.off = -1, base
	d.hasDict, d.words, d.dictI64, d.dictI32, d.dictF64 = false, nil, d.dictI64[:0], d.dictI32[:0], d.dictF64[:0]
}

// next decodes the chunk's next data page into v (whose slices are the
// decoder's, valid until the next call); io.EOF at the end of the chunk.
// An error names the page and its offset in the file.
func (d *pageDecoder) next(v *pageValues) error {
	for {
		if len(d.rest) == 0 {
			return io.EOF
		}
		d.page++
		d.off = d.base + int64(cap(d.rest)) - int64(len(d.rest)) // cap: the chunk's end
		data, err := d.nextPage(v)
		if err != nil {
			return fmt.Errorf("page %d at byte %d: %w", d.page, d.off, err)
		}
		if data {
			return nil
		}
	}
}

// nextPage reads one page: a data page into v (true), a dictionary page
// into the decoder, or an index page, skipped.
func (d *pageDecoder) nextPage(v *pageValues) (bool, error) {
	h, n, err := readPageHeader(d.rest)
	if err != nil {
		return false, err
	}
	if int64(len(d.rest)-n) < int64(h.compressed) {
		return false, fmt.Errorf("%d bytes of page, %d left in the column chunk", h.compressed, len(d.rest)-n)
	}
	body := d.rest[n : n+int(h.compressed)]
	d.rest = d.rest[n+int(h.compressed):]
	if d.checkCRC && h.hasCRC {
		if sum := crc32.ChecksumIEEE(body); sum != h.crc {
			return false, fmt.Errorf("page checksum %08x, the header says %08x", sum, h.crc)
		}
	}
	switch h.typ {
	case pageIndex:
		return false, nil
	case pageDictionary:
		if !h.hasDict {
			return false, errors.New("dictionary page without its header")
		}
		return false, d.dictionary(&h, body)
	case pageData, pageDataV2:
		if !h.hasData {
			return false, errors.New("data page without its header")
		}
		return true, d.data(&h, body, v)
	}
	return false, fmt.Errorf("page type %d", h.typ)
}

// decompress returns the page's body decompressed: uncompressed bytes
// (the whole body, or what follows its levels in a v2 page) are used as
// they are.
func (d *pageDecoder) decompress(body []byte, size int32) ([]byte, error) {
	if size < 0 || int(size) > cmp.Or(d.maxBytes, maxPageBytes) {
		return nil, fmt.Errorf("page of %d bytes", size)
	}
	if d.codec == format.Uncompressed {
		if len(body) != int(size) {
			return nil, fmt.Errorf("uncompressed page of %d bytes, the header says %d", len(body), size)
		}
		return body, nil
	}
	// Room past the page lets zstd's decoder take its fast path (its
	// sequences may write a few bytes beyond the output they fill).
	if cap(d.buf) < int(size)+zstdSlack {
		d.buf = make([]byte, 0, int(size)+zstdSlack)
	}
	out, err := d.zstd.DecodeAll(body, d.buf[:0])
	if cap(out) <= maxPageBytes {
		d.buf = out[:0]
	}
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(out) != int(size) {
		return nil, fmt.Errorf("page decompressed to %d bytes, the header says %d", len(out), size)
	}
	return out, nil
}

// dictionary reads a dictionary page: PLAIN values of the chunk's type.
func (d *pageDecoder) dictionary(h *pageHeader, body []byte) error {
	if h.encoding != int32(format.Plain) && h.encoding != int32(format.PlainDictionary) {
		return fmt.Errorf("dictionary page of encoding %d", h.encoding)
	}
	if d.hasDict {
		return errors.New("a second dictionary page")
	}
	b, err := d.decompress(body, h.uncompressed)
	if err != nil {
		return err
	}
	n := int(h.values)
	if n < 0 || n > cmp.Or(d.maxValues, maxPageValues) {
		return fmt.Errorf("dictionary of %d values", n)
	}
	d.hasDict = true
	switch d.typ {
	case format.ByteArray:
		if n > len(b)/4 {
			return fmt.Errorf("dictionary of %d strings in %d bytes", n, len(b))
		}
		offs, all, err := plainByteArrays(d.offs[:0], b, n)
		d.offs = offs
		if err != nil {
			return err
		}
		d.words = make([]string, n)
		for i := range d.words {
			d.words[i] = all[offs[i]:offs[i+1]]
		}
	case format.Int64:
		d.dictI64, err = plainInt64(d.dictI64[:0], b, n)
	case format.Int32:
		d.dictI32, err = plainInt32(d.dictI32[:0], b, n)
	case format.Double:
		d.dictF64, err = plainDouble(d.dictF64[:0], b, n)
	default:
		return fmt.Errorf("dictionary of physical type %d", d.typ)
	}
	return err
}

// plainByteArrays reads n PLAIN byte arrays (a 4-byte length, then the
// bytes) from b: their bytes, without the lengths, as one new string (b
// may be the file's mapping or a reused buffer, and the strings outlive
// it), and offs, their n+1 bounds in it.
func plainByteArrays(offs []uint32, b []byte, n int) ([]uint32, string, error) {
	offs = append(offs[:0], 0)
	r, total := 0, 0
	for range n {
		if len(b)-r < 4 {
			return offs, "", errors.New("byte array length truncated")
		}
		l := int(binary.LittleEndian.Uint32(b[r:]))
		r += 4
		if l < 0 || l > len(b)-r {
			return offs, "", fmt.Errorf("byte array of %d bytes, %d left", l, len(b)-r)
		}
		r += l
		total += l
		offs = append(offs, uint32(total))
	}
	data := make([]byte, 0, total)
	r = 0
	for i := range n {
		r += 4
		l := int(offs[i+1] - offs[i])
		data = append(data, b[r:r+l]...)
		r += l
	}
	return offs, unsafe.String(unsafe.SliceData(data), len(data)), nil
}

// deltaByteArrays decodes the n DELTA_BYTE_ARRAY strings of b into v: the
// lengths of the prefixes each value shares with the one before it, then
// the lengths of the suffixes after them (both delta packed), then the
// suffixes.
func (d *pageDecoder) deltaByteArrays(b []byte, n int, v *pageValues) error {
	pre, k, err := d.delta.decode(d.i64[:0], b, n, true)
	d.i64 = pre
	if err != nil {
		return fmt.Errorf("prefix lengths: %w", err)
	}
	suf, k2, err := d.delta.decode(d.scratch[:0], b[k:], n, true)
	d.scratch = suf
	if err != nil {
		return fmt.Errorf("suffix lengths: %w", err)
	}
	if len(pre) != n || len(suf) != n {
		return fmt.Errorf("%d prefix and %d suffix lengths for %d strings", len(pre), len(suf), n)
	}
	rest := b[k+k2:]
	d.offs = append(d.offs[:0], 0)
	total, sufTotal := int64(0), int64(0)
	for i := range n {
		p, l := pre[i], suf[i]
		last := int64(0)
		if i > 0 {
			last = int64(d.offs[i] - d.offs[i-1])
		}
		if p < 0 || l < 0 || p > last {
			return fmt.Errorf("string %d: prefix of %d bytes (the string before has %d), suffix of %d", i, p, last, l)
		}
		sufTotal += l
		total += p + l
		if sufTotal > int64(len(rest)) {
			return fmt.Errorf("string %d: suffixes of %d bytes, %d left", i, sufTotal, len(rest))
		}
		// Prefixes repeat bytes already decoded, so the strings can be
		// far larger than the page: bounded as a page is.
		if total > int64(cmp.Or(d.maxBytes, maxPageBytes)) {
			return fmt.Errorf("string %d: %d bytes of strings, over the limit of %d", i, total, cmp.Or(d.maxBytes, maxPageBytes))
		}
		d.offs = append(d.offs, uint32(total))
	}
	data := make([]byte, 0, total)
	r := 0
	for i := range n {
		if p := int(pre[i]); p > 0 {
			data = append(data, data[d.offs[i-1]:d.offs[i-1]+uint32(p)]...)
		}
		l := int(suf[i])
		data = append(data, rest[r:r+l]...)
		r += l
	}
	v.offs, v.data = d.offs, unsafe.String(unsafe.SliceData(data), len(data))
	return nil
}

// data reads a data page into v.
func (d *pageDecoder) data(h *pageHeader, body []byte, v *pageValues) error {
	*v = pageValues{}
	n := int(h.values)
	if n <= 0 || n > cmp.Or(d.maxValues, maxPageValues) {
		return fmt.Errorf("data page of %d values", n)
	}
	var b []byte
	var err error
	if h.typ == pageDataV2 {
		if h.rows != h.values || h.repBytes != 0 {
			return fmt.Errorf("data page v2 of %d rows, %d values, %d bytes of repetition levels", h.rows, h.values, h.repBytes)
		}
		lb := int(h.defBytes)
		if lb < 0 || lb > len(body) || int(h.uncompressed) < lb {
			return fmt.Errorf("%d bytes of definition levels in a page of %d", lb, len(body))
		}
		if d.maxDef > 0 {
			if err := d.levelsOf(body[:lb], n); err != nil {
				return err
			}
			v.defs = d.defs
		}
		b = body[lb:]
		if !h.uncompressedV2Values {
			if b, err = d.decompress(b, h.uncompressed-int32(lb)); err != nil {
				return err
			}
		} else if len(b) != int(h.uncompressed)-lb {
			return fmt.Errorf("page of %d bytes, the header says %d", len(b), int(h.uncompressed)-lb)
		}
	} else {
		if b, err = d.decompress(body, h.uncompressed); err != nil {
			return err
		}
		if d.maxDef > 0 {
			if h.defEncoding != int32(format.RLE) {
				return fmt.Errorf("definition levels of encoding %d", h.defEncoding)
			}
			if len(b) < 4 {
				return errors.New("definition levels truncated")
			}
			lb := int(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
			if lb < 0 || lb > len(b)-4 {
				return fmt.Errorf("%d bytes of definition levels in a page of %d", lb, len(b))
			}
			if err := d.levelsOf(b[4:4+lb], n); err != nil {
				return err
			}
			v.defs = d.defs
			b = b[4+lb:]
		}
	}
	v.rows = n
	values := n
	if v.defs != nil {
		values = 0
		for _, x := range v.defs {
			values += int(x)
		}
	}
	if err := d.values(h.encoding, b, values, v); err != nil {
		return fmt.Errorf("values of encoding %d: %w", h.encoding, err)
	}
	// A page of nulls alone still says its values' type (pageCursor.fits).
	switch d.typ {
	case format.Int64:
		v.i64 = nonNil(v.i64)
	case format.Int32:
		v.i32 = nonNil(v.i32)
	case format.Double:
		v.f64 = nonNil(v.f64)
	case format.Boolean:
		v.bits = nonNil(v.bits)
	case format.ByteArray:
		if v.offs == nil {
			v.idx = nonNil(v.idx)
		}
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// levelsOf decodes the n definition levels (0 or 1) in b into d.defs.
func (d *pageDecoder) levelsOf(b []byte, n int) error {
	lv, _, err := d.hybrid.decode(d.levels[:0], b, n, 1)
	d.levels = lv
	if err != nil {
		return fmt.Errorf("definition levels: %w", err)
	}
	d.defs = grow(d.defs[:0], n)
	for i, x := range lv {
		if uint32(x) > 1 {
			return fmt.Errorf("definition level %d", x)
		}
		d.defs[i] = byte(x)
	}
	return nil
}

// values decodes the n values of a data page (encoding enc) in b into v.
func (d *pageDecoder) values(enc int32, b []byte, n int, v *pageValues) error {
	var err error
	switch format.Encoding(enc) {
	case format.RLEDictionary, format.PlainDictionary:
		if !d.hasDict {
			return errors.New("dictionary indices without a dictionary page")
		}
		if n == 0 {
			d.idx = d.idx[:0]
		} else {
			if len(b) < 1 {
				return errors.New("dictionary indices truncated")
			}
			d.idx, _, err = d.hybrid.decode(d.idx[:0], b[1:], n, uint(b[0]))
			if err != nil {
				return err
			}
		}
		return d.lookup(v)
	case format.Plain:
		return d.plain(b, n, v)
	case format.RLE:
		if d.typ != format.Boolean {
			return fmt.Errorf("RLE values of physical type %d", d.typ)
		}
		return d.rleBooleans(b, n, v)
	case format.DeltaBinaryPacked:
		switch d.typ {
		case format.Int64:
			d.i64, _, err = d.delta.decode(d.i64[:0], b, n, false)
			v.i64 = d.i64
		case format.Int32:
			d.scratch, _, err = d.delta.decode(d.scratch[:0], b, n, true)
			d.i32 = grow(d.i32[:0], len(d.scratch))
			for i, x := range d.scratch {
				d.i32[i] = int32(x)
			}
			v.i32 = d.i32
		default:
			return fmt.Errorf("delta encoding of physical type %d", d.typ)
		}
		return err
	case format.DeltaByteArray:
		if d.typ != format.ByteArray {
			return fmt.Errorf("delta byte arrays of physical type %d", d.typ)
		}
		return d.deltaByteArrays(b, n, v)
	case format.ByteStreamSplit:
		// parquet-go's byte stream split decoding (vectorised where the
		// CPU allows) over exactly the page's n values.
		var bss bytestreamsplit.Encoding
		switch d.typ {
		case format.Double:
			if n > len(b)/8 {
				return fmt.Errorf("%d split values in %d bytes", n, len(b))
			}
			d.f64, err = bss.DecodeDouble(d.f64[:0], b[:8*n])
			v.f64 = d.f64
		case format.Int64:
			if n > len(b)/8 {
				return fmt.Errorf("%d split values in %d bytes", n, len(b))
			}
			d.i64, err = bss.DecodeInt64(d.i64[:0], b[:8*n])
			v.i64 = d.i64
		case format.Int32:
			if n > len(b)/4 {
				return fmt.Errorf("%d split values in %d bytes", n, len(b))
			}
			d.i32, err = bss.DecodeInt32(d.i32[:0], b[:4*n])
			v.i32 = d.i32
		default:
			return fmt.Errorf("byte stream split of physical type %d", d.typ)
		}
		return err
	}
	return errors.New("unsupported")
}

// rleBooleans decodes n booleans in the RLE/bit-packed hybrid (width 1,
// after a 4-byte length) into bits, as PLAIN holds them.
func (d *pageDecoder) rleBooleans(b []byte, n int, v *pageValues) error {
	if len(b) < 4 {
		return errors.New("boolean runs truncated")
	}
	l := binary.LittleEndian.Uint32(b)
	if uint64(l) > uint64(len(b)-4) {
		return fmt.Errorf("%d bytes of boolean runs in %d", l, len(b)-4)
	}
	var err error
	d.levels, _, err = d.hybrid.decode(d.levels[:0], b[4:4+l], n, 1)
	if err != nil {
		return err
	}
	d.bits = grow(d.bits[:0], (n+7)/8)
	clear(d.bits)
	for i, x := range d.levels {
		if uint32(x) > 1 {
			return fmt.Errorf("boolean %d", x)
		}
		d.bits[i/8] |= byte(x) << (i % 8)
	}
	v.bits = d.bits
	return nil
}

// lookup hands on the dictionary indices in d.idx: as indices into the
// words of a string dictionary (the consumer checks them), as values for
// the others.
func (d *pageDecoder) lookup(v *pageValues) error {
	var err error
	switch d.typ {
	case format.ByteArray:
		v.idx, v.words = d.idx, d.words
		if v.words == nil {
			v.words = []string{} // an empty dictionary: every index is out of range
		}
		return nil
	case format.Int64:
		d.i64, err = lookupDict(d.i64, d.dictI64, d.idx)
		v.i64 = d.i64
	case format.Int32:
		d.i32, err = lookupDict(d.i32, d.dictI32, d.idx)
		v.i32 = d.i32
	case format.Double:
		d.f64, err = lookupDict(d.f64, d.dictF64, d.idx)
		v.f64 = d.f64
	default:
		return fmt.Errorf("dictionary of physical type %d", d.typ)
	}
	return err
}

// plain decodes n PLAIN values.
func (d *pageDecoder) plain(b []byte, n int, v *pageValues) error {
	var err error
	switch d.typ {
	case format.Int64:
		d.i64, err = plainInt64(d.i64[:0], b, n)
		v.i64 = d.i64
	case format.Int32:
		d.i32, err = plainInt32(d.i32[:0], b, n)
		v.i32 = d.i32
	case format.Double:
		d.f64, err = plainDouble(d.f64[:0], b, n)
		v.f64 = d.f64
	case format.Boolean:
		if len(b) < (n+7)/8 {
			return fmt.Errorf("%d booleans in %d bytes", n, len(b))
		}
		v.bits = b[:(n+7)/8]
		if n == 0 {
			v.bits = []byte{}
		}
	case format.ByteArray:
		if n > len(b)/4 {
			return fmt.Errorf("%d strings in %d bytes", n, len(b))
		}
		if d.offs, v.data, err = plainByteArrays(d.offs[:0], b, n); err != nil {
			return err
		}
		v.offs = d.offs
	default:
		return fmt.Errorf("plain values of physical type %d", d.typ)
	}
	return err
}
