package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// Lake file footers, read straight from a file's bytes in memory (Thrift
// compact protocol, as page headers are: lake_page_header.go): the schema's
// columns, the row groups, and of each column chunk what a scan uses, every
// other field skipped. parquet-go's OpenFile decodes every field through
// reflection and then builds its schema and column mappings, which was most
// of the work of opening a small file and most of the garbage a recompute
// left behind: a recompute over an hourly lake (a year of a sparse topic is
// ~7,000 files) spent three quarters of its CPU opening files. A footer this
// reader does not take (a nested schema, a field of an unexpected type) is
// left to parquet-go (openLakeObject), so reading never depends on this
// reader knowing every writer.

// fileMeta is what a scan needs of a Parquet file's footer.
type fileMeta struct {
	rows    int64
	columns []columnMeta // the schema's leaf columns, in column order
	groups  []groupMeta
	encs    []format.Encoding // the chunks' encodings lists, end to end
}

// columnMeta is a leaf column of the schema.
type columnMeta struct {
	// name is the column's name when it is a top-level leaf (the only
	// columns a scan looks up by name), nil inside a group. It aliases the
	// footer's bytes.
	name []byte
	// maxDef is the maximum definition level, -1 for a repeated column
	// (the page decoder leaves such columns to parquet-go).
	maxDef int
}

// groupMeta is a row group: its rows and a chunk per leaf column.
type groupMeta struct {
	rows   int64
	chunks []chunkMeta
}

// chunkMeta is what the page decoder and the statistics checks use of a
// column chunk's metadata.
type chunkMeta struct {
	typ       format.Type
	codec     format.CompressionCodec
	encodings []format.Encoding
	// external: the chunk's file_path names another file.
	external bool
	// dataPage and dictPage are the offsets of the first data page and of
	// the dictionary page (0: none); size is the chunk's compressed size.
	dataPage, dictPage, size int64
	// min and max are the statistics' min_value and max_value, nil when
	// absent (they alias the footer's bytes).
	min, max []byte
	// encAt is where readFooter has the chunk's encodings in fileMeta.encs.
	encAt [2]int32
}

// column returns the index of the top-level leaf column name and its
// maximum definition level, or -1.
func (m *fileMeta) column(name string) (int, int) {
	for i := range m.columns {
		if c := &m.columns[i]; c.name != nil && string(c.name) == name {
			return i, c.maxDef
		}
	}
	return -1, 0
}

// errNotFlat: a schema with groups, left to parquet-go.
var errNotFlat = errors.New("footer: not a flat schema")

// readFooter decodes the footer of the Parquet file b. Errors name what is
// wrong; none panics, whatever the bytes.
func readFooter(b []byte) (*fileMeta, error) {
	if len(b) < 12 || string(b[:4]) != "PAR1" || string(b[len(b)-4:]) != "PAR1" {
		return nil, errors.New("footer: no PAR1 magic at both ends")
	}
	n := binary.LittleEndian.Uint32(b[len(b)-8:])
	if int64(n) > int64(len(b))-12 {
		return nil, fmt.Errorf("footer: %d bytes in a file of %d", n, len(b))
	}
	r := thriftReader{b: b[len(b)-8-int(n) : len(b)-8]}
	m := &fileMeta{}
	if err := m.read(&r); err != nil {
		if errors.Is(err, errNotFlat) {
			return nil, err
		}
		return nil, fmt.Errorf("footer: %w", err)
	}
	// The chunks' encodings are sliced once encs has stopped growing.
	for i := range m.groups {
		for j := range m.groups[i].chunks {
			c := &m.groups[i].chunks[j]
			c.encodings = m.encs[c.encAt[0]:c.encAt[1]:c.encAt[1]]
		}
	}
	return m, nil
}

// FileMetaData: 2 schema, 3 num_rows, 4 row_groups.
func (m *fileMeta) read(r *thriftReader) error {
	var schema, rows, groups bool
	err := r.fields(func(id int16, typ byte) (err error) {
		switch {
		case id == 2 && typ == tcList:
			schema, err = true, m.readSchema(r)
		case id == 3 && typ == tcI64:
			rows = true
			m.rows, err = r.varint()
		case id == 4 && typ == tcList:
			groups, err = true, m.readRowGroups(r)
		case id >= 2 && id <= 4:
			err = fmt.Errorf("field %d of type %d", id, typ)
		default:
			err = r.skip(typ, 0)
		}
		return err
	})
	if err != nil {
		return err
	}
	if !schema || !rows || !groups {
		return errors.New("schema, num_rows or row_groups missing")
	}
	if m.rows < 0 {
		return fmt.Errorf("num_rows %d", m.rows)
	}
	return nil
}

// list reads a list header of elements of type want and returns its size,
// bounded by the bytes left (every element takes one at least).
func (r *thriftReader) list(want byte) (int, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	n := uint64(c >> 4)
	if n == 15 {
		if n, err = r.uvarint(); err != nil {
			return 0, err
		}
	}
	if c&0x0f != want && n > 0 {
		return 0, fmt.Errorf("a list of type %d, not %d", c&0x0f, want)
	}
	if n > uint64(len(r.b)-r.pos) {
		return 0, errShortHeader
	}
	return int(n), nil
}

