package batch

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"runtime/debug"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
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
	// BatchRows is the most rows a batch holds; zero means readBatchRows.
	BatchRows int
	// Fields marks the schema fields to decode (nil: all); the others are
	// left null, which saves decoding columns a plan does not read.
	Fields []bool
	// IDs decodes _id (first and last use it to break ties).
	IDs bool
	// Ingest decodes _ingest_time (always when Fields is nil); otherwise
	// Event.Ingest is left zero, which saves decoding a column no plan
	// reads.
	Ingest bool
	// Positions decodes every row's partition and offset (always for
	// scanFile, which hands them on). Without, a columnar scan checks them
	// by the column chunks' statistics where the file has them.
	Positions bool
}

// scanFile reads the lake file fe (of the topic lake tl) column by column
// and calls fn for each batch of rows. Columns are matched
// to the topic's current schema by name: a field the file lacks (added to
// the topic later) reads as null; integer-like types read as each other.
// The file must hold exactly fe.Rows rows, each of one of fe's ranges and
// of its period; anything else is ErrCorruptFile.
func (tl *topicLake) scanFile(ctx context.Context, fe fileEntry, opts scanOptions, fn func(*scanBatch) error) error {
	return tl.prefetchFiles(ctx, []fileEntry{fe}).scanFile(ctx, 0, opts, fn)
}

// openFile opens the lake file fe for reading, after checking its
// CRC-32C against the manifest's, and returns it with its name for
// messages. A file compaction replaced after the caller's manifest was read
// is read from where it waits out its grace period. This is the way in for
// any reader of lake files (parquet.OpenFile takes the object: it is an
// io.ReaderAt with a size). A file fetched from object storage whole is
// added to tl's cache.
func (tl *topicLake) openFile(ctx context.Context, fe fileEntry) (lakestore.Object, string, error) {
	key := tl.key(fe.Path)
	if b, ok := tl.cache.get(key, fe); ok {
		// Checked when it was fetched, and no one writes to it.
		return &memFile{b: b}, tl.st.String() + key, nil
	}
	o, err := tl.st.Open(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		key = replacedName(key)
		o, err = tl.st.Open(ctx, key)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("%w %s%s: the manifest lists it but it is gone", ErrCorruptFile, tl.st, tl.key(fe.Path))
		}
	}
	name := tl.st.String() + key
	if err != nil {
		return nil, "", fmt.Errorf("%w %s: %w", ErrCorruptFile, name, err)
	}
	if h, ok := o.(heldObject); ok {
		if b, ok := h.Held(); ok {
			// Fetched whole already: checked and decoded in place.
			m := &memFile{b: b, obj: o}
			if err := checkBytes(b, name, fe); err != nil {
				m.Close()
				return nil, "", err
			}
			tl.cache.put(tl.key(fe.Path), fe, b)
			return m, name, nil
		}
	}
	if o.Size() <= memFileBytes {
		// Read once: the checksum and the decoding share the bytes.
		m, err := readChecked(o, name, fe)
		o.Close()
		if err != nil {
			return nil, "", err
		}
		return m, name, nil
	}
	if m, err := mapChecked(o, name, fe); m != nil || err != nil {
		if err != nil {
			return nil, "", err
		}
		return m, name, nil
	}
	if err := checkSum(o, name, fe); err != nil {
		o.Close()
		return nil, "", err
	}
	return o, name, nil
}

