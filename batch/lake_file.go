package batch

import (
	"bufio"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strconv"
	"unsafe"

	"github.com/parquet-go/parquet-go"

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

// fileWriter writes lake Parquet files, one after another (observe, start,
// add, finish), reusing parquet-go's writers and their buffers from file to
// file: a flush of a backfill writes thousands of small files. Rows are
// gathered (by reference) and handed to parquet-go a column at a time with
// ColumnWriter.WriteRowValues, which skips parquet-go's reflection-based row
// path: lake schemas exist only at run time (hence GenericWriter[any] with
// the schema, parquet-go's writer for schemas not known at compile time).
// Building one column's values at a time keeps the type switch out of the
// inner loop and the buffer small. Each file's column encodings are chosen
// from its rows when the caller showed them first (observe, then start);
// there is one parquet-go writer per encoding plan in use. It is not safe
// for concurrent use.
type fileWriter struct {
	ls      *lakeSchema
	out     switchWriter
	w       *parquet.GenericWriter[any]
	cols    []*parquet.ColumnWriter
	writers map[string]*parquet.GenericWriter[any] // by encoding plan
	survey  *encodingSurvey
	pending []event.Event // rows gathered, not yet handed over
	offsets []int64
	parts   []int32
	vals    []parquet.Value
	rows    int64       // rows added to the current file
	group   int64       // rows in the current row group
	sum     hash.Hash32 // CRC-32C of the current file's bytes
	tail    []byte      // the page index and footer parquet-go wrote (reused)
	footer  []byte      // the footer kept (reused)
	// codec compresses the pages of every plan's writer; start tells it
	// whether the file is small.
	codec *lakeCodec
	// delta packs every plan's delta-packed columns (lake_delta.go).
	delta *deltaPacking
	// seeds start the current file's numeric dictionaries
	// (lake_dict_seed.go).
	seeds dictSeeds
	// sorter puts a flush's rows of one period in event-time order.
	sorter periodReader
}

// maxPlans bounds the parquet-go writers a fileWriter keeps (one per
// encoding plan and page buffer): a topic's files mostly share a plan or
// two.
const maxPlans = 4

// A parquet-go writer flushes a column's page when its buffer reaches the
// page buffer's size, and makes each column's buffer that large up front
// (a dictionary column's indexes for a page of 4-byte values). Files are
// written one page a column chunk up to pageBuffer bytes; small files
// (under smallFileRows rows, a sparse topic's hourly files) get writers of
// smallPageBuffer: their plans vary from file to file, and every writer
// made for a plan allocated and cleared ~1 MiB a column for a file of a
// few kilobytes (a backfill's peak memory: ~950 MiB with every role, ~700
// without this). Their pages are the same: a small file's rows reach
// parquet-go in one call a column (chunkRows), and a page is cut only
// between calls.
const (
	pageBuffer      = 1 << 20
	smallPageBuffer = 64 << 10
)

// switchWriter lets one parquet-go writer write file after file, buffered;
// n counts the current file's bytes. While tail is set (the footer being
// written), bytes are kept in it instead, to be rewritten.
type switchWriter struct {
	bw   *bufio.Writer
	n    int64
	tail *[]byte
}

func (s *switchWriter) Write(p []byte) (int, error) {
	if s.tail != nil {
		*s.tail = append(*s.tail, p...)
		return len(p), nil
	}
	n, err := s.bw.Write(p)
	s.n += int64(n)
	return n, err
}

// castagnoli is the CRC-32C table; the manifest records each file's CRC-32C
// so that readers notice damaged files (the page CRCs parquet-go writes
// cover neither page headers nor the footer).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rangesKey is the key, in a lake file's footer metadata, of the offset
// ranges the file answers for (the manifest's "ranges"), so that the file
// says what it holds without the manifest: a JSON array of
// [partition, first, last, rows] arrays (appendRanges).
const rangesKey = "lambdaflow.ranges"

// appendRanges appends the footer form of ranges to b: a JSON array of
// [partition, first, last, rows] arrays. Earlier files have an array of
// the manifest's objects, whose keys took an eighth of a daily file's
// footer (~270 of ~2,100 bytes with eight partitions).
func appendRanges(b []byte, ranges []offsetRange) []byte {
	b = append(b, '[')
	for i, r := range ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(r.Partition), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, r.First, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, r.Last, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, r.Rows, 10)
		b = append(b, ']')
	}
	return append(b, ']')
}

// newFileWriter makes a file writer of the lake schema ls; best lends it
// zstd's best level (nil: an encoder of its own).
func newFileWriter(ls *lakeSchema, best *bestEncoders) *fileWriter {
	fw := &fileWriter{ls: ls, sum: crc32.New(castagnoli), survey: newEncodingSurvey(ls),
		writers: map[string]*parquet.GenericWriter[any]{}, codec: newLakeCodec(best)}
	fw.delta = &deltaPacking{codec: fw.codec, trial: &fw.survey.trial}
	fw.out.bw = bufio.NewWriterSize(io.Discard, 32<<10)
	fw.pending = make([]event.Event, 0, chunkRows)
	fw.offsets = make([]int64, 0, chunkRows)
	fw.parts = make([]int32, 0, chunkRows)
	fw.vals = make([]parquet.Value, chunkRows)
	return fw
}