// binary reads a binary field, aliasing r's bytes.
func (r *thriftReader) binary() ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)-r.pos) {
		return nil, errShortHeader
	}
	b := r.b[r.pos : r.pos+int(n) : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

// readSchema reads the list of SchemaElements, which must be a root and
// its leaves (3 repetition_type, 4 name, 5 num_children).
func (m *fileMeta) readSchema(r *thriftReader) error {
	n, err := r.list(tcStruct)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("an empty schema")
	}
	m.columns = make([]columnMeta, 0, n-1)
	for i := range n {
		var name []byte
		var children, repetition int32 = 0, -1
		err := r.fields(func(id int16, typ byte) (err error) {
			switch {
			case id == 3 && typ == tcI32:
				repetition, err = r.i32()
			case id == 4 && typ == tcBinary:
				name, err = r.binary()
			case id == 5 && typ == tcI32:
				children, err = r.i32()
			case id >= 3 && id <= 5:
				err = fmt.Errorf("schema element %d: field %d of type %d", i, id, typ)
			default:
				err = r.skip(typ, 1)
			}
			return err
		})
		if err != nil {
			return err
		}
		switch {
		case i == 0:
			if int(children) != n-1 {
				return errNotFlat
			}
		case children != 0:
			return errNotFlat
		case repetition == int32(format.Optional):
			m.columns = append(m.columns, columnMeta{name: name, maxDef: 1})
		case repetition == int32(format.Required):
			m.columns = append(m.columns, columnMeta{name: name, maxDef: 0})
		case repetition == int32(format.Repeated):
			m.columns = append(m.columns, columnMeta{name: name, maxDef: -1})
		default:
			return errNotFlat // no repetition type: let parquet-go decide
		}
		if i > 0 && name == nil {
			return fmt.Errorf("schema element %d: no name", i)
		}
	}
	// A name twice: which column a scan reads is parquet-go's to say.
	for i := range m.columns {
		for j := range i {
			if bytes.Equal(m.columns[i].name, m.columns[j].name) {
				return fmt.Errorf("column %q twice", m.columns[i].name)
			}
		}
	}
	return nil
}