// mapChecked maps o into memory when it can be (nil, nil when not) and
// checks its size and CRC-32C against the manifest entry fe, as checkSum
// does: the checksum and the decoding then read the page cache, with no copy
// of their own. On error o is closed; otherwise the memFile owns it.
func mapChecked(o lakestore.Object, name string, fe fileEntry) (*memFile, error) {
	mo, ok := o.(mappable)
	if !ok {
		return nil, nil
	}
	b, err := mo.Map()
	if err != nil {
		return nil, nil // read it instead
	}
	m := &memFile{b: b, obj: o}
	if err := checkBytes(m.b, name, fe); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// mappable is a lake object that can be mapped into memory (a local file),
// valid until it is closed.
type mappable interface {
	Map() ([]byte, error)
}

// heldObject is a lake object its store read into memory whole (an object
// fetched from object storage): reading it into a buffer of its own, as
// files in a directory are, would copy every byte once more.
type heldObject interface {
	Held() ([]byte, bool)
}

// memFileBytes is the largest lake file openFile reads into memory whole;
// a larger one is read twice, once for its checksum and once for its
// pages. Reading a file into memory saves the second pass over its bytes
// (system calls locally, a second request to object storage), which is
// most of the cost of opening a small file: a lake of hourly or daily
// files of a sparse topic is recomputed 1.2–1.4× faster
// (BenchmarkRecomputeYear). For a large file the second pass is a few
// per cent of decoding it, less than a fresh buffer of its size costs.
const memFileBytes = 4 << 20

// fileBufs are buffers of files read whole, reused from file to file.
var fileBufs = sync.Pool{New: func() any { return new([]byte) }}

// memFile is a lake file read into memory (buf, given back by Close) or
// mapped (obj, closed by Close).
type memFile struct {
	buf *[]byte
	b   []byte
	obj lakestore.Object
}

func (m *memFile) Size() int64 { return int64(len(m.b)) }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("lake file: negative offset")
	}
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) Close() error {
	if m.buf != nil {
		fileBufs.Put(m.buf)
	}
	var err error
	if m.obj != nil {
		err = m.obj.Close()
	}
	m.buf, m.b, m.obj = nil, nil, nil
	return err
}

// readChecked reads o whole and checks its size and CRC-32C against the
// manifest entry fe, as checkSum does.
func readChecked(o lakestore.Object, name string, fe fileEntry) (*memFile, error) {
	size := o.Size()
	if err := wrongSize(name, fe, size); err != nil {
		return nil, err
	}
	buf := fileBufs.Get().(*[]byte)
	if int64(cap(*buf)) < size {
		*buf = make([]byte, size)
	}
	m := &memFile{buf: buf, b: (*buf)[:size]}
	if _, err := o.ReadAt(m.b, 0); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		m.Close()
		return nil, fmt.Errorf("%w %s: %w", ErrCorruptFile, name, err)
	}
	if err := checkBytes(m.b, name, fe); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// checkBytes compares the CRC-32C of a file's bytes b with the manifest
// entry fe's. b may be mapped: a fault reading it (a read error of the
// disk) is ErrCorruptFile too.
func checkBytes(b []byte, name string, fe fileEntry) (err error) {
	if fe.CRC32C == 0 {
		return nil
	}
	if err := wrongSize(name, fe, int64(len(b))); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w %s: %v", ErrCorruptFile, name, r)
		}
	}()
	return wrongSum(name, fe, crc32.Checksum(b, castagnoli))
}

// checkSum compares the whole file's CRC-32C with the manifest's before
// anything is decoded: a damaged page could otherwise decode to plausible,
// wrong values (zstd frames carry no checksum here, and page CRCs cover
// neither page headers nor the footer; the page decoder checks them only
// for files without a checksum in the manifest). It is the pass over a file too large to read into memory
// (readChecked does the same for the others).
func checkSum(o lakestore.Object, name string, fe fileEntry) error {
	if fe.CRC32C == 0 {
		return nil
	}
	if err := wrongSize(name, fe, o.Size()); err != nil {
		return err
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(o, 0, o.Size())); err != nil {
		return fmt.Errorf("%w %s: %w", ErrCorruptFile, name, err)
	}
	return wrongSum(name, fe, h.Sum32())
}

// wrongSize is the error of the file name of size bytes when the manifest
// entry fe says otherwise; nil when they agree, or fe has no checksum (a
// file from before the manifest had them, whose size it does not vouch
// for either).
func wrongSize(name string, fe fileEntry, size int64) error {
	if fe.CRC32C == 0 || fe.Bytes <= 0 || size == fe.Bytes {
		return nil
	}
	return fmt.Errorf("%w %s: %d bytes, the manifest says %d", ErrCorruptFile, name, size, fe.Bytes)
}

// wrongSum is the error of the file name whose bytes have the CRC-32C sum
// when the manifest entry fe says otherwise; nil when they agree, or fe
// has no checksum.
func wrongSum(name string, fe fileEntry, sum uint32) error {
	if fe.CRC32C == 0 || sum == fe.CRC32C {
		return nil
	}
	return fmt.Errorf("%w %s: checksum %08x, the manifest says %08x", ErrCorruptFile, name, sum, fe.CRC32C)
}

// Targets of the metadata columns in a scan; schema fields are 0..n-1.
const (
	tID = -1 - iota
	tPart
	tOffset
	tEventTime
	tIngest
)

