package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// scanParquetArrow reads a lake file with arrow-go (pqarrow): a second,
// independent implementation of Parquet (Apache Arrow's), kept beside the
// lake's own reader (scanParquet, parquet-go) for two jobs: every layout
// the lake writes is checked against it (TestLakeFileRoundTrip), and
// BenchmarkRecompute measures the lake's reader against it on the same
// workload. It streams 16Ki-row record batches with a recycling allocator,
// reads strings as dictionaries and decodes only the columns asked for.
func scanParquetArrow(ctx context.Context, o lakestore.Object, name string, schema event.Schema, fe fileEntry, opts scanOptions, fn func(*scanBatch) error) (err error) {
	s := &fileScan{path: name, schema: schema, fe: fe}
	defer s.recoverCorrupt(&err)
	pf, err := file.NewParquetReader(io.NewSectionReader(o, 0, o.Size()))
	if err != nil {
		return s.corrupt("%v", err)
	}
	defer pf.Close()
	if got := pf.NumRows(); got != fe.Rows {
		return s.corrupt("holds %d rows, the manifest says %d", got, fe.Rows)
	}
	fileSchema := pf.MetaData().Schema
	colIndex := func(name string) int { return fileSchema.ColumnIndexByName(name) }
	props := pqarrow.ArrowReadProperties{BatchSize: readBatchRows}
	for _, f := range schema {
		if c := colIndex(f.Name); c >= 0 && f.Type == event.TypeString {
			props.SetReadDict(c, true)
		}
	}
	fr, err := pqarrow.NewFileReader(pf, props, new(readPool))
	if err != nil {
		return s.corrupt("%v", err)
	}
	if err := s.selectColumns(opts, colIndex); err != nil {
		return err
	}
	dicts := make([]dictWords, len(schema))
	readGroup := func(rg int) error {
		rr, err := fr.GetRecordReader(ctx, s.cols, []int{rg})
		if err != nil {
			return s.corrupt("row group %d: %v", rg, err)
		}
		defer rr.Release()
		for rr.Next() {
			rec := rr.RecordBatch()
			b := s.batch(int(rec.NumRows()))
			for ci, col := range rec.Columns() {
				t := s.target[ci]
				if t >= 0 {
					if err := fillField(b.Events, t, schema[t].Type, col, &dicts[t]); err != nil {
						return s.corrupt("column %s: %v", schema[t].Name, err)
					}
					continue
				}
				if err := fillMeta(b, t, col); err != nil {
					return s.corrupt("column %s: %v", rec.ColumnName(ci), err)
				}
			}
			if err := s.deliver(fn); err != nil {
				return err
			}
		}
		if err := rr.Err(); err != nil {
			return s.corrupt("row group %d: %v", rg, err)
		}
		return nil
	}
	for rg := range pf.NumRowGroups() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := readGroup(rg); err != nil {
			return err
		}
	}
	return s.done()
}

