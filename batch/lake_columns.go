package batch

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// The lake's columnar reader: a file's row groups are read column by column
// into event.Columns batches of readBatchRows rows, the pages' typed values
// copied straight into typed vectors (no Value per field and row), string
// columns handed on as dictionary indices with the dictionary's words
// wherever the file has them. The batch engine (recompute) consumes these
// batches; scanParquet turns them into events for the code that wants
// events (compaction, session windows).

// lakeFile is a lake file opened for reading and checked against its
// manifest entry: checksum, row count, the columns a scan asks for. Its row
// groups may be read by several goroutines at once, each with its own
// columnReader.
type lakeFile struct {
	fileScan
	o lakestore.Object
	// meta is the file's footer, read by readFooter where the file is in
	// memory, else from parquet-go's.
	meta *fileMeta
	// pf is the file opened by parquet-go, for the column chunks the
	// lake's page decoder does not read: opened when the first such chunk
	// is (by whichever goroutine), or at once when the footer needed it.
	pfOnce sync.Once
	pf     *parquet.File
	pfErr  error
	// positions: the scan wants every row's partition and offset. Without,
	// they are checked against the column chunks' statistics where the
	// file has them, and decoded only where it does not.
	positions bool
	batchRows int // rows per batch (scanOptions.BatchRows)
	// bytes are the file's bytes when in memory (read whole or mapped),
	// which the lake's page decoder reads; nil otherwise.
	bytes []byte
	// maxDef[i] is the maximum definition level of file column cols[i],
	// -1 when the column is not flat (the page decoder leaves it to
	// parquet-go).
	maxDef []int
}

// openLakeFile opens the lake file fe of tl for a scan of opts (through
// tl.openFile: a file compaction replaced meanwhile is read from its hidden
// name, the checksum is checked first). A file the manifest lists but that
// is gone, or one that does not match fe, is ErrCorruptFile.
func (tl *topicLake) openLakeFile(ctx context.Context, fe fileEntry, opts scanOptions) (*lakeFile, error) {
	return tl.prefetchFiles(ctx, []fileEntry{fe}).openLakeFile(ctx, 0, opts)
}

// openLakeObject reads the footer of o, the lake file of manifest entry fe
// (named name in messages), whose checksum was checked, for a scan of opts.
func openLakeObject(o lakestore.Object, name string, schema event.Schema, fe fileEntry, opts scanOptions) (lf *lakeFile, err error) {
	lf = &lakeFile{fileScan: fileScan{path: name, schema: schema, fe: fe}, o: o, positions: opts.Positions,
		batchRows: cmp.Or(opts.BatchRows, readBatchRows)}
	defer lf.recoverCorrupt(&err)
	// A mapped file's pages are read here: see lakestore's Map.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if m, ok := o.(*memFile); ok {
		lf.bytes = m.b
		// An error here leaves the footer to parquet-go, below.
		lf.meta, _ = readFooter(lf.bytes)
	}
	if lf.meta == nil {
		// Not in memory, or a footer readFooter does not take (it may
		// still be a good file): parquet-go reads it, and names what is
		// wrong if anything is.
		pf, err := lf.parquetFile()
		if err != nil {
			return nil, lf.corrupt("%v", err)
		}
		if lf.meta, err = fileMetaOf(pf); err != nil {
			return nil, lf.corrupt("%v", err)
		}
	}
	if got := lf.meta.rows; got != fe.Rows {
		return nil, lf.corrupt("holds %d rows, the manifest says %d", got, fe.Rows)
	}
	err = lf.selectColumns(opts, func(name string) int {
		c, _ := lf.meta.column(name)
		return c
	})
	if err != nil {
		return nil, err
	}
	for _, c := range lf.cols {
		lf.maxDef = append(lf.maxDef, lf.meta.columns[c].maxDef)
	}
	return lf, nil
}