// fileScan is what every lake reader shares: the checks of a file against
// its manifest entry, the choice of columns and the batches of rows the
// columns are read into.
type fileScan struct {
	path   string
	schema event.Schema
	fe     fileEntry
	// cols lists the file columns to read; target says where each lands:
	// a schema field (≥ 0) or a metadata column (tID…tIngest).
	cols, target []int
	b            scanBatch
	values       []event.Value
	// laid is how many events of b point into values; events keep their
	// Values slices from batch to batch.
	laid int
	rows int64
}

func (s *fileScan) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w %s: %s", ErrCorruptFile, s.path, fmt.Sprintf(format, args...))
}

// recoverCorrupt, deferred by a reader, turns a panic into ErrCorruptFile
// in *err: malformed pages can panic deep in a decoder, and that means a bad
// file, never a reason to bring the process down.
func (s *fileScan) recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = s.corrupt("%v", r)
	}
}

// selectColumns picks the file columns opts asks for; colIndex finds a
// column by name (-1: the file has none).
func (s *fileScan) selectColumns(opts scanOptions, colIndex func(name string) int) error {
	for i, f := range s.schema {
		if opts.Fields != nil && !opts.Fields[i] {
			continue
		}
		if c := colIndex(f.Name); c >= 0 {
			s.cols = append(s.cols, c)
			s.target = append(s.target, i)
		}
	}
	for _, m := range []struct {
		name string
		t    int
		want bool
	}{{event.ColID, tID, opts.IDs || opts.Fields == nil}, {event.ColPartition, tPart, true}, {event.ColOffset, tOffset, true},
		{event.ColEventTime, tEventTime, true}, {event.ColIngestTime, tIngest, opts.Ingest || opts.Fields == nil}} {
		c := colIndex(m.name)
		// A file without _ingest_time is bad also for a reader that skips it.
		if c < 0 && (m.want || m.t == tIngest) {
			return s.corrupt("no column %s", m.name)
		}
		if !m.want {
			continue
		}
		s.cols = append(s.cols, c)
		s.target = append(s.target, m.t)
	}
	return nil
}

// batch returns the scan's batch, sized for n rows.
func (s *fileScan) batch(n int) *scanBatch {
	width := len(s.schema)
	b := &s.b
	// Every batch of a file writes the same fields in every row (nulls
	// included), and fields the file lacks are never written, so values
	// need no clearing between batches.
	if cap(s.values) < n*width {
		s.values = make([]event.Value, n*width)
		s.laid = 0
	}
	s.values = s.values[:n*width]
	if cap(b.Events) < n {
		s.laid = 0
	}
	b.Events = resize(b.Events, n)
	b.Parts = resize(b.Parts, n)
	b.Offsets = resize(b.Offsets, n)
	for i := s.laid; i < n; i++ {
		b.Events[i] = event.Event{Values: s.values[i*width : (i+1)*width : (i+1)*width]}
	}
	s.laid = max(s.laid, n)
	return b
}

// deliver checks that every row of the filled batch belongs in the file,
// then hands the batch to fn.
func (s *fileScan) deliver(fn func(*scanBatch) error) error {
	b, fe := &s.b, &s.fe
	for i := range b.Events {
		if t := b.Events[i].Time; t < fe.Start || t >= fe.End {
			return s.corrupt("row with event time %d is outside the file's period", t)
		}
		if !fe.holds(b.Parts[i], b.Offsets[i]) {
			return s.corrupt("row of partition %d offset %d is outside the file's ranges", b.Parts[i], b.Offsets[i])
		}
	}
	s.rows += int64(len(b.Events))
	return fn(b)
}

// done checks the rows read against the manifest.
func (s *fileScan) done() error {
	if s.rows != s.fe.Rows {
		return s.corrupt("read %d rows, the manifest says %d", s.rows, s.fe.Rows)
	}
	return nil
}

