package batch

import (
	"bytes"
	"sync"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// TestRawFrameDecodes: a raw zstd frame of every size class (empty, one
// byte, the largest one-byte content size, the smallest two-byte one, the
// largest) decodes to its content with a zstd decoder, and holds it after
// a 9- or 10-byte header.
func TestRawFrameDecodes(t *testing.T) {
	dec, err := kzstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, n := range []int{0, 1, 255, 256, 4000, maxRawFrame} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(i*31 + i>>8)
		}
		frame := appendRawFrame([]byte("junk"), src)[4:]
		header := 9
		if n > 255 {
			header = 10
		}
		if len(frame) != header+n || !bytes.Equal(frame[header:], src) {
			t.Errorf("size %d: frame of %d bytes, want %d header bytes then the content", n, len(frame), header)
		}
		got, err := dec.DecodeAll(frame, nil)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("size %d: decoded %d bytes, not the content", n, len(got))
		}
	}
}

// TestLakeCodecChoice writes a small file (48 rows) and a large one (4,000
// rows) of the example schema with the lake's file writer and reads their
// pages back with parquet-go: every column chunk says ZSTD and every row
// reads back. In the small file pages of fewer than rawPageBytes are stored
// raw (the compressed size is the content plus a frame header) and larger
// pages compressed; in the large file every page is compressed, or raw
// where that is smaller: no page takes more than its raw frame.
func TestLakeCodecChoice(t *testing.T) {
	ls, err := newLakeSchema(exampleSchema)
	if err != nil {
		t.Fatal(err)
	}
	evs := exampleEvents(4000, 3)
	fw := newFileWriter(ls, nil)
	for _, rows := range []int{48, 4000} {
		var buf bytes.Buffer
		if err := fw.start(&buf, []offsetRange{{Partition: 0, First: 0, Last: int64(rows - 1), Rows: int64(rows)}}); err != nil {
			t.Fatal(err)
		}
		if fw.codec.rows != int64(rows) {
			t.Errorf("%d rows: the codec was told %d", rows, fw.codec.rows)
		}
		for i := range rows {
			if err := fw.add(&evs[i], 0, int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := fw.finish(); err != nil {
			t.Fatal(err)
		}
		f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if f.NumRows() != int64(rows) {
			t.Fatalf("%d rows: the file holds %d", rows, f.NumRows())
		}
		raw, compressed := 0, 0
		for _, rg := range f.RowGroups() {
			for i, cc := range rg.ColumnChunks() {
				fc := cc.(*parquet.FileColumnChunk)
				if codec := fc.Node().Compression(); codec == nil || codec.CompressionCodec() != format.Zstd {
					t.Errorf("%d rows: column %d is not zstd", rows, i)
				}
				pages := cc.Pages()
				var n int64
				for {
					p, err := pages.ReadPage()
					if err != nil {
						break
					}
					n += p.NumRows()
					parquet.Release(p)
				}
				pages.Close()
				if n != int64(rows) {
					t.Errorf("%d rows: column %d reads %d rows back", rows, i, n)
				}
			}
		}
		headers := pageHeaders(t, buf.Bytes(), f)
		for _, h := range headers {
			want := int32(rawFrameLen(int(h.UncompressedPageSize)))
			switch {
			case rows >= smallFileRows && h.CompressedPageSize > want:
				t.Errorf("%d rows: a page of %d bytes is stored in %d, more than raw (%d)", rows, h.UncompressedPageSize, h.CompressedPageSize, want)
			case rows >= smallFileRows && h.CompressedPageSize == want:
				raw++
			case rows >= smallFileRows:
				compressed++
			case h.UncompressedPageSize < rawPageBytes:
				if h.CompressedPageSize != want {
					t.Errorf("%d rows: a page of %d bytes is stored in %d, want %d (raw)", rows, h.UncompressedPageSize, h.CompressedPageSize, want)
				}
				raw++
			case h.CompressedPageSize > want:
				t.Errorf("%d rows: a page of %d bytes is stored in %d, more than raw (%d)", rows, h.UncompressedPageSize, h.CompressedPageSize, want)
			case h.CompressedPageSize < h.UncompressedPageSize:
				compressed++
			}
		}
		if rows >= smallFileRows && compressed == 0 || rows < smallFileRows && (raw == 0 || compressed == 0) {
			t.Errorf("%d rows: %d raw pages, %d compressed pages of %d; want some of both", rows, raw, compressed, len(headers))
		}
	}
}

// TestSmallFileCodecStoresRaw: in a small file, a page zstd's fastest
// level without entropy coding would store larger than it is (bytes with
// no repeats, such as values packed at odd bit widths) is stored as a raw
// frame instead; a page with repeats is compressed.
func TestSmallFileCodecStoresRaw(t *testing.T) {
	c := newLakeCodec(nil)
	c.rows = smallFileRows - 1
	noise := make([]byte, 1000)
	x := uint64(0x9E3779B97F4A7C15)
	for i := range noise {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		noise[i] = byte(x)
	}
	repeats := bytes.Repeat([]byte("0123456789abcdef"), 64)
	dec, err := kzstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, src := range [][]byte{noise, repeats} {
		out, err := c.Encode(nil, src)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := dec.DecodeAll(out, nil); err != nil || !bytes.Equal(back, src) {
			t.Fatalf("a page of %d bytes does not decode back (%v)", len(src), err)
		}
		raw := rawFrameLen(len(src))
		switch {
		case bytes.Equal(src, noise) && len(out) != raw:
			t.Errorf("noise: %d bytes stored in %d, want a raw frame of %d", len(src), len(out), raw)
		case bytes.Equal(src, repeats) && len(out) >= raw:
			t.Errorf("repeats: %d bytes stored in %d, want them compressed", len(src), len(out))
		}
	}
}

// pageHeaders reads the header of every page of f (whose bytes are b).
func pageHeaders(t *testing.T, b []byte, f *parquet.File) []format.PageHeader {
	t.Helper()
	var out []format.PageHeader
	for _, rg := range f.Metadata().RowGroups {
		for _, cc := range rg.Columns {
			md := cc.MetaData
			off := md.DataPageOffset
			if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < off {
				off = md.DictionaryPageOffset
			}
			end := off + md.TotalCompressedSize
			for off < end {
				var h format.PageHeader
				r := bytes.NewReader(b[off:end])
				if err := thrift.NewDecoder(new(thrift.CompactProtocol).NewReader(r)).Decode(&h); err != nil {
					t.Fatal(err)
				}
				off = end - int64(r.Len()) + int64(h.CompressedPageSize)
				out = append(out, h)
			}
		}
	}
	return out
}

// TestBestEncodersShared: file writers sharing a set of two best-level
// encoders compress at once from four goroutines; every frame decodes to
// its page, and no more than two encoders were ever made.
func TestBestEncodersShared(t *testing.T) {
	best := newBestEncoders(2)
	dec, err := kzstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	pages := make([][]byte, 4)
	for i := range pages {
		pages[i] = bytes.Repeat([]byte{byte(i), 1, 2, 3, 4, 5, 6, 7}, 500+i)
	}
	frames := make([][]byte, len(pages))
	var wg sync.WaitGroup
	for i := range pages {
		wg.Go(func() {
			for range 20 {
				frames[i] = best.encode(nil, pages[i])
			}
		})
	}
	wg.Wait()
	for i, f := range frames {
		got, err := dec.DecodeAll(f, nil)
		if err != nil || !bytes.Equal(got, pages[i]) {
			t.Errorf("page %d: decoded %d bytes (%v), want its %d", i, len(got), err, len(pages[i]))
		}
	}
	made := 0
	for range 2 {
		if e := <-best.free; e != nil {
			made++
		}
	}
	if made == 0 || len(best.free) != 0 {
		t.Errorf("%d encoders made, %d more lent out", made, len(best.free))
	}
}
