package batch

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// pageSchema has a field of every type, required and optional, so that the
// lake writer's encoding plans give the page decoder every encoding it
// writes: dictionary and plain strings, delta and dictionary integers (64
// and 32 bits), split and dictionary doubles, booleans, nulls.
var pageSchema = event.Schema{
	{Name: "ts", Type: event.TypeTimestamp, Required: true},
	{Name: "region", Type: event.TypeString, Required: true}, // few values: dictionary
	{Name: "host", Type: event.TypeString},                   // mostly distinct: plain
	{Name: "bytes", Type: event.TypeLong, Required: true},    // random: delta
	{Name: "level", Type: event.TypeLong},                    // few values in runs: dictionary
	{Name: "code", Type: event.TypeInt},                      // delta, 32 bits
	{Name: "small", Type: event.TypeInt, Required: true},     // few values: dictionary, 32 bits
	{Name: "cpu", Type: event.TypeDouble},                    // split
	{Name: "ratio", Type: event.TypeDouble, Required: true},  // few values: dictionary
	{Name: "ok", Type: event.TypeBool},
	{Name: "never", Type: event.TypeLong}, // null in every row
}

// pageEvents makes n rows of pageSchema in the hour at hour.
func pageEvents(n int, hour int64) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		v := make([]event.Value, len(pageSchema))
		tm := hour + int64(i)*int64(hourMicros)/int64(n+1)
		x := uint64(i)*0x9E3779B97F4A7C15 + 12345
		v[0] = event.Value{I: tm, Valid: true}
		v[1] = event.Value{S: []string{"eu", "us", "ap"}[x>>60%3], Valid: true}
		if i%7 != 3 {
			v[2] = event.Value{S: fmt.Sprintf("host-%x", x>>20), Valid: true}
		}
		v[3] = event.Value{I: int64(x>>40) - 1<<22, Valid: true}
		if i%5 != 0 {
			v[4] = event.Value{I: int64(i / 300 % 4), Valid: true}
		}
		if i%3 != 0 {
			v[5] = event.Value{I: int64(int32(x >> 33)), Valid: true}
		}
		v[6] = event.Value{I: int64(i / 100 % 3), Valid: true}
		if i%11 != 0 {
			f := float64(x>>44) / 1000
			if i%13 == 0 {
				f = math.Copysign(0, -1)
			}
			v[7] = event.Value{F: f, Valid: true}
		}
		v[8] = event.Value{F: []float64{0.5, 0.25, 1}[i/50%3], Valid: true}
		if i%4 != 0 {
			v[9] = event.Value{I: int64(x >> 63), Valid: true}
		}
		evs[i] = event.Event{ID: fmt.Sprintf("id-%07d", i), Time: tm, Ingest: tm + 5, Values: v}
	}
	return evs
}

// writePageFile writes evs with the lake's file writer as a file of tl.
func writePageFile(t testing.TB, tl *topicLake, hour int64, evs []event.Event) fileEntry {
	t.Helper()
	offs := make([]int64, len(evs))
	for i := range offs {
		offs[i] = int64(i)
	}
	path := fmt.Sprintf("dt=2026-01-01/hour=00/p0-0-%d.parquet", len(evs)-1)
	return writeTestFile(t, tl, path, hour, 0, 0, int64(len(evs)-1), evs, offs)
}