// writerFor returns the parquet-go writer of files encoded by plan, with
// pages buffered up to pageBytes.
func (fw *fileWriter) writerFor(plan encodingPlan, pageBytes int) (*parquet.GenericWriter[any], error) {
	key := plan.key() + "/" + strconv.Itoa(pageBytes)
	if w, ok := fw.writers[key]; ok {
		return w, nil
	}
	schema, err := fw.ls.schemaFor(plan, fw.delta, &fw.seeds)
	if err != nil {
		return nil, err
	}
	if len(fw.writers) >= maxPlans {
		for k := range fw.writers {
			delete(fw.writers, k) // any one: plans rarely alternate
			break
		}
	}
	w := parquet.NewGenericWriter[any](&fw.out, schema,
		parquet.CreatedBy(createdBy, "1", ""),
		// The schema leaves the codec to the writer: zstd, each page as
		// its size and the file's call for (lake_codec.go).
		parquet.Compression(fw.codec),
		// Version 1 data pages are the ones every reader handles (older
		// Spark and Hive readers choke on v2 with delta encodings).
		parquet.DataPageVersion(1),
		parquet.PageBufferSize(pageBytes),
		// The switchWriter buffers, so that the footer's bytes can be told
		// from the data's.
		parquet.WriteBufferSize(0),
		// A dictionary past 1 MiB means the column is not low-cardinality
		// after all; parquet-go falls back to plain for later pages.
		parquet.DictionaryMaxBytes(1<<20),
		// Ids are unique and not in id order: their min and max prune
		// nothing, and comparing every id cost 7% of the writer's time.
		parquet.SkipPageBounds(event.ColID),
		// The column chunk's statistics are what readers use (a lake
		// file's chunks are mostly one page); the same minimum and
		// maximum again in every page header cost ~0.6 B/row in daily
		// files of ~900 rows.
		parquet.DataPageStatistics(false),
	)
	fw.writers[key] = w
	return w, nil
}

// observe adds rows to the survey of the next file: a file started after
// the survey saw all its rows, in the order they are written, gets the
// encodings that suit them.
func (fw *fileWriter) observe(evs []event.Event) { fw.survey.observe(evs) }

// start begins a file written to dst; ranges go into its footer. Its
// encodings are those the survey of its rows chose (observe), else every
// column's fixed one.
func (fw *fileWriter) start(dst io.Writer, ranges []offsetRange) error {
	// The ranges' rows are the file's: they choose how its pages are
	// compressed.
	var rows int64
	for _, r := range ranges {
		rows += r.Rows
	}
	fw.codec.startFile(rows)
	plan := fw.survey.plan()
	fw.survey.seedsFor(plan, &fw.seeds)
	fw.survey.reset()
	pageBytes := pageBuffer
	if rows < smallFileRows {
		pageBytes = smallPageBuffer
	}
	w, err := fw.writerFor(plan, pageBytes)
	if err != nil {
		return err
	}
	fw.sum.Reset()
	fw.out.bw.Reset(io.MultiWriter(dst, fw.sum))
	fw.out.n, fw.out.tail = 0, nil
	fw.w = w
	fw.w.Reset(&fw.out)
	fw.cols = fw.w.ColumnWriters()
	fw.rows, fw.group = 0, 0
	fw.w.SetKeyValueMetadata(rangesKey, string(appendRanges(nil, ranges)))
	return nil
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
	if err := fw.w.Flush(); err != nil {
		return 0, fmt.Errorf("lake: writing a file: %w", err)
	}
	// What parquet-go writes from here on is the page index and the
	// footer: kept, to be written without the page index.
	tail := fw.tail[:0]
	fw.out.tail = &tail
	err := fw.w.Close()
	fw.out.tail = nil
	if err == nil {
		fw.footer, err = trimFooter(fw.footer[:0], tail, fw.out.n, fw.ls.stats)
	}
	if err == nil {
		_, err = fw.out.Write(fw.footer)
	}
	if err == nil {
		err = fw.out.bw.Flush()
	}
	fw.tail = tail[:0]
	fw.out.bw.Reset(io.Discard)
	if err != nil {
		return 0, fmt.Errorf("lake: writing a file: %w", err)
	}
	return fw.sum.Sum32(), nil
}

// abandon drops what was gathered for the current file.
func (fw *fileWriter) abandon() {
	clear(fw.pending)
	fw.pending, fw.offsets, fw.parts = fw.pending[:0], fw.offsets[:0], fw.parts[:0]
	fw.out.bw.Reset(io.Discard)
	fw.out.tail = nil
	fw.survey.reset()
}