// scanParquet reads a lake file, the object o named name in messages,
// with the lake's columnar reader (lakeFile, columnReader: parquet-go's
// pages read into typed vectors) and hands each batch on as events.
// Columns a scan does not ask for are not read and stay null. The caller
// owns o.
func scanParquet(ctx context.Context, o lakestore.Object, name string, schema event.Schema, fe fileEntry, opts scanOptions, fn func(*scanBatch) error) error {
	opts.Positions = true
	lf, err := openLakeObject(o, name, schema, fe, opts)
	if err != nil {
		return err
	}
	var r columnReader
	for rg := range lf.rowGroups() {
		err := r.scanRowGroup(ctx, lf, rg, func(cb *colBatch) error {
			b := lf.batch(cb.Len)
			for i := range b.Events {
				e := &b.Events[i]
				e.Time = cb.Time[i]
				if cb.ID != nil {
					e.ID = cb.ID[i]
				}
				if cb.Ingest != nil {
					e.Ingest = cb.Ingest[i]
				}
			}
			copy(b.Parts, cb.Parts)
			copy(b.Offsets, cb.Offsets)
			for _, t := range lf.target {
				if t < 0 {
					continue
				}
				col, typ := &cb.Fields[t], schema[t].Type
				for i := range b.Events {
					b.Events[i].Values[t] = col.Value(i, typ)
				}
			}
			return lf.deliver(fn)
		})
		if err != nil {
			return err
		}
	}
	return lf.done()
}