// fillField copies an Arrow column into field t of the events; dw keeps
// the column's last dictionary.
func fillField(evs []event.Event, t int, typ event.FieldType, col arrow.Array, dw *dictWords) error {
	nulls := col.NullN() > 0
	switch a := col.(type) {
	case *array.Dictionary:
		dict, ok := a.Dictionary().(*array.String)
		if !ok || typ != event.TypeString {
			return fmt.Errorf("%s in the file, %s in the schema", col.DataType(), typ)
		}
		// Convert each dictionary entry once (and once per file while
		// batches repeat the dictionary).
		words := dw.of(dict)
		switch ix := a.Indices().(type) {
		case *array.Int32:
			return fillDict(evs, t, words, ix.Int32Values(), a)
		case *array.Int16:
			return fillDict(evs, t, words, ix.Int16Values(), a)
		case *array.Int8:
			return fillDict(evs, t, words, ix.Int8Values(), a)
		case *array.Int64:
			return fillDict(evs, t, words, ix.Int64Values(), a)
		default:
			return fmt.Errorf("dictionary indices of type %s", ix.DataType())
		}
	case *array.String:
		if typ != event.TypeString {
			return fmt.Errorf("string in the file, %s in the schema", typ)
		}
		data, offs := ownStrings(a)
		for i := range evs {
			if nulls && a.IsNull(i) {
				evs[i].Values[t] = event.Value{}
				continue
			}
			evs[i].Values[t] = event.Value{S: data[offs[i]:offs[i+1]], Valid: true}
		}
	case *array.Float64:
		if typ != event.TypeDouble {
			return fmt.Errorf("double in the file, %s in the schema", typ)
		}
		vs := a.Float64Values()
		for i := range evs {
			if nulls && a.IsNull(i) {
				evs[i].Values[t] = event.Value{}
				continue
			}
			evs[i].Values[t] = event.Value{F: vs[i], Valid: true}
		}
	case *array.Int64:
		return fillInt(evs, t, typ, "long", a.Int64Values(), a)
	case *array.Timestamp:
		vs := a.TimestampValues()
		return fillInt(evs, t, typ, "long", *(*[]int64)(unsafePointer(&vs)), a)
	case *array.Int32:
		return fillInt(evs, t, typ, "int", a.Int32Values(), a)
	case *array.Boolean:
		if !integerLike(typ) {
			return fmt.Errorf("bool in the file, %s in the schema", typ)
		}
		for i := range evs {
			if nulls && a.IsNull(i) {
				evs[i].Values[t] = event.Value{}
				continue
			}
			var v int64
			if a.Value(i) {
				v = 1
			}
			evs[i].Values[t] = event.Value{I: v, Valid: true}
		}
	default:
		return fmt.Errorf("unexpected Arrow type %s", col.DataType())
	}
	return nil
}

// fillInt copies an integer column (of type file, as the error names it)
// into field t of the events: as integers, or as doubles into a double
// field.
func fillInt[I int32 | int64](evs []event.Event, t int, typ event.FieldType, file string, vs []I, a arrow.Array) error {
	if !integerLike(typ) && typ != event.TypeDouble {
		return fmt.Errorf("%s in the file, %s in the schema", file, typ)
	}
	nulls := a.NullN() > 0
	for i := range evs {
		if nulls && a.IsNull(i) {
			evs[i].Values[t] = event.Value{}
			continue
		}
		if typ == event.TypeDouble {
			evs[i].Values[t] = event.Value{F: float64(vs[i]), Valid: true}
		} else {
			evs[i].Values[t] = event.Value{I: int64(vs[i]), Valid: true}
		}
	}
	return nil
}

// fillMeta copies a metadata column into the batch.
func fillMeta(b *scanBatch, t int, col arrow.Array) error {
	if col.NullN() > 0 {
		return errors.New("metadata column holds nulls")
	}
	switch t {
	case tID:
		a, ok := col.(*array.String)
		if !ok {
			return fmt.Errorf("type %s, want string", col.DataType())
		}
		data, offs := ownStrings(a)
		for i := range b.Events {
			b.Events[i].ID = data[offs[i]:offs[i+1]]
		}
	case tPart:
		a, ok := col.(*array.Int32)
		if !ok {
			return fmt.Errorf("type %s, want int32", col.DataType())
		}
		copy(b.Parts, a.Int32Values())
	default:
		var vs []int64
		switch a := col.(type) {
		case *array.Int64:
			vs = a.Int64Values()
		case *array.Timestamp:
			ts := a.TimestampValues()
			vs = *(*[]int64)(unsafePointer(&ts))
		default:
			return fmt.Errorf("type %s, want int64", col.DataType())
		}
		switch t {
		case tOffset:
			copy(b.Offsets, vs)
		case tEventTime:
			for i := range b.Events {
				b.Events[i].Time = vs[i]
			}
		case tIngest:
			for i := range b.Events {
				b.Events[i].Ingest = vs[i]
			}
		}
	}
	return nil
}

// fillDict sets field t of the events from dictionary indices.
func fillDict[I int8 | int16 | int32 | int64](evs []event.Event, t int, words []string, idx []I, a arrow.Array) error {
	nulls := a.NullN() > 0
	for i := range evs {
		if nulls && a.IsNull(i) {
			evs[i].Values[t] = event.Value{}
			continue
		}
		j := int(idx[i])
		if j < 0 || j >= len(words) {
			return fmt.Errorf("dictionary index %d out of range", j)
		}
		evs[i].Values[t] = event.Value{S: words[j], Valid: true}
	}
	return nil
}

