package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The footer a lake file keeps is parquet-go's with some fields left out
// (trimFooter). It is cut out of parquet-go's bytes in one pass over the
// Thrift compact protocol, every kept field copied as it was written:
// decoding the footer into parquet-go's structures and encoding it again
// (both through reflection) was a tenth of the lake writer's CPU in a
// backfill of thousands of small files.

// Field ids (parquet.thrift) of the structs the trim goes into.
const (
	fmdSchema    = 2 // FileMetaData.schema
	fmdRowGroups = 4 // FileMetaData.row_groups

	seType       = 1 // SchemaElement.type
	seTypeLength = 2 // SchemaElement.type_length

	rgColumns = 1 // RowGroup.columns

	ccMetaData          = 3 // ColumnChunk.meta_data
	ccOffsetIndexOffset = 4 // ColumnChunk.offset_index_offset .. column_index_length
	ccColumnIndexLength = 7

	cmdStatistics     = 12 // ColumnMetaData.statistics
	cmdEncodingStats  = 13 // ColumnMetaData.encoding_stats
	cmdSizeStatistics = 16 // ColumnMetaData.size_statistics

	statNullCount = 3 // Statistics.null_count

	typeFixedLenByteArray = 7 // parquet.thrift Type.FIXED_LEN_BYTE_ARRAY
)

// trimFooter rewrites the end of a file, which parquet-go wrote after the
// row groups that end at offset dataEnd: the page index (column and offset
// indexes) and the footer. It appends to dst the footer alone (with its
// length and magic), without the page index, the size statistics and the
// page encoding counts, and without the type length of columns that are
// not fixed-length byte arrays. A lake file's column chunks are mostly a
// single page, so the page index says again what the chunk's statistics
// say (its page's bounds) plus where that page starts; no reader of the
// lake needs any of them (the batch layer skips the page index; DuckDB and
// pyarrow read files without them), and they cost ~1.1 B/row in daily
// files of ~900 rows. Column chunks whose stats entry is false keep only
// their null count of the statistics. With no rows (dataEnd 0) tail is
// appended as it is.
func trimFooter(dst, tail []byte, dataEnd int64, stats []bool) ([]byte, error) {
	if dataEnd == 0 {
		return append(dst, tail...), nil // no rows: the header and footer alone
	}
	if len(tail) < 8 || string(tail[len(tail)-4:]) != "PAR1" {
		return nil, fmt.Errorf("footer: %d bytes without the PAR1 magic", len(tail))
	}
	size := int(binary.LittleEndian.Uint32(tail[len(tail)-8:]))
	if size > len(tail)-8 {
		return nil, fmt.Errorf("footer: %d bytes, but %d written", size, len(tail)-8)
	}
	t := footerTrim{r: thriftReader{b: tail[len(tail)-8-size : len(tail)-8]}, out: dst, stats: stats}
	start := len(dst)
	if err := t.fileMetaData(); err != nil {
		return nil, fmt.Errorf("footer: %w", err)
	}
	if t.r.pos != len(t.r.b) {
		return nil, fmt.Errorf("footer: %d bytes after its end", len(t.r.b)-t.r.pos)
	}
	t.out = binary.LittleEndian.AppendUint32(t.out, uint32(len(t.out)-start))
	return append(t.out, "PAR1"...), nil
}

// footerTrim copies a footer from r to out, leaving fields out.
type footerTrim struct {
	r     thriftReader
	out   []byte
	stats []bool
}

// The structs the trim goes into, and what it does with a field.
type (
	trimStruct int
	trimAction int
)

const (
	inFileMetaData trimStruct = iota
	inSchemaElement
	inRowGroup
	inColumnChunk
	inColumnMetaData
	inStatistics // with the bounds left out
	inOther      // copied whole
)

const (
	copyField trimAction = iota
	dropField
	intoStruct // a struct the trim goes into
	intoList   // a list of such structs
)