// parquetFile returns the file opened by parquet-go, opening it the first
// time.
func (lf *lakeFile) parquetFile() (*parquet.File, error) {
	lf.pfOnce.Do(func() {
		lf.pf, lf.pfErr = parquet.OpenFile(lf.o, lf.o.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	})
	return lf.pf, lf.pfErr
}

func (lf *lakeFile) close() { lf.o.Close() }

// rowGroups returns the number of row groups.
func (lf *lakeFile) rowGroups() int { return len(lf.meta.groups) }

// colBatch is one batch of a columnar scan: the rows' columns and, when
// decoded, their partitions and offsets.
type colBatch struct {
	event.Columns
	Parts   []int32 // nil when checked by statistics instead
	Offsets []int64
	// TimeLo and TimeHi bound the event times of the batch's row group
	// when its statistics hold them (TimeBounded), so that a consumer can
	// take every row of a row group that lies inside its range without
	// comparing each.
	TimeLo, TimeHi int64
	TimeBounded    bool
}

// columnReader reads row groups of lake files into colBatches, reusing its
// buffers from batch to batch and file to file. It is not safe for
// concurrent use: each goroutine of a scan has its own.
type columnReader struct {
	cursors []pageCursor
	b       colBatch
	id      event.Column // the _id column
	ids     []string     // and its strings
	decode  []bool
	// buffers of the batch's other metadata columns
	time, ingest, offsets []int64
	parts                 []int32
	// parquetPages reads every page with parquet-go's reader (tests
	// compare the two); ownChunks counts the column chunks the lake's page
	// decoder read.
	parquetPages bool
	ownChunks    int
}

// startChunk starts cursor cur on column chunk c (the scan's column i) of
// row group rg: read by the lake's page decoder when the file is in
// memory and the decoder reads the chunk's column, codec and encodings,
// else by parquet-go's page reader.
func (r *columnReader) startChunk(cur *pageCursor, lf *lakeFile, rg, i, c int) error {
	md := &lf.meta.groups[rg].chunks[c]
	if !r.parquetPages && lf.bytes != nil && lf.maxDef[i] >= 0 && decodable(md, 0, lf.maxDef[i]) {
		if b, start, ok := pageChunk(lf.bytes, md); ok {
			cur.resetOwn(b, start, md, lf.maxDef[i])
			// Without a checksum of the whole file (checked when it
			// was opened), the pages' own are checked, as parquet-go's
			// reader does.
			cur.dec.checkCRC = lf.fe.CRC32C == 0
			r.ownChunks++
			return nil
		}
	}
	pf, err := lf.parquetFile()
	if err != nil {
		return err
	}
	groups := pf.RowGroups()
	if rg >= len(groups) || c >= len(groups[rg].ColumnChunks()) {
		return fmt.Errorf("parquet-go reads no column chunk %d of row group %d", c, rg)
	}
	cur.reset(groups[rg].ColumnChunks()[c].Pages())
	return nil
}

// scanRowGroup reads row group rg of lf and calls fn for each batch. The
// batch's memory is reused by the next one.
func (r *columnReader) scanRowGroup(ctx context.Context, lf *lakeFile, rg int, fn func(*colBatch) error) (err error) {
	defer lf.recoverCorrupt(&err)
	// A mapped file's pages are read here: see lakestore's Map.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if err := ctx.Err(); err != nil {
		return err
	}
	group := &lf.meta.groups[rg]
	if len(r.cursors) < len(lf.cols) {
		r.cursors = append(r.cursors, make([]pageCursor, len(lf.cols)-len(r.cursors))...)
	}
	cursors := r.cursors[:len(lf.cols)]
	defer func() {
		for i := range cursors {
			cursors[i].close()
		}
	}()
	// Partitions and offsets are decoded only where they must be: when
	// the scan wants them or the file has no statistics to check.
	positions := lf.positions
	for i := range lf.cols {
		if t := lf.target[i]; !positions && (t == tPart || t == tOffset) {
			if err := lf.checkBounds(group, t); errors.Is(err, errNoBounds) {
				positions = true
			} else if err != nil {
				return lf.corrupt("row group %d: %v", rg, err)
			}
		}
	}
	// The event times are checked against the file's period by the chunk's
	// statistics where they are inside it, else row by row (which names
	// the row that is not).
	b := &r.b
	b.TimeBounded = false
	for i, c := range lf.cols {
		if lf.target[i] == tEventTime {
			b.TimeLo, b.TimeHi, b.TimeBounded = lf.timeBounds(&group.chunks[c])
		}
	}
	decode := r.decode[:0]
	for i, c := range lf.cols {
		t := lf.target[i]
		decode = append(decode, positions || t != tPart && t != tOffset)
		if decode[i] {
			if err := r.startChunk(&cursors[i], lf, rg, i, c); err != nil {
				return lf.corrupt("row group %d, column %s: %v", rg, colName(lf.schema, t), err)
			}
		}
	}
	r.decode = decode
	b.Fields = resize(b.Fields, len(lf.schema))
	for i := range b.Fields {
		b.Fields[i] = event.Column{}
	}
	for left := int(group.rows); left > 0; {
		n := min(left, lf.batchRows)
		left -= n
		b.Len = n
		b.Time, b.Ingest, b.ID, b.Parts, b.Offsets = nil, nil, nil, nil, nil
		for ci, t := range lf.target {
			if !decode[ci] {
				continue
			}
			cur := &cursors[ci]
			switch t {
			case tEventTime:
				b.Time, err = cur.fillInts(&r.time, n)
			case tIngest:
				b.Ingest, err = cur.fillInts(&r.ingest, n)
			case tOffset:
				b.Offsets, err = cur.fillInts(&r.offsets, n)
			case tPart:
				b.Parts, err = cur.fillParts(&r.parts, n)
			case tID:
				err = cur.fillColumn(&r.id, n, event.TypeString)
				if err == nil {
					r.ids = resize(r.ids, n)
					for i := range r.ids {
						r.ids[i] = r.id.Str(i)
					}
					b.ID = r.ids
				}
			default:
				col := &b.Fields[t]
				err = cur.fillColumn(col, n, lf.schema[t].Type)
			}
			if err != nil {
				return lf.corrupt("row group %d, column %s: %v", rg, colName(lf.schema, t), err)
			}
		}
		if err := lf.checkRows(b, positions, !b.TimeBounded); err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// errNoBounds: a column chunk without statistics.
var errNoBounds = errors.New("no statistics")

// checkBounds checks a partition or offset column chunk by its statistics:
// every value must lie in the file's ranges. A chunk of one partition is
// checked exactly against that partition's range; a chunk holding several
// partitions (a file compaction made, or a flush of several partitions)
// has bounds that say too little, and is decoded instead (errNoBounds).
func (lf *lakeFile) checkBounds(group *groupMeta, t int) error {
	part, off := &group.chunks[lf.col(tPart)], &group.chunks[lf.col(tOffset)]
	plo, phi, err := bounds(part)
	if err != nil {
		return err
	}
	if plo != phi {
		return errNoBounds
	}
	var r *offsetRange
	for i := range lf.fe.Ranges {
		if int64(lf.fe.Ranges[i].Partition) == plo {
			r = &lf.fe.Ranges[i]
		}
	}
	if r == nil {
		return fmt.Errorf("rows of partition %d in a file of partitions %s", plo, rangesString(lf.fe.Ranges))
	}
	if t == tPart {
		return nil
	}
	lo, hi, err := bounds(off)
	if err != nil {
		return err
	}
	if len(lf.fe.Ranges) > 1 && (lo < r.First || hi > r.Last) {
		// Two ranges of one partition (compaction joins only adjoining
		// ones) leave a gap the bounds cannot see: decode.
		return errNoBounds
	}
	if lo < r.First || hi > r.Last {
		return fmt.Errorf("offsets %d to %d outside the file's range of partition %d [%d, %d]", lo, hi, r.Partition, r.First, r.Last)
	}
	return nil
}

// col returns the file column of metadata target t in the scan.
func (lf *lakeFile) col(t int) int {
	for i, x := range lf.target {
		if x == t {
			return lf.cols[i]
		}
	}
	return -1
}

// bounds returns the smallest and largest value of an integer column chunk
// by its statistics (errNoBounds without).
// A bound of another width than the column's type says nothing usable.
func bounds(chunk *chunkMeta) (int64, int64, error) {
	lo, okLo := intStat(chunk.typ, chunk.min)
	hi, okHi := intStat(chunk.typ, chunk.max)
	if !okLo || !okHi {
		return 0, 0, errNoBounds
	}
	return lo, hi, nil
}

// intStat decodes a statistic of an INT32 or INT64 column (PLAIN: little
// endian).
func intStat(typ format.Type, b []byte) (int64, bool) {
	switch {
	case typ == format.Int32 && len(b) == 4:
		return int64(int32(binary.LittleEndian.Uint32(b))), true
	case typ == format.Int64 && len(b) == 8:
		return int64(binary.LittleEndian.Uint64(b)), true
	}
	return 0, false
}

func rangesString(rs []offsetRange) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "p%d [%d, %d]", r.Partition, r.First, r.Last)
	}
	return b.String()
}