// ownStrings copies the bytes of a's values into one string of their own
// (the Arrow buffers are recycled when the next batch is read) and
// returns it with the offsets of the values in it: value i is
// data[offs[i]:offs[i+1]].
func ownStrings(a *array.String) (data string, offs []int32) {
	offs = a.ValueOffsets()
	data = string(a.ValueBytes())
	if base := offs[0]; base != 0 {
		rel := make([]int32, len(offs))
		for i, o := range offs {
			rel[i] = o - base
		}
		offs = rel
	}
	return data, offs
}

// dictWords holds the words of the last dictionary of one string column,
// so that batches repeating it reuse them instead of copying them again.
type dictWords struct {
	raw   []byte  // the dictionary's bytes
	offs  []int32 // and offsets
	words []string
}

// of returns dict's words, as strings of their own.
func (d *dictWords) of(dict *array.String) []string {
	offs, raw := dict.ValueOffsets(), dict.ValueBytes()
	if d.words != nil && bytes.Equal(raw, d.raw) && slices.Equal(offs, d.offs) {
		return d.words
	}
	d.raw = append(d.raw[:0], raw...)
	d.offs = append(d.offs[:0], offs...)
	data, rel := ownStrings(dict)
	words := make([]string, dict.Len())
	for i := range words {
		words[i] = data[rel[i]:rel[i+1]]
	}
	d.words = words
	return words
}

// readPool is the Arrow allocator of one file scan. The streaming reader
// allocates the same buffers for every batch and releases the previous
// batch's when it reads the next, so recycling them leaves the scan
// allocating about one batch's worth of memory instead of the file's.
//
// Recycled memory is reused while the scan runs, so nothing may keep a
// pointer into an Arrow buffer past its batch: scanParquet copies every
// string it hands out (see ownStrings). Buffers are zeroed and 64-byte
// aligned, as memory.GoAllocator's are. It is safe for concurrent use.
type readPool struct {
	mu   sync.Mutex
	free [48][][]byte // by log2 of the capacity
}

var _ memory.Allocator = (*readPool)(nil)

const (
	readPoolAlign   = 64
	readPoolMinLog2 = 6 // 64 bytes
)

func poolClass(size int) int {
	if size <= 1<<readPoolMinLog2 {
		return readPoolMinLog2
	}
	return bits.Len(uint(size - 1))
}

// Allocate returns a zeroed buffer of size bytes.
func (p *readPool) Allocate(size int) []byte {
	if size < 0 {
		panic("readPool: negative size")
	}
	c := poolClass(size)
	if c >= len(p.free) {
		return memory.DefaultAllocator.Allocate(size)
	}
	p.mu.Lock()
	var b []byte
	if n := len(p.free[c]); n > 0 {
		b = p.free[c][n-1]
		p.free[c][n-1] = nil
		p.free[c] = p.free[c][:n-1]
	}
	p.mu.Unlock()
	if b != nil {
		clear(b[:cap(b)])
		return b[:size]
	}
	capacity := 1 << c
	raw := make([]byte, capacity+readPoolAlign)
	off := 0
	if r := uintptr(unsafe.Pointer(unsafe.SliceData(raw))) % readPoolAlign; r != 0 {
		off = readPoolAlign - int(r)
	}
	return raw[off : off+size : off+capacity]
}

// Reallocate returns a buffer of size bytes holding b's first bytes; b
// must not be used afterwards.
func (p *readPool) Reallocate(size int, b []byte) []byte {
	if size == len(b) {
		return b
	}
	nb := p.Allocate(size)
	copy(nb, b)
	p.Free(b)
	return nb
}

// Free takes back a buffer Allocate returned; others are left to the
// garbage collector.
func (p *readPool) Free(b []byte) {
	c := cap(b)
	if c < 1<<readPoolMinLog2 || c&(c-1) != 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%readPoolAlign != 0 {
		return
	}
	k := bits.Len(uint(c)) - 1
	if k >= len(p.free) {
		return
	}
	p.mu.Lock()
	p.free[k] = append(p.free[k], b[:0])
	p.mu.Unlock()
}

// unsafePointer reinterprets a slice of an int64-based type (Arrow's
// Timestamp) as []int64 without copying.
func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
