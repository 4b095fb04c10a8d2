package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// ErrCorruptFile is returned (wrapped, naming the file) for a lake file
// that cannot be read or does not hold what the manifest says it holds.
// A job that meets one fails rather than compute a wrong result.
var ErrCorruptFile = errors.New("lake: corrupt file")

// readBatchRows is how many rows one callback of scanFile carries. Small
// enough that a batch's events (about 200 bytes a row for five fields)
// stay in cache while they are filled column by column and then read by
// the plan: 64Ki-row batches read 15-20% slower (BenchmarkRecompute);
// 4Ki to 16Ki rows measured the same.
const readBatchRows = 16 << 10

// scanBatch is a batch of rows read from one lake file. Its slices are
// reused by the next batch; strings stay valid (they are copies, never
// pointers into the reader's recycled buffers).
type scanBatch struct {
	Events  []event.Event
	Parts   []int32
	Offsets []int64
}

// scanOptions select what scanFile decodes.
type scanOptions struct {
	// Fields marks the schema fields to decode (nil: all); the others are
	// left null, which saves decoding columns a plan does not read.
	Fields []bool
	// IDs decodes _id (first and last use it to break ties).
	IDs bool
	// Ingest decodes _ingest_time (always when Fields is nil); otherwise
	// Event.Ingest is left zero, which saves decoding a column no plan
	// reads.
	Ingest bool
}

// scanFile reads the lake file fe (of the topic lake tl) with Arrow
// columnar reads and calls fn for each batch of rows. Columns are matched
// to the topic's current schema by name: a field the file lacks (added to
// the topic later) reads as null; integer-like types read as each other.
// The file must hold exactly fe.Rows rows of fe's partition and offset
// range; anything else is ErrCorruptFile.
func (tl *topicLake) scanFile(ctx context.Context, fe FileEntry, opts scanOptions, fn func(*scanBatch) error) error {
	path := tl.filePath(fe.Path)
	err := scanParquet(ctx, path, tl.topic.Schema, fe, opts, fn)
	if errors.Is(err, fs.ErrNotExist) {
		// Replaced by compaction after our manifest was read: the file
		// waits out its grace period under a hidden name.
		err = scanParquet(ctx, replacedName(path), tl.topic.Schema, fe, opts, fn)
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w %s: the manifest lists it but it is gone", ErrCorruptFile, path)
		}
	}
	return err
}

func (tl *topicLake) filePath(rel string) string {
	return tl.dir + string(os.PathSeparator) + rel
}

