package batch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
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
		buf, f := writeOneFile(t, fw, evs[:rows])
		if fw.codec.rows != int64(rows) {
			t.Errorf("%d rows: the codec was told %d", rows, fw.codec.rows)
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

// TestLargeFileUniqueStrings: in a file of bestFileRows rows or more, a
// string column that passed maxTracked distinct values with nearly every
// value distinct (random ids) is PLAIN, not a dictionary of all of them,
// and smaller for it; one that passed maxTracked with values repeating
// (40,000 rows drawn from 20,000 values) keeps its dictionary. Both read
// back value for value.
func TestLargeFileUniqueStrings(t *testing.T) {
	schema := event.Schema{
		{Name: "unique", Type: event.TypeString, Required: true},
		{Name: "repeated", Type: event.TypeString, Required: true},
	}
	ls, err := newLakeSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(9, 10))
	pool := make([]string, 20_000)
	for i := range pool {
		pool[i] = fmt.Sprintf("%016x", rnd.Uint64())
	}
	const rows = 40_000
	evs := make([]event.Event, rows)
	for i := range evs {
		evs[i] = event.Event{ID: fmt.Sprint(i), Time: int64(i), Ingest: 1, Values: []event.Value{
			{S: fmt.Sprintf("%016x", rnd.Uint64()), Valid: true},
			{S: pool[rnd.IntN(len(pool))], Valid: true},
		}}
	}
	fw := newFileWriter(ls, nil)
	fw.observe(evs)
	_, f := writeOneFile(t, fw, evs)
	cols := f.Metadata().RowGroups[0].Columns
	if e := cols[0].MetaData.Encoding; slices.Contains(e, format.RLEDictionary) {
		t.Errorf("unique: encodings %v, want no dictionary", e)
	}
	if e := cols[1].MetaData.Encoding; !slices.Contains(e, format.RLEDictionary) {
		t.Errorf("repeated: encodings %v, want a dictionary", e)
	}
	// 16 hex digits (8 bytes of information) a value: 8.4 B/row plain,
	// 11.5 as a dictionary (every value once, then a 16-bit index a row).
	if size := cols[0].MetaData.TotalCompressedSize; 2*size > 19*rows {
		t.Errorf("unique: %d bytes for %d rows, want at most 9.5 a row", size, rows)
	}
	for k, name := range []string{"unique", "repeated"} {
		got := stringColumn(t, f, name)
		if len(got) != rows {
			t.Fatalf("%s: %d values read back, want %d", name, len(got), rows)
		}
		for i, v := range got {
			if v != evs[i].Values[k].S {
				t.Fatalf("%s row %d: %q, want %q", name, i, v, evs[i].Values[k].S)
			}
		}
	}
}

// stringColumn reads the values of string column name of f with
// parquet-go's page reader.
func stringColumn(t *testing.T, f *parquet.File, name string) []string {
	t.Helper()
	col := f.Root().Column(name)
	if col == nil {
		t.Fatalf("no column %s", name)
	}
	var got []string
	pages := col.Pages()
	defer pages.Close()
	for {
		p, err := pages.ReadPage()
		if err != nil {
			break
		}
		vals := make([]parquet.Value, p.NumValues())
		n, _ := p.Values().ReadValues(vals)
		for _, v := range vals[:n] {
			got = append(got, string(v.ByteArray()))
		}
		parquet.Release(p)
	}
	return got
}