// timeBounds returns the bounds of an event-time column chunk when its
// statistics hold them and they lie inside the file's period.
func (lf *lakeFile) timeBounds(chunk *chunkMeta) (lo, hi int64, ok bool) {
	if chunk.typ != format.Int64 {
		return 0, 0, false
	}
	lo, hi, err := bounds(chunk)
	if err != nil {
		return 0, 0, false
	}
	if lo < lf.fe.Start || hi >= lf.fe.End || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// checkRows checks that every row of a batch belongs in the file: its
// event time in the file's period (times: when the statistics did not
// already say so) and, when decoded, its partition and offset in one of
// the file's ranges.
func (lf *lakeFile) checkRows(b *colBatch, positions, times bool) error {
	fe := &lf.fe
	lo, hi := fe.Start, fe.End
	if times {
		for _, t := range b.Time {
			if t < lo || t >= hi {
				return lf.corrupt("row with event time %d is outside the file's period", t)
			}
		}
	}
	if !positions {
		return nil
	}
	for i := range b.Parts {
		if !fe.holds(b.Parts[i], b.Offsets[i]) {
			return lf.corrupt("row of partition %d offset %d is outside the file's ranges %s",
				b.Parts[i], b.Offsets[i], rangesString(fe.Ranges))
		}
	}
	return nil
}

// fillInts returns the next n values of a required 64-bit integer column
// (event time, ingest time, offset); see fillMetaColumn.
func (c *pageCursor) fillInts(buf *[]int64, n int) ([]int64, error) {
	return fillMetaColumn(c, buf, n, func(c *pageCursor) []int64 { return c.i64 })
}

// fillParts is fillInts for the 32-bit partition column.
func (c *pageCursor) fillParts(buf *[]int32, n int) ([]int32, error) {
	return fillMetaColumn(c, buf, n, func(c *pageCursor) []int32 { return c.i32 })
}

// fillMetaColumn returns the next n values of a required metadata column,
// whose pages hold them in vals: the page's own values when one page holds
// all n (read-only, valid until the cursor moves on: a batch is consumed
// before the next is read), else a copy in *buf.
func fillMetaColumn[T int32 | int64](c *pageCursor, buf *[]T, n int, vals func(*pageCursor) []T) ([]T, error) {
	var dst []T
	for done := 0; done < n; {
		k, err := c.span(n - done)
		if err != nil {
			return nil, err
		}
		if c.defs != nil {
			return nil, errors.New("metadata column holds nulls")
		}
		v := vals(c)
		if v == nil {
			return nil, errors.New("metadata column of the wrong type")
		}
		if done == 0 && k == n {
			dst = v[c.val : c.val+k : c.val+k]
		} else {
			if dst == nil {
				*buf = resize(*buf, n)
				dst = *buf
			}
			copy(dst[done:done+k], v[c.val:c.val+k])
		}
		c.val += k
		c.row += k
		done += k
	}
	return dst, nil
}

// fillColumn reads the column's next n values into col, a field of type
// typ, reusing col's buffers. A column is matched to the topic's current
// schema by name, so its values must be of the field's type: integer-like
// values (long, int, bool, timestamp) read as each other and as doubles;
// any other change of type is an error. Strings stay dictionary indices
// while every page of the batch shares one non-empty dictionary; otherwise
// they are strings.
func (c *pageCursor) fillColumn(col *event.Column, n int, typ event.FieldType) error {
	// I and F come from the cursor's own buffers: the batch before may
	// have borrowed a page's values (fillValues).
	*col = event.Column{Read: true, Valid: col.Valid[:0], I: c.ownI[:0], F: c.ownF[:0], S: col.S[:0], Idx: c.ownIdx[:0]}
	c.borrowed = false
	defer func() {
		if !c.borrowed {
			c.ownI, c.ownF, c.ownIdx = col.I, col.F, col.Idx
		}
	}()
	nulls := false
	for done := 0; done < n; {
		k, err := c.span(n - done)
		if err != nil {
			return err
		}
		if err := c.fits(typ); err != nil {
			return err
		}
		defs := c.defs
		if defs != nil {
			defs = defs[c.row : c.row+k]
			if !nulls && hasNull(defs) {
				nulls = true
				col.Valid = resize(col.Valid[:cap(col.Valid)], done)
				for i := range col.Valid {
					col.Valid[i] = true
				}
			}
		}
		if nulls {
			if defs == nil {
				col.Valid = appendTrue(col.Valid, k)
			} else {
				for _, d := range defs {
					col.Valid = append(col.Valid, d != 0)
				}
			}
		}
		if !hasNull(defs) {
			defs = nil // every row has a value: copy them in bulk
		}
		c.borrow = done == 0 && k == n
		switch {
		case typ == event.TypeString:
			err = c.fillStrings(col, done, k, defs)
		case typ == event.TypeDouble:
			c.fillDoubles(col, k, defs)
		default:
			c.fillIntegers(col, k, defs)
		}
		if err != nil {
			return err
		}
		c.row += k
		done += k
	}
	if !nulls {
		col.Valid = nil
	}
	return nil
}

func hasNull(defs []byte) bool {
	for _, d := range defs {
		if d == 0 {
			return true
		}
	}
	return false
}

func appendTrue(v []bool, k int) []bool {
	for range k {
		v = append(v, true)
	}
	return v
}

// fillStrings appends k rows of a string page to col, which holds done
// rows already; defs (nil: no nulls) are the rows' definition levels.
func (c *pageCursor) fillStrings(col *event.Column, done, k int, defs []byte) error {
	dict := c.idx != nil && len(c.words) > 0
	switch {
	case done == 0 && dict:
		col.Words = c.words
	case col.Words != nil && (!dict || &col.Words[0] != &c.words[0] || len(col.Words) != len(c.words)):
		// Another dictionary, or none, within the batch: strings.
		for _, w := range col.Idx {
			col.S = append(col.S, col.Words[w])
		}
		col.Idx, col.Words = nil, nil
	}
	words := int32(len(c.words))
	if defs == nil && c.idx != nil && col.Words != nil {
		// Dictionary indices without nulls: copied in bulk, checked in
		// one pass.
		idx := c.idx[c.val : c.val+k]
		// The largest index (as unsigned, so a negative one is large),
		// without a branch per index.
		var top uint32
		for _, w := range idx {
			top = max(top, uint32(w))
		}
		if len(idx) > 0 && top >= uint32(words) {
			for _, w := range idx {
				if w < 0 || w >= words {
					return fmt.Errorf("dictionary index %d out of range", w)
				}
			}
		}
		if len(col.Idx) == 0 && c.borrow {
			// The batch's rows are all in this page: its indices, not
			// a copy (read-only; capacity k, so an append copies).
			col.Idx = idx[:k:k]
			c.borrowed = true
		} else {
			col.Idx = append(col.Idx, idx...)
		}
		c.val += k
		return nil
	}
	for i := range k {
		if defs != nil && defs[i] == 0 {
			if col.Words != nil {
				col.Idx = append(col.Idx, 0)
			} else {
				col.S = append(col.S, "")
			}
			continue
		}
		j := c.val
		c.val++
		switch {
		case c.idx != nil:
			w := c.idx[j]
			if w < 0 || w >= words {
				return fmt.Errorf("dictionary index %d out of range", w)
			}
			if col.Words != nil {
				col.Idx = append(col.Idx, w)
			} else {
				col.S = append(col.S, c.words[w])
			}
		default:
			col.S = append(col.S, c.data[c.offs[j]:c.offs[j+1]])
		}
	}
	return nil
}

// fillDoubles appends k rows of a double (or integer-like) page to col.F.
func (c *pageCursor) fillDoubles(col *event.Column, k int, defs []byte) {
	col.F = fillValues(c, col.F, c.f64, k, defs, func(j int) float64 {
		if c.f64 != nil {
			return c.f64[j]
		}
		return float64(c.integer(j))
	})
}

// fillIntegers appends k rows of an integer-like page to col.I.
func (c *pageCursor) fillIntegers(col *event.Column, k int, defs []byte) {
	col.I = fillValues(c, col.I, c.i64, k, defs, c.integer)
}

// fillValues appends k rows of the page to dst: in bulk from page (its
// values when of dst's type) without nulls, else value by value through
// at, zero for a null. When dst is empty and the batch takes its k rows
// from this page alone, it returns the page's values themselves
// (read-only, valid until the cursor moves on; capacity k, so an append
// copies).
func fillValues[T int64 | float64](c *pageCursor, dst, page []T, k int, defs []byte, at func(j int) T) []T {
	if defs == nil && page != nil && len(dst) == 0 && c.borrow {
		dst = page[c.val : c.val+k : c.val+k]
		c.val += k
		c.borrowed = true
		return dst
	}
	if defs == nil && page != nil {
		dst = append(dst, page[c.val:c.val+k]...)
		c.val += k
		return dst
	}
	for i := range k {
		if defs != nil && defs[i] == 0 {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, at(c.val))
		c.val++
	}
	return dst
}

// integer returns value j of an integer-like page.
func (c *pageCursor) integer(j int) int64 {
	switch {
	case c.i64 != nil:
		return c.i64[j]
	case c.i32 != nil:
		return int64(c.i32[j])
	}
	if j/8 >= len(c.bits) {
		panic("boolean page shorter than its values")
	}
	return int64(c.bits[j/8] >> (j % 8) & 1)
}