func scanParquet(ctx context.Context, path string, schema event.Schema, fe FileEntry, opts scanOptions, fn func(*scanBatch) error) (err error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrCorruptFile, path, fmt.Sprintf(format, args...))
	}
	// Malformed pages can panic deep in the decoder; a panic here means
	// a bad file, never a reason to bring the process down.
	defer func() {
		if r := recover(); r != nil {
			err = corrupt("%v", r)
		}
	}()
	// The whole-file checksum first: a damaged page could otherwise
	// decode to plausible, wrong values (zstd frames carry no checksum
	// here, and Arrow does not check page CRCs). Reading the file once
	// more costs little next to decoding it, and warms the page cache.
	if fe.CRC32C != 0 {
		sum, err := fileSum(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return corrupt("%v", err)
		}
		if sum != fe.CRC32C {
			return corrupt("checksum %08x, the manifest says %08x", sum, fe.CRC32C)
		}
	}
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return corrupt("%v", err)
	}
	defer pf.Close()
	if got := pf.NumRows(); got != fe.Rows {
		return corrupt("holds %d rows, the manifest says %d", got, fe.Rows)
	}
	fileSchema := pf.MetaData().Schema
	colIndex := func(name string) int { return fileSchema.ColumnIndexByName(name) }
	props := pqarrow.ArrowReadProperties{BatchSize: readBatchRows}
	for _, f := range schema {
		// Strings as dictionaries: indices into a small dictionary instead
		// of a copy of every value, which is most of the cost of a read.
		if c := colIndex(f.Name); c >= 0 && f.Type == event.TypeString {
			props.SetReadDict(c, true)
		}
	}
	fr, err := pqarrow.NewFileReader(pf, props, new(readPool))
	if err != nil {
		return corrupt("%v", err)
	}
	// cols lists the file columns to read; target says where each lands:
	// 0..n-1 schema fields, -1.. the metadata columns.
	const (
		tID = -1 - iota
		tPart
		tOffset
		tEventTime
		tIngest
	)
	var cols, target []int
	for i, f := range schema {
		if opts.Fields != nil && !opts.Fields[i] {
			continue
		}
		if c := colIndex(f.Name); c >= 0 {
			cols = append(cols, c)
			target = append(target, i)
		}
	}
	for _, m := range []struct {
		name string
		t    int
		want bool
	}{{ColID, tID, opts.IDs || opts.Fields == nil}, {ColPartition, tPart, true}, {ColOffset, tOffset, true},
		{ColEventTime, tEventTime, true}, {ColIngestTime, tIngest, opts.Ingest || opts.Fields == nil}} {
		c := colIndex(m.name)
		// A file without _ingest_time is bad also for a reader that skips it.
		if c < 0 && (m.want || m.t == tIngest) {
			return corrupt("no column %s", m.name)
		}
		if !m.want {
			continue
		}
		cols = append(cols, c)
		target = append(target, m.t)
	}
	width := len(schema)
	b := &scanBatch{}
	dicts := make([]dictWords, width)
	var values []event.Value
	var rows int64
	// laid is how many events of b point into values; events keep their
	// Values slices from batch to batch.
	laid := 0
	readGroup := func(rg int) error {
		// A streaming reader decodes readBatchRows rows at a time into
		// buffers of that size; reading the whole row group as a table
		// first allocated all of it (and more while its buffers grew).
		rr, err := fr.GetRecordReader(ctx, cols, []int{rg})
		if err != nil {
			return corrupt("row group %d: %v", rg, err)
		}
		defer rr.Release()
		for rr.Next() {
			rec := rr.RecordBatch()
			n := int(rec.NumRows())
			// Every batch of a file writes the same fields in every row
			// (nulls included), and fields the file lacks are never
			// written, so values need no clearing between batches.
			if cap(values) < n*width {
				values = make([]event.Value, n*width)
				laid = 0
			}
			values = values[:n*width]
			if cap(b.Events) < n {
				laid = 0
			}
			b.Events = resize(b.Events, n)
			b.Parts = resize(b.Parts, n)
			b.Offsets = resize(b.Offsets, n)
			for i := laid; i < n; i++ {
				b.Events[i] = event.Event{Values: values[i*width : (i+1)*width : (i+1)*width]}
			}
			laid = max(laid, n)
			for ci, col := range rec.Columns() {
				t := target[ci]
				if t >= 0 {
					if err := fillField(b.Events, t, schema[t].Type, col, &dicts[t]); err != nil {
						return corrupt("column %s: %v", schema[t].Name, err)
					}
					continue
				}
				if err := fillMeta(b, t, col); err != nil {
					return corrupt("column %s: %v", rec.ColumnName(ci), err)
				}
			}
			for i := range n {
				if t := b.Events[i].Time; t < fe.Hour || t >= fe.Hour+hourMicros {
					return corrupt("row with event time %d is outside the file's hour", t)
				}
				if b.Parts[i] != int32(fe.Partition) || b.Offsets[i] < fe.First || b.Offsets[i] > fe.Last {
					return corrupt("row of partition %d offset %d is outside the file's range p%d [%d, %d]",
						b.Parts[i], b.Offsets[i], fe.Partition, fe.First, fe.Last)
				}
			}
			rows += int64(n)
			if err := fn(b); err != nil {
				return err
			}
		}
		if err := rr.Err(); err != nil {
			return corrupt("row group %d: %v", rg, err)
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
	if rows != fe.Rows {
		return corrupt("read %d rows, the manifest says %d", rows, fe.Rows)
	}
	return nil
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
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

func integerLike(t event.FieldType) bool {
	return t == event.TypeLong || t == event.TypeInt || t == event.TypeBool || t == event.TypeTimestamp
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
	case -1: // _id
		a, ok := col.(*array.String)
		if !ok {
			return fmt.Errorf("type %s, want string", col.DataType())
		}
		data, offs := ownStrings(a)
		for i := range b.Events {
			b.Events[i].ID = data[offs[i]:offs[i+1]]
		}
	case -2: // _partition
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
		case -3:
			copy(b.Offsets, vs)
		case -4:
			for i := range b.Events {
				b.Events[i].Time = vs[i]
			}
		case -5:
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