// writeOneFile writes evs, offsets 0 on of partition 0, as one file with
// fw (its survey as the caller left it) and opens it.
func writeOneFile(t *testing.T, fw *fileWriter, evs []event.Event) (*bytes.Buffer, *parquet.File) {
	t.Helper()
	var buf bytes.Buffer
	n := int64(len(evs))
	if err := fw.start(&buf, []offsetRange{{Partition: 0, First: 0, Last: n - 1, Rows: n}}); err != nil {
		t.Fatal(err)
	}
	for i := range evs {
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
	return &buf, f
}

// pageHeaders reads the header of every page of f (whose bytes are b).
func pageHeaders(t *testing.T, b []byte, f *parquet.File) []format.PageHeader {
	t.Helper()
	var out []format.PageHeader
	for _, rg := range f.Metadata().RowGroups {
		for _, cc := range rg.Columns {
			out = append(out, chunkPageHeaders(t, b, cc.MetaData)...)
		}
	}
	return out
}

// chunkPageHeaders reads the header of every page of the column chunk md
// of the file whose bytes are b.
func chunkPageHeaders(t *testing.T, b []byte, md format.ColumnMetaData) []format.PageHeader {
	t.Helper()
	var out []format.PageHeader
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

// TestZstdEncoderWindow: the lake's zstd encoders (each level and option
// it uses), with their window of pageWindow, compress pages up to that
// window (random bytes, skewed ones, repeats; sizes about the library's
// block and window edges), one after another on the same encoder, to the
// same bytes as encoders of the library's default window, so that the
// smaller window changes no lake file; and the best level's encoder, having
// compressed a page, holds at least 8 MiB less than one of the default
// window.
func TestZstdEncoderWindow(t *testing.T) {
	encoders := []struct {
		name  string
		level kzstd.EncoderLevel
		opts  []kzstd.EOption
	}{
		{"fastest, no entropy coding (small files)", kzstd.SpeedFastest, []kzstd.EOption{kzstd.WithNoEntropyCompression(true)}},
		{"fastest, every literal coded (the trial)", kzstd.SpeedFastest, []kzstd.EOption{kzstd.WithAllLitEntropyCompression(true)}},
		{"default, every literal coded (large files)", kzstd.SpeedDefault, []kzstd.EOption{kzstd.WithAllLitEntropyCompression(true)}},
		{"best (daily files)", kzstd.SpeedBestCompression, nil},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var pages [][]byte
	for _, n := range []int{0, 1, 255, 1024, 1025, 4096, 128 << 10, 128<<10 + 1, 500_000, pageBuffer, pageBuffer + 4096, pageWindow} {
		for _, gen := range []func(i int) byte{
			func(int) byte { return byte(rng.IntN(256)) },
			func(int) byte { return byte(rng.IntN(4)) },
			func(i int) byte { return byte(i / 7 % 251) },
		} {
			src := make([]byte, n)
			for i := range src {
				src[i] = gen(i)
			}
			pages = append(pages, src)
		}
	}
	for _, c := range encoders {
		ours := newZstdEncoder(c.level, c.opts...)
		lib, err := kzstd.NewWriter(nil, append([]kzstd.EOption{kzstd.WithEncoderLevel(c.level),
			kzstd.WithEncoderConcurrency(1), kzstd.WithZeroFrames(true), kzstd.WithEncoderCRC(false)}, c.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		for i, src := range pages {
			if got, want := ours.EncodeAll(src, nil), lib.EncodeAll(src, nil); !bytes.Equal(got, want) {
				t.Errorf("%s: page %d of %d bytes: %d bytes compressed, with the library's default window %d", c.name, i, len(src), len(got), len(want))
			}
		}
	}
	page := bytes.Repeat([]byte("lambdaflow"), 10_000)
	held := func(encode func([]byte) any) (uint64, any) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e := encode(page)
		runtime.GC()
		runtime.ReadMemStats(&after)
		return after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc), e
	}
	small, e1 := held(func(p []byte) any {
		b := newBestEncoders(1)
		b.encode(nil, p)
		return b
	})
	large, e2 := held(func(p []byte) any {
		e, err := kzstd.NewWriter(nil, kzstd.WithEncoderLevel(kzstd.SpeedBestCompression), kzstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		e.EncodeAll(p, nil)
		return e
	})
	runtime.KeepAlive(e1)
	runtime.KeepAlive(e2)
	if small+8<<20 > large {
		t.Errorf("an encoder of the best level holds %d MiB, one of the default window %d MiB: want at least 8 MiB less", small>>20, large>>20)
	}
}

// TestLargeFileCodesLiterals: in a file of bestFileRows rows or more, a
// page zstd finds no repeats in but whose bytes are skewed (the bit-packed
// indices of a dictionary column whose values are not equally common, in
// no order) is entropy coded, not stored raw; the encoding trial sizes
// such a page the same way; the column reads back value for value.
func TestLargeFileCodesLiterals(t *testing.T) {
	schema := event.Schema{{Name: "carrier", Type: event.TypeString, Required: true}}
	ls, err := newLakeSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	// 16 carriers (4-bit indices) as common as the flights' are: ~3.2
	// bits of information a row, in no order, so zstd finds (almost) no
	// repeated bytes to match.
	share := []int{1700, 1600, 1600, 1400, 1000, 800, 600, 500, 400, 200, 100, 50, 30, 10, 5, 5}
	cum := make([]int, len(share)) // cum[k]: the shares of carriers 0 to k
	for k, n := range share {
		cum[k] = n
		if k > 0 {
			cum[k] += cum[k-1]
		}
	}
	rnd := rand.New(rand.NewPCG(5, 6))
	const rows = bestFileRows + 4000
	evs := make([]event.Event, rows)
	idx := make([]int32, rows)
	for i := range evs {
		k, _ := slices.BinarySearch(cum, rnd.IntN(cum[len(cum)-1])+1)
		idx[i] = int32(k)
		evs[i] = event.Event{ID: fmt.Sprint(i), Time: int64(i), Ingest: int64(i), Values: []event.Value{{S: fmt.Sprintf("C%02d", k), Valid: true}}}
	}
	fw := newFileWriter(ls, nil)
	fw.observe(evs)
	buf, f := writeOneFile(t, fw, evs)
	cc := f.Metadata().RowGroups[0].Columns[0].MetaData
	if !slices.Contains(cc.Encoding, format.RLEDictionary) {
		t.Fatalf("carrier: encodings %v, want a dictionary", cc.Encoding)
	}
	var data int
	for _, h := range chunkPageHeaders(t, buf.Bytes(), cc) {
		if h.Type != format.DataPage && h.Type != format.DataPageV2 {
			continue
		}
		data++
		if float64(h.CompressedPageSize) > 0.9*float64(h.UncompressedPageSize) {
			t.Errorf("carrier: a data page of %d bytes stored in %d, want it entropy coded (under 90%%)", h.UncompressedPageSize, h.CompressedPageSize)
		}
	}
	if data == 0 {
		t.Fatal("carrier: no data page")
	}
	got := stringColumn(t, f, "carrier")
	if len(got) != rows {
		t.Fatalf("carrier: %d values read back, want %d", len(got), rows)
	}
	for i, v := range got {
		if want := fmt.Sprintf("C%02d", idx[i]); v != want {
			t.Fatalf("carrier row %d: %q, want %q", i, v, want)
		}
	}

	// The trial sizes the same indices entropy coded too.
	page, err := (&rle.Encoding{BitWidth: 4}).EncodeInt32(nil, idx)
	if err != nil {
		t.Fatal(err)
	}
	var tr encodingTrial
	if got := tr.size(page); float64(got) > 0.9*float64(len(page)) {
		t.Errorf("trial: %d bytes of indices sized %d, want them entropy coded (under 90%%)", len(page), got)
	}
}