// action says what the trim does with field id of type typ in a struct of
// kind in, and the kind of struct it goes into. In a schema element,
// fixed says the column is a fixed-length byte array.
func action(in trimStruct, id int16, typ byte, fixed, bounds bool) (trimAction, trimStruct) {
	switch in {
	case inFileMetaData:
		switch {
		case id == fmdSchema && typ == tcList:
			return intoList, inSchemaElement
		case id == fmdRowGroups && typ == tcList:
			return intoList, inRowGroup
		}
	case inSchemaElement:
		// parquet-go writes the type length on every column (64 on an
		// INT64): ~40 bytes a footer that readers ignore (0.9 B/row in an
		// hourly file of 48 rows).
		if id == seTypeLength && !fixed {
			return dropField, inOther
		}
	case inRowGroup:
		if id == rgColumns && typ == tcList {
			return intoList, inColumnChunk
		}
	case inColumnChunk:
		switch {
		case id == ccMetaData && typ == tcStruct:
			return intoStruct, inColumnMetaData
		case id >= ccOffsetIndexOffset && id <= ccColumnIndexLength:
			return dropField, inOther
		}
	case inColumnMetaData:
		// Which encodings a chunk's pages use is in its encodings list;
		// the count of pages of each is for writers of many pages a chunk
		// (0.2 B/row more in daily files).
		switch {
		case id == cmdEncodingStats || id == cmdSizeStatistics:
			return dropField, inOther
		case id == cmdStatistics && typ == tcStruct && !bounds:
			return intoStruct, inStatistics
		}
	case inStatistics:
		// The null count stays. The format has every writer write it
		// (parquet-go always does), and readers that prune by it
		// (parquet-java's filters in Spark and Hive, Trino) take a chunk
		// that says 0 for a chunk without nulls: a missing count would
		// hide the nulls of an optional column from `IS NULL`.
		if id != statNullCount || typ != tcI64 {
			return dropField, inOther
		}
	}
	return copyField, inOther
}

func (t *footerTrim) fileMetaData() error { return t.copyStruct(inFileMetaData, 0, 0) }

// copyStruct copies a struct of kind in, the column chunk being column of
// its row group (depth counts the structs it is in).
func (t *footerTrim) copyStruct(in trimStruct, column, depth int) error {
	if depth > thriftDepth {
		return errors.New("thrift: nested too deep")
	}
	var last, written int16
	fixed, nullCount := false, false
	bounds := column >= len(t.stats) || t.stats[column]
	for {
		id, typ, err := t.r.field(last)
		if err != nil {
			return err
		}
		if typ == tcStop {
			break
		}
		last = id
		act, into := action(in, id, typ, fixed, bounds)
		if act == dropField {
			if err := t.r.skip(typ, depth+1); err != nil {
				return err
			}
			continue
		}
		t.out = appendFieldHeader(t.out, written, id, typ)
		written = id
		switch act {
		case intoStruct:
			err = t.copyStruct(into, column, depth+1)
		case intoList:
			err = t.copyList(into, depth+1)
		default:
			from := t.r.pos
			if in == inSchemaElement && id == seType && typ == tcI32 {
				var v int32
				v, err = t.r.i32()
				fixed = v == typeFixedLenByteArray
			} else {
				err = t.r.skip(typ, depth+1)
			}
			t.out = append(t.out, t.r.b[from:t.r.pos]...)
			nullCount = nullCount || in == inStatistics
		}
		if err != nil {
			return err
		}
	}
	if in == inStatistics && !nullCount {
		// The count parquet-go always writes, 0, as it would.
		t.out = appendFieldHeader(t.out, written, statNullCount, tcI64)
		t.out = append(t.out, 0)
	}
	t.out = append(t.out, tcStop)
	return nil
}

// copyList copies a list of structs of kind in (a row group's column
// chunks are told their index).
func (t *footerTrim) copyList(in trimStruct, depth int) error {
	from := t.r.pos
	n, err := t.r.list(tcStruct)
	if err != nil {
		return err
	}
	t.out = append(t.out, t.r.b[from:t.r.pos]...)
	for i := range n {
		if err := t.copyStruct(in, i, depth); err != nil {
			return err
		}
	}
	return nil
}

// appendFieldHeader appends the compact protocol's header of field id of
// type typ, the field written before it being last.
func appendFieldHeader(b []byte, last, id int16, typ byte) []byte {
	if d := id - last; d > 0 && d <= 15 {
		return append(b, byte(d)<<4|typ)
	}
	b = append(b, typ)
	return binary.AppendUvarint(b, uint64(uint16(id<<1^id>>15)))
}