// readAll reads every row group of the lake file fe with r: its rows, and
// per batch and field whether the batch held the field as dictionary
// indices.
func readAll(t *testing.T, tl *topicLake, fe fileEntry, r *columnReader) ([]event.Event, []string) {
	t.Helper()
	lf, err := tl.openLakeFile(context.Background(), fe, scanOptions{IDs: true, Ingest: true, Positions: true, BatchRows: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer lf.close()
	var rows []event.Event
	var forms []string
	schema := tl.topic.Schema
	for rg := range lf.rowGroups() {
		err := r.scanRowGroup(context.Background(), lf, rg, func(b *colBatch) error {
			var form strings.Builder
			for t := range b.Fields {
				fmt.Fprintf(&form, "%v ", b.Fields[t].Words != nil)
			}
			forms = append(forms, form.String())
			for i := range b.Len {
				e := event.Event{ID: b.ID[i], Time: b.Time[i], Ingest: b.Ingest[i], Values: make([]event.Value, len(schema))}
				for t := range schema {
					e.Values[t] = b.Fields[t].Value(i, schema[t].Type)
				}
				// The position rides in the values' tail for the comparison.
				e.Values = append(e.Values, event.Value{I: int64(b.Parts[i])}, event.Value{I: b.Offsets[i]})
				rows = append(rows, e)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return rows, forms
}

// readBoth reads fe with the page decoder and with parquet-go's page
// reader, fails unless both give the same rows in the same dictionary
// forms, and returns the rows and the two readers (to count their chunks).
func readBoth(t *testing.T, tl *topicLake, fe fileEntry) ([]event.Event, *columnReader, *columnReader) {
	t.Helper()
	var own, pq columnReader
	pq.parquetPages = true
	got, gotForms := readAll(t, tl, fe, &own)
	want, wantForms := readAll(t, tl, fe, &pq)
	sameDecoded(t, got, want)
	if fmt.Sprint(gotForms) != fmt.Sprint(wantForms) {
		t.Fatalf("%s: dictionary forms %v, parquet-go %v", fe.Path, gotForms, wantForms)
	}
	return got, &own, &pq
}

// sameDecoded fails unless got and want hold the same rows, value by value
// (the sign of zero included).
func sameDecoded(t *testing.T, got, want []event.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Time != w.Time || g.Ingest != w.Ingest || len(g.Values) != len(w.Values) {
			t.Fatalf("row %d: %s %d %d (%d values), want %s %d %d (%d values)", i, g.ID, g.Time, g.Ingest, len(g.Values), w.ID, w.Time, w.Ingest, len(w.Values))
		}
		for j := range g.Values {
			if g.Values[j] != w.Values[j] || math.Signbit(g.Values[j].F) != math.Signbit(w.Values[j].F) {
				t.Fatalf("row %d value %d = %+v, want %+v", i, j, g.Values[j], w.Values[j])
			}
		}
	}
}

// TestPageDecoderMatchesParquet: the lake's page decoder reads what
// parquet-go's page reader reads, value by value and in the same form
// (dictionary indices where parquet-go gives them), from files of the lake
// writer (large and small, so every encoding plan and every way of
// compressing pages) and from files parquet-go writes with the encodings
// the lake writer does not pick (data pages v1 and v2), and it reads every
// column chunk of the lake writer's files itself (DELTA_BYTE_ARRAY ids in
// the largest).
func TestPageDecoderMatchesParquet(t *testing.T) {
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	t.Run("lake-writer", func(t *testing.T) {
		for _, n := range []int{1, 100, 3000, 70_000} {
			tl, _ := testDirLake(t, pageSchema)
			evs := pageEvents(n, hour)
			fe := writePageFile(t, tl, hour, evs)
			got, own, pq := readBoth(t, tl, fe)
			if n >= bestFileRows && !slices.ContainsFunc(fileEncodings(t, tl, fe), func(e []format.Encoding) bool {
				return slices.Contains(e, format.DeltaByteArray)
			}) {
				t.Fatalf("%d rows: no DELTA_BYTE_ARRAY column: the case no longer covers its decoding", n)
			}
			// Every field, _id, _partition, _offset, _event_time and _ingest_time.
			if cols := len(pageSchema) + metaColumns; own.ownChunks != cols || pq.ownChunks != 0 {
				t.Fatalf("%d rows: the page decoder read %d column chunks (parquet-go's reader %d), want %d", n, own.ownChunks, pq.ownChunks, cols)
			}
			for i := range got {
				w := evs[i]
				if got[i].ID != w.ID || got[i].Time != w.Time {
					t.Fatalf("%d rows: row %d is %s, want %s", n, i, got[i].ID, w.ID)
				}
				for j := range pageSchema {
					if got[i].Values[j] != w.Values[j] {
						t.Fatalf("%d rows: row %d field %s = %+v, written %+v", n, i, pageSchema[j].Name, got[i].Values[j], w.Values[j])
					}
				}
			}
		}
	})
	schema, _, in, _ := encTestRows()
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprintf("parquet-go-v%d", v), func(t *testing.T) {
			tl, _ := testDirLake(t, schema)
			fe := writeStructFile(t, tl, "dt=2026-01-01/hour=00/p3-1000-99999.parquet", hour, 3, 1000, in,
				parquet.PageBufferSize(2<<10), parquet.MaxRowsPerRowGroup(20_000), parquet.DataPageVersion(v))
			_, own, _ := readBoth(t, tl, fe)
			// host (snappy, delta strings) and region (delta-length
			// strings, parquet-go's default) are parquet-go's; the 12
			// others are the decoder's, in each of the row groups.
			if groups := (len(in) + 19_999) / 20_000; own.ownChunks != 12*groups {
				t.Fatalf("the page decoder read %d column chunks, want %d", own.ownChunks, 12*groups)
			}
		})
	}
}

// fileEncodings lists the encodings of each column chunk of fe.
func fileEncodings(t *testing.T, tl *topicLake, fe fileEntry) [][]format.Encoding {
	t.Helper()
	lf, err := tl.openLakeFile(context.Background(), fe, scanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer lf.close()
	var out [][]format.Encoding
	for _, g := range lf.meta.groups {
		for _, c := range g.chunks {
			out = append(out, c.encodings)
		}
	}
	return out
}

// TestPageDecoderCorrupt: a lake file whose pages are damaged (the
// checksum in the manifest made to match, as if written so) is
// ErrCorruptFile naming the file, the column and the page, whatever byte
// is damaged; never a panic or wrong values read as right.
func TestPageDecoderCorrupt(t *testing.T) {
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	tl, dir := testDirLake(t, pageSchema)
	evs := pageEvents(3000, hour)
	fe := writePageFile(t, tl, hour, evs)
	path := dir + "/" + tl.key(fe.Path)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := tl.openLakeFile(context.Background(), fe, scanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	md := lf.meta.groups[0].chunks
	var names []string // copied: the footer's bytes go back to a pool at close
	for _, c := range lf.meta.columns {
		names = append(names, string(c.name))
	}
	lf.close()
	var errs int
	for c := range md {
		chunk, start, ok := pageChunk(good, &md[c])
		if !ok {
			t.Fatalf("column %d: no chunk", c)
		}
		h, hn, err := readPageHeader(chunk)
		if err != nil {
			t.Fatal(err)
		}
		// A byte of the first page header, of the page itself, and the
		// chunk's last byte.
		for _, at := range []int64{start + 2, start + int64(len(chunk))/2, start + int64(len(chunk)) - 1} {
			// The page CRC covers the first page's body, not its header.
			inBody := at >= start+int64(hn) && at < start+int64(hn)+int64(h.compressed)
			bad := append([]byte(nil), good...)
			bad[at] ^= 0x5a
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			// With the file's checksum made to match (as if written so),
			// and without one (the pages' CRC-32s are checked then).
			for _, sum := range []uint32{crc32.Checksum(bad, castagnoli), 0} {
				fe := fe
				fe.CRC32C = sum
				err := scanDamaged(t, tl, fe)
				if err == nil && sum == 0 && inBody {
					t.Fatalf("column %d, byte %d damaged, no file checksum: read without error", c, at)
				}
				if err == nil {
					// Damage zstd cannot see (a literal byte) may read as
					// other values: that is what the file checksum is for;
					// the decoder itself must only not fail wrongly.
					continue
				}
				errs++
				name := names[c]
				if !errors.Is(err, ErrCorruptFile) || !strings.Contains(err.Error(), fe.Path) || !strings.Contains(err.Error(), "column "+name) {
					t.Fatalf("column %s, byte %d damaged: %v", name, at, err)
				}
			}
		}
	}
	if errs < 2*len(md) {
		t.Fatalf("%d errors for %d damaged bytes in %d columns", errs, 3*len(md), len(md))
	}
}

// scanDamaged reads row group 0 of the lake file fe, every column.
func scanDamaged(t *testing.T, tl *topicLake, fe fileEntry) error {
	t.Helper()
	lf, err := tl.openLakeFile(context.Background(), fe, scanOptions{IDs: true, Ingest: true, Positions: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lf.close()
	var r columnReader
	return r.scanRowGroup(context.Background(), lf, 0, func(b *colBatch) error {
		for i := range b.Len {
			for t := range pageSchema {
				b.Fields[t].Value(i, pageSchema[t].Type)
			}
		}
		return nil
	})
}

// pageError is how the page decoder's errors start.
var pageError = regexp.MustCompile(`^page [0-9]+ at byte [0-9]+: `)

// FuzzPageDecoder: whatever the bytes of a column chunk, the page decoder
// returns pages whose levels and values agree, or an error naming the
// page; it never panics. Seeded with the column chunks of lake files.
func FuzzPageDecoder(f *testing.F) {
	hour := periodOf(1_767_225_600_000_000, hourMicros)
	// The chunks of small files; of a file of bestFileRows rows or more,
	// only those DELTA_BYTE_ARRAY (numbered ids), which no smaller file has.
	var deltaBytes int
	for _, n := range []int{3, 300, 2000, bestFileRows + 100} {
		tl, dir := testDirLake(f, pageSchema)
		fe := writePageFile(f, tl, hour, pageEvents(n, hour))
		b, err := os.ReadFile(dir + "/" + tl.key(fe.Path))
		if err != nil {
			f.Fatal(err)
		}
		lf, err := tl.openLakeFile(context.Background(), fe, scanOptions{})
		if err != nil {
			f.Fatal(err)
		}
		for j, md := range lf.meta.groups[0].chunks {
			if n >= bestFileRows && !slices.Contains(md.encodings, format.DeltaByteArray) {
				continue
			}
			if slices.Contains(md.encodings, format.DeltaByteArray) {
				deltaBytes++
			}
			chunk, _, ok := pageChunk(b, &md)
			if !ok {
				f.Fatal("no chunk")
			}
			f.Add(chunk, uint8(md.typ), lf.meta.columns[j].maxDef == 1, true)
		}
		lf.close()
	}
	if deltaBytes == 0 {
		f.Fatal("no DELTA_BYTE_ARRAY chunk among the seeds")
	}
	zd := newPageZstd(1 << 22)
	// Smaller bounds than a reader's, so that no input takes long.
	d := pageDecoder{maxValues: 1 << 16, maxBytes: 1 << 22}
	f.Fuzz(func(t *testing.T, chunk []byte, typ uint8, optional, zstd bool) {
		codec, maxDef := format.Uncompressed, 0
		if zstd {
			codec = format.Zstd
		}
		if optional {
			maxDef = 1
		}
		d.zstd = zd
		d.reset(chunk, 0, format.Type(typ%8), codec, maxDef)
		var v pageValues
		for page := 0; ; page++ {
			err := d.next(&v)
			if err == io.EOF {
				return
			}
			if err != nil {
				if !pageError.MatchString(err.Error()) {
					t.Fatalf("error not naming the page: %v", err)
				}
				return
			}
			values := v.rows
			if v.defs != nil {
				if len(v.defs) != v.rows {
					t.Fatalf("page %d: %d levels for %d rows", page, len(v.defs), v.rows)
				}
				values = 0
				for _, x := range v.defs {
					values += int(x)
				}
			}
			var n int
			switch {
			case v.i64 != nil:
				n = len(v.i64)
			case v.i32 != nil:
				n = len(v.i32)
			case v.f64 != nil:
				n = len(v.f64)
			case v.idx != nil:
				n = len(v.idx)
			case v.offs != nil:
				n = len(v.offs) - 1
				if int(v.offs[n]) != len(v.data) {
					t.Fatalf("page %d: strings end at %d of %d bytes", page, v.offs[n], len(v.data))
				}
			case v.bits != nil:
				n = values
				if len(v.bits) < (values+7)/8 {
					t.Fatalf("page %d: %d bytes of %d booleans", page, len(v.bits), values)
				}
			}
			if n != values {
				t.Fatalf("page %d: %d values for %d rows with a value", page, n, values)
			}
		}
	})
}

// BenchmarkPageDecoder reads column chunks of a lake file of the example
// schema (1M rows, one row group) page by page, with the lake's page
// decoder and with parquet-go's page reader: what decoding each column
// costs, apart from the engine.
func BenchmarkPageDecoder(b *testing.B) {
	const n = 1 << 20
	ls, err := newLakeSchema(exampleSchema)
	if err != nil {
		b.Fatal(err)
	}
	st, err := lakestore.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	tl := &topicLake{topic: &pipelines.Topic{Name: "t", Schema: exampleSchema}, st: st, ls: ls, layout: layout{size: dayMicros}}
	evs := exampleEvents(n, 2)
	day := tl.layout.start(evs[0].Time)
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = int64(i)
	}
	fe := writeTestFile(b, tl, "dt=2026-01-01/p0.parquet", day, 0, 0, n-1, evs, offs)
	lf, err := tl.openLakeFile(context.Background(), fe, scanOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer lf.close()
	pf, err := lf.parquetFile()
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"region", "cpu", "bytes", event.ColEventTime} {
		col, maxDef := lf.meta.column(name)
		for _, own := range []bool{true, false} {
			reader := "parquet-go"
			if own {
				reader = "own"
			}
			b.Run(name+"/"+reader, func(b *testing.B) {
				var c pageCursor
				md := &lf.meta.groups[0].chunks[col]
				chunk, start, _ := pageChunk(lf.bytes, md)
				b.SetBytes(n)
				for b.Loop() {
					if own {
						c.resetOwn(chunk, start, md, maxDef)
					} else {
						c.reset(pf.RowGroups()[0].ColumnChunks()[col].Pages())
					}
					for rows := 0; rows < n; rows += c.rows {
						if err := c.next(); err != nil {
							b.Fatal(err)
						}
					}
					c.close()
				}
			})
		}
	}
}

// TestDeltaByteArraysBounded: DELTA_BYTE_ARRAY strings that repeat the
// value before them decode to far more bytes than their page holds; past
// the decoder's limit they are an error, not an allocation of that size,
// and within it they decode to the strings.
func TestDeltaByteArraysBounded(t *testing.T) {
	const n, first = 1000, 4096
	pre, suf := make([]int32, n), make([]int32, n)
	suf[0] = first
	for i := 1; i < n; i++ {
		pre[i] = first // all of the value before
	}
	page := appendDeltaPacked(nil, pre, false)
	page = appendDeltaPacked(page, suf, false)
	page = append(page, strings.Repeat("x", first)...)

	d := pageDecoder{maxBytes: 1 << 20, typ: format.ByteArray} // the strings are n*first = 4,096,000 bytes
	var v pageValues
	err := d.values(int32(format.DeltaByteArray), page, n, &v)
	if err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("strings of %d bytes under a limit of %d: %v, want an error naming the limit", n*first, d.maxBytes, err)
	}
	d = pageDecoder{maxBytes: 8 << 20, typ: format.ByteArray}
	if err := d.values(int32(format.DeltaByteArray), page, n, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.offs) != n+1 || len(v.data) != n*first || strings.Trim(v.data, "x") != "" {
		t.Fatalf("%d offsets and %d bytes, want %d and %d bytes of x", len(v.offs), len(v.data), n+1, n*first)
	}
}