// colName names the column of target t.
func colName(schema event.Schema, t int) string {
	switch t {
	case tID:
		return event.ColID
	case tPart:
		return event.ColPartition
	case tOffset:
		return event.ColOffset
	case tEventTime:
		return event.ColEventTime
	case tIngest:
		return event.ColIngestTime
	}
	return schema[t].Name
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func integerLike(t event.FieldType) bool {
	return t == event.TypeLong || t == event.TypeInt || t == event.TypeBool || t == event.TypeTimestamp
}

// pageCursor walks one column chunk's pages, holding the typed values of
// the current page (one of i64, i32, f64, bits, idx into words, or data with
// offs).
type pageCursor struct {
	pages parquet.Pages
	page  parquet.Page
	defs  []byte // definition levels of an optional column's page; nil if required
	row   int    // next row of the page
	val   int    // next value of the page's data (nulls have none)
	rows  int    // rows in the page

	i64  []int64
	i32  []int32
	f64  []float64
	bits []byte
	data string   // a byte array page's bytes, copied once
	offs []uint32 // and offsets
	idx  []int32  // a dictionary page's indices
	dict parquet.Dictionary
	// words are the current dictionary's values, as strings of their own.
	words  []string
	bufI32 []int32
	bufI64 []int64
	bufF64 []float64
	// ownI, ownF and ownIdx are the buffers fillColumn copies values (and
	// dictionary indices) into when a batch's rows span pages; a batch
	// within one page borrows the page's instead (valid until the cursor
	// moves on).
	ownI   []int64
	ownF   []float64
	ownIdx []int32
	// borrow allows fillValues to borrow (the batch's rows are all in
	// this page); borrowed says it did.
	borrow, borrowed bool
	// own says the chunk's pages are read by dec, the lake's page decoder,
	// rather than by pages (parquet-go's); pv is dec's current page.
	own bool
	dec *pageDecoder
	pv  pageValues
}

// reset starts on another column chunk, read by parquet-go's pages,
// keeping the buffers.
func (c *pageCursor) reset(pages parquet.Pages) {
	c.close()
	*c = pageCursor{pages: pages, bufI32: c.bufI32, bufI64: c.bufI64, bufF64: c.bufF64, ownI: c.ownI, ownF: c.ownF, ownIdx: c.ownIdx, dec: c.dec}
}

// resetOwn starts on another column chunk, read by the lake's page
// decoder from its bytes (at offset base of the file), keeping the
// buffers.
func (c *pageCursor) resetOwn(chunk []byte, base int64, md *chunkMeta, maxDef int) {
	c.reset(nil)
	c.own = true
	if c.dec == nil {
		c.dec = pageDecoders.Get().(*pageDecoder)
	}
	c.dec.reset(chunk, base, md.typ, md.codec, maxDef)
}

// nextOwn loads the next page of the lake's page decoder.
func (c *pageCursor) nextOwn() error {
	p := &c.pv
	if err := c.dec.next(p); err != nil {
		if err == io.EOF {
			return errors.New("fewer values than rows")
		}
		return err
	}
	c.rows, c.row, c.val = p.rows, 0, 0
	c.defs = p.defs
	c.i64, c.i32, c.f64, c.bits, c.idx, c.data, c.offs = p.i64, p.i32, p.f64, p.bits, p.idx, p.data, p.offs
	if p.idx != nil {
		c.words = p.words
	}
	return nil
}

// close gives the current page back and closes the chunk's pages; the
// page decoder goes back to pageDecoders (the values it handed out are
// not read after the chunk's last batch).
func (c *pageCursor) close() {
	if c.dec != nil {
		c.dec.reset(nil, 0, 0, 0, 0)
		pageDecoders.Put(c.dec)
		c.dec = nil
	}
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	if c.pages != nil {
		if cl, ok := c.pages.(io.Closer); ok {
			cl.Close()
		}
		c.pages = nil
	}
}

// next loads the next page.
func (c *pageCursor) next() error {
	if c.own {
		return c.nextOwn()
	}
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	p, err := c.pages.ReadPage()
	if err != nil {
		if err == io.EOF {
			return errors.New("fewer values than rows")
		}
		return err
	}
	c.page = p
	c.rows = int(p.NumRows())
	c.row, c.val = 0, 0
	c.defs = p.DefinitionLevels()
	if len(c.defs) == 0 {
		c.defs = nil
	}
	d := p.Data()
	c.i64, c.i32, c.f64, c.bits, c.idx, c.data, c.offs = nil, nil, nil, nil, nil, "", nil
	if dict := p.Dictionary(); dict != nil {
		idx := d.Int32()
		dd := dict.Page().Data()
		if dd.Kind() == encoding.ByteArray {
			c.idx = idx
			if dict != c.dict {
				c.dict = dict
				data, offs := dd.ByteArray()
				all := string(data)
				// A new slice for each dictionary: consumers recognise a
				// dictionary by its words' array (plan.Grouper).
				c.words = make([]string, 0, max(len(offs)-1, 0))
				for i := 0; i+1 < len(offs); i++ {
					c.words = append(c.words, all[offs[i]:offs[i+1]])
				}
			}
			return nil
		}
		// Other dictionaries (the partition column's, and any numeric
		// column a writer chose to dictionary-encode) are looked up here.
		var err error
		switch dd.Kind() {
		case encoding.Int32:
			c.bufI32, err = lookupDict(c.bufI32, dd.Int32(), idx)
			c.i32 = c.bufI32
		case encoding.Int64:
			c.bufI64, err = lookupDict(c.bufI64, dd.Int64(), idx)
			c.i64 = c.bufI64
		case encoding.Double:
			c.bufF64, err = lookupDict(c.bufF64, dd.Double(), idx)
			c.f64 = c.bufF64
		default:
			return fmt.Errorf("dictionary of kind %s", dd.Kind())
		}
		return err
	}
	switch d.Kind() {
	case encoding.Int64:
		c.i64 = d.Int64()
	case encoding.Int32:
		c.i32 = d.Int32()
	case encoding.Double:
		c.f64 = d.Double()
	case encoding.Boolean:
		// Bit-packed, least significant bit first; pages read from a
		// file start at bit 0.
		c.bits = d.Boolean()
	case encoding.ByteArray:
		data, offs := d.ByteArray()
		c.data, c.offs = string(data), offs
	default:
		return fmt.Errorf("page of kind %s", d.Kind())
	}
	return nil
}

// lookupDict fills buf with the dictionary values of the indices idx.
func lookupDict[T int32 | int64 | float64](buf, dict []T, idx []int32) ([]T, error) {
	buf = resize(buf, len(idx))
	for i, x := range idx {
		if x < 0 || int(x) >= len(dict) {
			return buf, fmt.Errorf("dictionary index %d out of range", x)
		}
		buf[i] = dict[x]
	}
	return buf, nil
}

// span returns how many of want rows the current page still holds,
// loading the next page when it is used up.
func (c *pageCursor) span(want int) (int, error) {
	if c.row >= c.rows {
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	return min(want, c.rows-c.row), nil
}

// fits checks that the current page's values can be read as typ.
func (c *pageCursor) fits(typ event.FieldType) error {
	var file string
	switch {
	case c.idx != nil || c.offs != nil:
		if typ == event.TypeString {
			return nil
		}
		file = "string"
	case c.f64 != nil:
		if typ == event.TypeDouble {
			return nil
		}
		file = "double"
	default: // integers and bools
		if integerLike(typ) || typ == event.TypeDouble {
			return nil
		}
		file = "integer"
	}
	return fmt.Errorf("%s in the file, %s in the schema", file, typ)
}
