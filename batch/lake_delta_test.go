package batch

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"
	pqdelta "github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/format"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// deltaInputs are value sequences delta packing must round-trip: every
// block and miniblock boundary, sorted times, extremes that overflow
// the deltas, constants and noise.
func deltaInputs() map[string][]int64 {
	in := map[string][]int64{}
	for _, n := range []int{0, 1, 2, 31, 32, 33, 127, 128, 129, 130, 161, 256, 257, 1000} {
		minutes := make([]int64, n)
		noise := make([]int64, n)
		extremes := make([]int64, n)
		constant := make([]int64, n)
		t := int64(1_362_096_000_000_000)
		for i := range n {
			t += 60_000_000 * int64((i*2654435761>>9)%4)
			minutes[i] = t
			noise[i] = int64(uint64(i+1) * 0x9E3779B97F4A7C15)
			extremes[i] = []int64{math.MinInt64, math.MaxInt64, 0, -1, 1}[i%5]
			constant[i] = -42
		}
		in[fmt.Sprintf("minutes/%d", n)] = minutes
		in[fmt.Sprintf("noise/%d", n)] = noise
		in[fmt.Sprintf("extremes/%d", n)] = extremes
		in[fmt.Sprintf("constant/%d", n)] = constant
	}
	return in
}

// deltaWidths parses a DELTA_BINARY_PACKED page body and returns the bit
// width of every miniblock that holds values.
func deltaWidths(t *testing.T, b []byte) []int {
	t.Helper()
	pos := 0
	uv := func() uint64 {
		v, k := binary.Uvarint(b[pos:])
		if k <= 0 {
			t.Fatalf("truncated header at byte %d", pos)
		}
		pos += k
		return v
	}
	block, minis, total := uv(), uv(), uv()
	uv() // the first value
	if block != deltaBlock || minis != deltaMinis {
		t.Fatalf("blocks of %d in %d miniblocks", block, minis)
	}
	var widths []int
	for left := int(total) - 1; left > 0; {
		uv() // the block's smallest delta
		ws := b[pos : pos+deltaMinis]
		pos += deltaMinis
		for _, w := range ws {
			if left <= 0 {
				if w != 0 {
					t.Errorf("a miniblock without values has width %d", w)
				}
				continue
			}
			widths = append(widths, int(w))
			pos += deltaMiniCount * int(w) / 8
			left -= deltaMiniCount
		}
	}
	if pos != len(b) {
		t.Errorf("page of %d bytes, its blocks end at %d", len(b), pos)
	}
	return widths
}

// tightWidths computes, apart from the encoder, the narrowest bit width of
// each miniblock: deltas above the block's smallest (wrapping in the
// values' width).
func tightWidths(vals []int64, narrow bool) []int {
	var widths []int
	for i := 1; i < len(vals); i += deltaBlock {
		end := min(i+deltaBlock, len(vals))
		d := make([]int64, 0, deltaBlock)
		for j := i; j < end; j++ {
			if narrow {
				d = append(d, int64(int32(vals[j])-int32(vals[j-1])))
			} else {
				d = append(d, vals[j]-vals[j-1])
			}
		}
		lo := slices.Min(d)
		for m := 0; m < len(d); m += deltaMiniCount {
			w := 0
			for _, x := range d[m:min(m+deltaMiniCount, len(d))] {
				u := uint64(x - lo)
				if narrow {
					u = uint64(uint32(int32(x) - int32(lo)))
				}
				w = max(w, bits.Len64(u))
			}
			widths = append(widths, w)
		}
	}
	return widths
}

// TestDeltaPacking packs every input both ways, as int64 and as int32, and
// reads it back with parquet-go's decoder and with the batch layer's own:
// the same values, each miniblock at its narrowest width (tight) or that
// rounded up to whole bytes (aligned), and the last block of a page as
// narrow as its own deltas need.
func TestDeltaPacking(t *testing.T) {
	var dec pqdelta.BinaryPackedEncoding
	var own deltaDecoder
	for name, vals := range deltaInputs() {
		vals32 := make([]int32, len(vals))
		narrowed := make([]int64, len(vals))
		for i, v := range vals {
			vals32[i] = int32(v)
			narrowed[i] = int64(int32(v))
		}
		for _, aligned := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/aligned=%t", name, aligned), func(t *testing.T) {
				b := appendDeltaPacked(nil, vals, aligned)
				got, err := dec.DecodeInt64(nil, b)
				if err != nil || !slices.Equal(got, vals) && len(vals) > 0 {
					t.Fatalf("parquet-go reads %d values (%v), want %d", len(got), err, len(vals))
				}
				mine, n, err := own.decode(nil, b, len(vals), false)
				if err != nil || n != len(b) || !slices.Equal(mine, vals) && len(vals) > 0 {
					t.Fatalf("own decoder: %d values, %d of %d bytes (%v)", len(mine), n, len(b), err)
				}
				checkWidths(t, deltaWidths(t, b), tightWidths(vals, false), aligned)

				b32 := appendDeltaPacked(nil, vals32, aligned)
				got32, err := dec.DecodeInt32(nil, b32)
				if err != nil || !slices.Equal(got32, vals32) && len(vals) > 0 {
					t.Fatalf("parquet-go reads %d int32 values (%v), want %d", len(got32), err, len(vals32))
				}
				mine, n, err = own.decode(nil, b32, len(vals), true)
				if err != nil || n != len(b32) || !slices.Equal(mine, narrowed) && len(vals) > 0 {
					t.Fatalf("own decoder, int32: %d values, %d of %d bytes (%v)", len(mine), n, len(b32), err)
				}
				checkWidths(t, deltaWidths(t, b32), tightWidths(narrowed, true), aligned)
			})
		}
	}
}

