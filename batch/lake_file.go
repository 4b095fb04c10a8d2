package batch

import (
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

const (
	// chunkRows is how many rows are gathered per column before they are
	// handed to parquet-go in one call, which amortises its per-call cost.
	chunkRows = 1024
	// rowGroupRows bounds a row group: large enough for dictionaries and
	// zstd to pay, small enough to bound the memory of an open file.
	rowGroupRows = 1 << 20
	// createdBy is written into every file's footer.
	createdBy = "lambdaflow"
)

// fileWriter writes lake Parquet files, one after another (start, add,
// finish), reusing parquet-go's writer and its buffers from file to file:
// a flush of a backfill writes thousands of small files. Rows are gathered
// (by reference) and handed to parquet-go a column at a time with
// ColumnWriter.WriteRowValues, which skips parquet-go's reflection-based row
// path: lake schemas exist only at run time (hence GenericWriter[any] with
// the schema, parquet-go's writer for schemas not known at compile time).
// Building one column's values at a time keeps the type switch out of the
// inner loop and the buffer small. It is not safe for concurrent use.
type fileWriter struct {
	ls      *lakeSchema
	out     switchWriter
	w       *parquet.GenericWriter[any]
	cols    []*parquet.ColumnWriter
	pending []event.Event // rows gathered, not yet handed over
	offsets []int64
	parts   []int32
	vals    []parquet.Value
	rows    int64       // rows added to the current file
	group   int64       // rows in the current row group
	sum     hash.Hash32 // CRC-32C of the current file's bytes
	// codec compresses the pages; told per file whether the file is small.
	codec *lakeCodec
	// sorter puts a flush's rows of one period in event-time order.
	sorter periodReader
}

// switchWriter lets one parquet-go writer write file after file; n counts
// the current file's bytes.
type switchWriter struct {
	w io.Writer
	n int64
}

func (s *switchWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// castagnoli is the CRC-32C table; the manifest records each file's CRC-32C
// so that readers notice damaged files (the page CRCs parquet-go writes are
// not checked when the lake is read).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rangesKey is the key, in a lake file's footer metadata, of the offset
// ranges the file answers for (the manifest's "ranges", as JSON), so that
// the file says what it holds without the manifest.
const rangesKey = "lambdaflow.ranges"

func newFileWriter(ls *lakeSchema) *fileWriter {
	codec := newLakeCodec()
	fw := newFileWriterCodec(ls, codec)
	fw.codec = codec
	return fw
}

// newFileWriterCodec is newFileWriter compressing every column with codec.
func newFileWriterCodec(ls *lakeSchema, codec compress.Codec) *fileWriter {
	fw := &fileWriter{ls: ls, sum: crc32.New(castagnoli)}
	fw.out.w = io.Discard
	fw.w = parquet.NewGenericWriter[any](&fw.out, ls.schema,
		parquet.CreatedBy(createdBy, "1", ""),
		// The schema leaves the codec to the writer: zstd, small pages raw.
		parquet.Compression(codec),
		// Version 1 data pages are the ones every reader handles (older
		// Spark and Hive readers choke on v2 with delta encodings).
		parquet.DataPageVersion(1),
		parquet.PageBufferSize(1<<20),
		// A dictionary past 1 MiB means the column is not low-cardinality
		// after all; parquet-go falls back to plain for later pages.
		parquet.DictionaryMaxBytes(1<<20),
		// Ids are unique and not in id order: their min and max prune
		// nothing, and comparing every id cost 7% of the writer's time.
		parquet.SkipPageBounds(event.ColID),
	)
	fw.cols = fw.w.ColumnWriters()
	fw.pending = make([]event.Event, 0, chunkRows)
	fw.offsets = make([]int64, 0, chunkRows)
	fw.parts = make([]int32, 0, chunkRows)
	fw.vals = make([]parquet.Value, chunkRows)
	return fw
}

// start begins a file written to dst; ranges go into its footer, and
// their row counts are the file's (they choose how its pages are
// compressed).
func (fw *fileWriter) start(dst io.Writer, ranges []offsetRange) {
	if fw.codec != nil {
		var rows int64
		for _, r := range ranges {
			rows += r.Rows
		}
		fw.codec.small = rows < smallFileRows
	}
	fw.sum.Reset()
	fw.out.w, fw.out.n = io.MultiWriter(dst, fw.sum), 0
	fw.w.Reset(&fw.out)
	fw.cols = fw.w.ColumnWriters()
	fw.rows, fw.group = 0, 0
	meta, _ := json.Marshal(ranges)
	fw.w.SetKeyValueMetadata(rangesKey, string(meta))
}

// bytesOf views a string as bytes without copying; parquet-go copies values
// into its own buffers before WriteRowValues returns.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// add appends one event, read from partition at offset. The event's
// strings and values must stay unchanged until the next drain (at most
// chunkRows adds later, or an explicit drain).
func (fw *fileWriter) add(ev *event.Event, partition int32, offset int64) error {
	fw.pending = append(fw.pending, *ev)
	fw.offsets = append(fw.offsets, offset)
	fw.parts = append(fw.parts, partition)
	fw.rows++
	if len(fw.pending) == chunkRows {
		return fw.drain()
	}
	return nil
}

// drain hands the gathered rows to parquet-go, column by column.
func (fw *fileWriter) drain() error {
	evs := fw.pending
	k := len(evs)
	if k == 0 {
		return nil
	}
	vals := fw.vals[:k]
	n := len(fw.ls.fields)
	for i := range n {
		if err := fw.column(i, evs, vals); err != nil {
			return err
		}
		if err := fw.write(i, vals); err != nil {
			return err
		}
	}
	for j := range evs {
		vals[j] = parquet.ByteArrayValue(bytesOf(evs[j].ID))
	}
	if err := fw.write(n, vals); err != nil {
		return err
	}
	for j := range evs {
		vals[j] = parquet.Int32Value(fw.parts[j])
	}
	if err := fw.write(n+1, vals); err != nil {
		return err
	}
	for j := range evs {
		vals[j] = parquet.Int64Value(fw.offsets[j])
	}
	if err := fw.write(n+2, vals); err != nil {
		return err
	}
	for j := range evs {
		vals[j] = parquet.Int64Value(evs[j].Time)
	}
	if err := fw.write(n+3, vals); err != nil {
		return err
	}
	for j := range evs {
		vals[j] = parquet.Int64Value(evs[j].Ingest)
	}
	if err := fw.write(n+4, vals); err != nil {
		return err
	}
	clear(vals) // drop references to event strings
	clear(fw.pending)
	fw.pending, fw.offsets, fw.parts = fw.pending[:0], fw.offsets[:0], fw.parts[:0]
	fw.group += int64(k)
	if fw.group >= rowGroupRows {
		fw.group = 0
		if err := fw.w.Flush(); err != nil {
			return fmt.Errorf("lake: writing a file: %w", err)
		}
	}
	return nil
}

// column builds the values of field i of evs into vals. There is one loop
// per type, so that the type switch runs once per column, not per value;
// the loops leave out definition levels, which only optional columns need
// (required ones ignore them): Level is not inlined, and calling it for
// every value cost a fifth of the writer's time.
func (fw *fileWriter) column(i int, evs []event.Event, vals []parquet.Value) error {
	nulls := false
	switch fw.ls.fields[i].Type {
	case event.TypeString:
		for j := range evs {
			vs := evs[j].Values
			if i >= len(vs) || !vs[i].Valid {
				nulls, vals[j] = true, parquet.Value{}
				continue
			}
			vals[j] = parquet.ByteArrayValue(bytesOf(vs[i].S))
		}
	case event.TypeLong, event.TypeTimestamp:
		for j := range evs {
			vs := evs[j].Values
			if i >= len(vs) || !vs[i].Valid {
				nulls, vals[j] = true, parquet.Value{}
				continue
			}
			vals[j] = parquet.Int64Value(vs[i].I)
		}
	case event.TypeInt:
		for j := range evs {
			vs := evs[j].Values
			if i >= len(vs) || !vs[i].Valid {
				nulls, vals[j] = true, parquet.Value{}
				continue
			}
			vals[j] = parquet.Int32Value(int32(vs[i].I))
		}
	case event.TypeDouble:
		for j := range evs {
			vs := evs[j].Values
			if i >= len(vs) || !vs[i].Valid {
				nulls, vals[j] = true, parquet.Value{}
				continue
			}
			vals[j] = parquet.DoubleValue(vs[i].F)
		}
	case event.TypeBool:
		for j := range evs {
			vs := evs[j].Values
			if i >= len(vs) || !vs[i].Valid {
				nulls, vals[j] = true, parquet.Value{}
				continue
			}
			vals[j] = parquet.BooleanValue(vs[i].I != 0)
		}
	}
	if !fw.ls.optional[i] {
		if nulls {
			for j := range evs {
				if vs := evs[j].Values; i >= len(vs) || !vs[i].Valid {
					return fmt.Errorf("lake: event %q: required field %q is missing", evs[j].ID, fw.ls.fields[i].Name)
				}
			}
		}
		return nil
	}
	// Optional columns tell nulls from values by definition level.
	for j := range evs {
		if vs := evs[j].Values; i >= len(vs) || !vs[i].Valid {
			vals[j] = parquet.Value{}.Level(0, 0, i)
		} else {
			vals[j] = vals[j].Level(0, 1, i)
		}
	}
	return nil
}

func (fw *fileWriter) write(col int, vals []parquet.Value) error {
	if _, err := fw.cols[col].WriteRowValues(vals); err != nil {
		return fmt.Errorf("lake: writing a file: %w", err)
	}
	return nil
}

// finish writes the file's footer and returns the file's CRC-32C; the
// destination has all of its bytes then.
func (fw *fileWriter) finish() (uint32, error) {
	if err := fw.drain(); err != nil {
		return 0, err
	}
	if err := fw.w.Close(); err != nil {
		return 0, fmt.Errorf("lake: writing a file: %w", err)
	}
	fw.out.w = io.Discard
	return fw.sum.Sum32(), nil
}

// abandon drops what was gathered for the current file.
func (fw *fileWriter) abandon() {
	clear(fw.pending)
	fw.pending, fw.offsets, fw.parts = fw.pending[:0], fw.offsets[:0], fw.parts[:0]
	fw.out.w = io.Discard
}