// readRowGroups reads the list of RowGroups (1 columns, 3 num_rows): the
// schema comes first in every writer's footer, as the format's field order
// has it, and each group must have a chunk per leaf column.
func (m *fileMeta) readRowGroups(r *thriftReader) error {
	if m.columns == nil {
		return errors.New("row groups before the schema")
	}
	n, err := r.list(tcStruct)
	if err != nil {
		return err
	}
	width := len(m.columns)
	// Every chunk takes some bytes of the footer: a corrupt count cannot
	// make the reader allocate more than a few times the footer's size.
	if uint64(n)*uint64(width) > uint64(len(r.b)-r.pos) {
		return fmt.Errorf("%d row groups of %d columns in %d bytes", n, width, len(r.b)-r.pos)
	}
	chunks := make([]chunkMeta, n*width)
	m.groups = make([]groupMeta, n)
	for i := range m.groups {
		g := &m.groups[i]
		g.chunks = chunks[i*width : (i+1)*width : (i+1)*width]
		g.rows = -1
		read := -1
		err := r.fields(func(id int16, typ byte) (err error) {
			switch {
			case id == 1 && typ == tcList:
				read, err = m.readChunks(r, g.chunks)
			case id == 3 && typ == tcI64:
				g.rows, err = r.varint()
			case id == 1 || id == 3:
				err = fmt.Errorf("field %d of type %d", id, typ)
			default:
				err = r.skip(typ, 1)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("row group %d: %w", i, err)
		}
		if read != width {
			return fmt.Errorf("row group %d: %d column chunks for %d columns", i, max(read, 0), width)
		}
		if g.rows < 0 {
			return fmt.Errorf("row group %d: no num_rows", i)
		}
	}
	return nil
}

// readChunks reads a row group's list of ColumnChunks (1 file_path, 3
// meta_data) into cs and returns how many the list holds.
func (m *fileMeta) readChunks(r *thriftReader, cs []chunkMeta) (int, error) {
	n, err := r.list(tcStruct)
	if err != nil || n != len(cs) {
		return n, err
	}
	for i := range cs {
		c := &cs[i]
		hasMeta := false
		err := r.fields(func(id int16, typ byte) (err error) {
			switch {
			case id == 1 && typ == tcBinary:
				var p []byte
				p, err = r.binary()
				c.external = len(p) > 0
			case id == 3 && typ == tcStruct:
				hasMeta = true
				err = m.readChunkMeta(r, c)
			case id == 1 || id == 3:
				err = fmt.Errorf("field %d of type %d", id, typ)
			default:
				err = r.skip(typ, 2)
			}
			return err
		})
		if err == nil && !hasMeta {
			err = errors.New("no metadata")
		}
		if err != nil {
			return 0, fmt.Errorf("column chunk %d: %w", i, err)
		}
	}
	return n, nil
}

// readChunkMeta reads a ColumnMetaData (1 type, 2 encodings, 4 codec, 7
// total_compressed_size, 9 data_page_offset, 11 dictionary_page_offset, 12
// statistics).
func (m *fileMeta) readChunkMeta(r *thriftReader, c *chunkMeta) error {
	if len(m.encs) >= 1<<31-1<<20 {
		return errors.New("too many encodings")
	}
	lo := len(m.encs)
	var seen uint16 // bit i: field i, for the required fields (ids 1–9)
	err := r.fields(func(id int16, typ byte) (err error) {
		switch {
		case (id == 1 || id == 4) && typ == tcI32:
			var x int32
			x, err = r.i32()
			if id == 1 {
				c.typ = format.Type(x)
			} else {
				c.codec = format.CompressionCodec(x)
			}
		case id == 2 && typ == tcList:
			err = m.readEncodings(r)
		case (id == 7 || id == 9 || id == 11) && typ == tcI64:
			var v int64
			if v, err = r.varint(); err == nil && (v < 0 || v >= 1<<40) {
				err = fmt.Errorf("field %d: offset or size %d", id, v)
			}
			switch id {
			case 7:
				c.size = v
			case 9:
				c.dataPage = v
			case 11:
				c.dictPage = v
			}
		case id == 12 && typ == tcStruct:
			err = r.fields(func(id int16, typ byte) (err error) {
				switch {
				case id == 5 && typ == tcBinary:
					c.max, err = r.binary()
				case id == 6 && typ == tcBinary:
					c.min, err = r.binary()
				default:
					err = r.skip(typ, 4)
				}
				return err
			})
		case id == 1 || id == 2 || id == 4 || id == 7 || id == 9 || id == 11 || id == 12:
			err = fmt.Errorf("field %d of type %d", id, typ)
		default:
			err = r.skip(typ, 3)
		}
		if err == nil && id >= 1 && id <= 9 {
			seen |= 1 << id
		}
		return err
	})
	if err != nil {
		return err
	}
	// type, encodings, codec, total_compressed_size, data_page_offset
	const want = 1<<1 | 1<<2 | 1<<4 | 1<<7 | 1<<9
	if seen&want != want {
		return errors.New("metadata without type, encodings, codec, size or data page offset")
	}
	c.encAt = [2]int32{int32(lo), int32(len(m.encs))}
	return nil
}

// readEncodings reads a chunk's list of encodings onto m.encs.
func (m *fileMeta) readEncodings(r *thriftReader) error {
	n, err := r.list(tcI32)
	if err != nil {
		return err
	}
	for range n {
		x, err := r.i32()
		if err != nil {
			return err
		}
		m.encs = append(m.encs, format.Encoding(x))
	}
	return nil
}

// fileMetaOf returns the fileMeta of a file parquet-go opened (a footer
// readFooter does not take): the same fields, from parquet-go's decoding.
func fileMetaOf(pf *parquet.File) (*fileMeta, error) {
	md := pf.Metadata()
	paths := pf.Schema().Columns()
	m := &fileMeta{rows: md.NumRows, columns: make([]columnMeta, len(paths))}
	for _, path := range paths {
		leaf, ok := pf.Schema().Lookup(path...)
		if !ok || leaf.ColumnIndex < 0 || leaf.ColumnIndex >= len(paths) {
			return nil, fmt.Errorf("footer: no leaf column %q", path)
		}
		c := columnMeta{maxDef: leaf.MaxDefinitionLevel}
		if leaf.MaxRepetitionLevel != 0 {
			c.maxDef = -1
		}
		if len(path) == 1 {
			c.name = []byte(path[0])
		}
		m.columns[leaf.ColumnIndex] = c
	}
	for i, rg := range md.RowGroups {
		if len(rg.Columns) != len(paths) {
			return nil, fmt.Errorf("footer: row group %d: %d column chunks for %d columns", i, len(rg.Columns), len(paths))
		}
		g := groupMeta{rows: rg.NumRows}
		for j := range rg.Columns {
			g.chunks = append(g.chunks, chunkMetaOf(&rg.Columns[j]))
		}
		m.groups = append(m.groups, g)
	}
	return m, nil
}

// chunkMetaOf returns the chunkMeta of a column chunk parquet-go decoded.
func chunkMetaOf(cc *format.ColumnChunk) chunkMeta {
	md := &cc.MetaData
	return chunkMeta{typ: md.Type, codec: md.Codec, encodings: md.Encoding, external: cc.FilePath != "",
		dataPage: md.DataPageOffset, dictPage: md.DictionaryPageOffset, size: md.TotalCompressedSize,
		min: md.Statistics.MinValue, max: md.Statistics.MaxValue}
}