func checkWidths(t *testing.T, got, tight []int, aligned bool) {
	t.Helper()
	want := tight
	if aligned {
		want = make([]int, len(tight))
		for i, w := range tight {
			want[i] = (w + 7) / 8 * 8
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("miniblock widths %v, want %v", got, want)
	}
}

// TestDeltaPackingLastBlock: a page's last block holds fewer than 128
// deltas; its smallest delta, and so its widths, are those of its own
// deltas (parquet-go's encoder counted the missing ones as zeros, and
// packed the last block of a timestamp column at ~60 bits a value).
func TestDeltaPackingLastBlock(t *testing.T) {
	vals := make([]int64, 160) // a full block, then 31 deltas
	for i := range vals {
		vals[i] = 1_362_096_000_000_000 + int64(i)*60_000_000
	}
	b := appendDeltaPacked(nil, vals, false)
	if w := deltaWidths(t, b); !slices.Equal(w, []int{0, 0, 0, 0, 0}) {
		t.Errorf("widths %v: every delta is the same, so every width is 0", w)
	}
	// Header (4 varints, the first value 8 bytes) and two block headers of
	// a 4-byte smallest delta and 4 widths each.
	if len(b) > 30 {
		t.Errorf("%d bytes for 160 evenly spaced times", len(b))
	}
}

// TestDeltaPackingChoosesPerFile writes minute-granular times (a sparse
// topic's events: deltas that are multiples of 60 s) into an hourly-sized
// file, a daily-sized one and a large one. In the first two the pages
// whose aligned packing is smaller stored are aligned (the event time
// columns), in the large one every page is tight; all read back exactly
// by the batch layer, pyarrow and DuckDB.
func TestDeltaPackingChoosesPerFile(t *testing.T) {
	tl, dir := testDirLake(t, encodingSchema)
	daily := &topicLake{topic: tl.topic, st: tl.st, ls: tl.ls, layout: layout{size: dayMicros}}
	day := periodOf(1_767_225_600_000_000, dayMicros)
	for _, c := range []struct {
		name    string
		rows    int
		aligned bool
		cols    []string // delta-packed columns
	}{
		{"hourly-sized file", 48, true, []string{"ts", event.ColEventTime}},
		{"daily-sized file", 450, true, []string{"ts", event.ColEventTime}},
		// ts: a dictionary of the day's minutes
		{"over 16,383 rows", 20_000, false, []string{event.ColEventTime}},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs := minuteEvents(c.rows, day)
			offs := make([]int64, c.rows)
			for i := range offs {
				offs[i] = 10 + int64(i)
			}
			path := fmt.Sprintf("dt=2026-01-01/rows-%d.parquet", c.rows)
			fe := writeTestFile(t, daily, path, day, 2, offs[0], offs[c.rows-1], evs, offs)
			file := filepath.Join(dir, filepath.FromSlash(daily.key(path)))
			for _, col := range c.cols {
				widths := fileDeltaWidths(t, file, col)
				whole := !slices.ContainsFunc(widths, func(w int) bool { return w%8 != 0 })
				if whole != c.aligned {
					t.Errorf("%s: widths %v, want aligned %t", col, widths, c.aligned)
				}
			}
			readBack(t, daily, fe, evs, offs)
			checkPyarrowDuckDB(t, file, evs, offs)
		})
	}
}

// minuteEvents makes n events of encodingSchema whose times (ts and the
// event time) are whole minutes within the day from start, in order: 0 to
// 3 minutes apart (a day of scheduled departures) when the day has room
// for that, else spread evenly.
func minuteEvents(n int, start int64) []event.Event {
	evs := encodingEvents(n, start, false)
	minute := 0
	for i := range evs {
		if n <= 1440/3 {
			minute += (i * 2654435761 >> 9) % 4
		} else {
			minute = i * 1439 / n
		}
		tm := start + int64(minute)*60_000_000
		evs[i].Time = tm
		evs[i].Values[0].I = tm
	}
	return evs
}

// fileDeltaWidths returns the miniblock widths of the first data page of
// a delta-packed required column.
func fileDeltaWidths(t *testing.T, file, col string) []int {
	t.Helper()
	pf := openParquet(t, file)
	leaf, ok := pf.Schema().Lookup(col)
	if !ok {
		t.Fatalf("no column %s", col)
	}
	md := pf.Metadata().RowGroups[0].Columns[leaf.ColumnIndex].MetaData
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	h, n, err := readPageHeader(b[md.DataPageOffset:])
	if err != nil {
		t.Fatal(err)
	}
	if h.typ != pageData || h.encoding != int32(format.DeltaBinaryPacked) {
		t.Fatalf("%s: first page of type %d, encoding %d", col, h.typ, h.encoding)
	}
	body := b[md.DataPageOffset+int64(n):][:h.compressed]
	dec, err := kzstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	page, err := dec.DecodeAll(body, nil)
	if err != nil {
		t.Fatal(err)
	}
	return deltaWidths(t, page)
}
