package batch

import (
	"errors"
	"fmt"
)

// Parquet page headers, read straight from a column chunk's bytes (Thrift
// compact protocol): the fields the page decoder uses, every other field
// skipped. parquet-go's general Thrift decoder does the same through
// reflection and allocates; a lake file's chunk is read page by page on the
// recompute's hot path.

// Page types (parquet.thrift PageType).
const (
	pageData       = 0
	pageIndex      = 1
	pageDictionary = 2
	pageDataV2     = 3
)

// pageHeader is what the decoder needs of a Parquet PageHeader.
type pageHeader struct {
	typ                      int32
	uncompressed, compressed int32
	// values is num_values of the data (v1 or v2) or dictionary page
	// header; encoding is that header's value encoding.
	values   int32
	encoding int32
	// The data page v1 header's level encodings.
	defEncoding, repEncoding int32
	// The data page v2 header's fields.
	nulls, rows          int32
	defBytes, repBytes   int32
	uncompressedV2Values bool // is_compressed = false
	hasData, hasDict     bool
	// crc is the CRC-32 of the page's bytes as stored, when hasCRC.
	crc    uint32
	hasCRC bool
}

// Thrift compact protocol types.
const (
	tcStop      = 0
	tcTrue      = 1
	tcFalse     = 2
	tcByte      = 3
	tcI16       = 4
	tcI32       = 5
	tcI64       = 6
	tcDouble    = 7
	tcBinary    = 8
	tcList      = 9
	tcSet       = 10
	tcMap       = 11
	tcStruct    = 12
	tcUUID      = 13
	thriftDepth = 32 // nesting limit of skipped structs and containers
)

var errShortHeader = errors.New("thrift: truncated")

// thriftReader reads the Thrift compact protocol from a byte slice; every
// read is bounds-checked (a corrupt header is an error, never a panic).
type thriftReader struct {
	b   []byte
	pos int
}

func (r *thriftReader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, errShortHeader
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *thriftReader) uvarint() (uint64, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("thrift: varint too long")
}

func (r *thriftReader) varint() (int64, error) {
	u, err := r.uvarint()
	return int64(u>>1) ^ -int64(u&1), err
}

func (r *thriftReader) i32() (int32, error) {
	v, err := r.varint()
	if err == nil && (v < -1<<31 || v >= 1<<31) {
		err = errors.New("thrift: i32 out of range")
	}
	return int32(v), err
}

// field reads a field header: its id and type (tcStop at the end of a
// struct); last is the id of the struct's field before.
func (r *thriftReader) field(last int16) (int16, byte, error) {
	c, err := r.byte()
	if err != nil || c == tcStop {
		return 0, tcStop, err
	}
	typ := c & 0x0f
	if d := int16(c >> 4); d != 0 {
		return last + d, typ, nil
	}
	id, err := r.varint()
	return int16(id), typ, err
}

// skip skips a value of type typ.
func (r *thriftReader) skip(typ byte, depth int) error {
	if depth > thriftDepth {
		return errors.New("thrift: nested too deep")
	}
	switch typ {
	case tcTrue, tcFalse:
		return nil // a field's value is in its type; list elements take a byte (skipList)
	case tcByte:
		_, err := r.byte()
		return err
	case tcI16, tcI32, tcI64:
		_, err := r.uvarint()
		return err
	case tcDouble:
		return r.skipBytes(8)
	case tcUUID:
		return r.skipBytes(16)
	case tcBinary:
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		if n > uint64(len(r.b)) {
			return errShortHeader
		}
		return r.skipBytes(int(n))
	case tcList, tcSet:
		return r.skipList(depth)
	case tcMap:
		n, err := r.uvarint()
		if err != nil || n == 0 {
			return err
		}
		kv, err := r.byte()
		if err != nil {
			return err
		}
		if n > uint64(len(r.b)) {
			return errShortHeader // every entry takes a byte at least
		}
		for range n {
			if err := r.skipElem(kv>>4, depth+1); err != nil {
				return err
			}
			if err := r.skipElem(kv&0x0f, depth+1); err != nil {
				return err
			}
		}
		return nil
	case tcStruct:
		return r.skipStruct(depth + 1)
	}
	return fmt.Errorf("thrift: type %d", typ)
}

func (r *thriftReader) skipBytes(n int) error {
	if n > len(r.b)-r.pos {
		return errShortHeader
	}
	r.pos += n
	return nil
}

// skipElem skips an element of a list, set or map: booleans take a byte
// there.
func (r *thriftReader) skipElem(typ byte, depth int) error {
	if typ == tcTrue || typ == tcFalse {
		_, err := r.byte()
		return err
	}
	return r.skip(typ, depth)
}

func (r *thriftReader) skipList(depth int) error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	n := uint64(c >> 4)
	if n == 15 {
		if n, err = r.uvarint(); err != nil {
			return err
		}
	}
	if n > uint64(len(r.b)) {
		return errShortHeader // every element takes a byte at least
	}
	for range n {
		if err := r.skipElem(c&0x0f, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (r *thriftReader) skipStruct(depth int) error {
	return r.fields(func(_ int16, typ byte) error { return r.skip(typ, depth) })
}

// fields reads a struct's fields up to its end, calling fn with each
// field's id and type: fn reads or skips the field's value.
func (r *thriftReader) fields(fn func(id int16, typ byte) error) error {
	var last int16
	for {
		id, typ, err := r.field(last)
		if err != nil || typ == tcStop {
			return err
		}
		last = id
		if err := fn(id, typ); err != nil {
			return err
		}
	}
}

// readPageHeader decodes the page header at the start of b and returns it
// with its length in bytes.
func readPageHeader(b []byte) (pageHeader, int, error) {
	h, n, err := readPageHeaderFields(b)
	if err != nil {
		err = fmt.Errorf("page header: %w", err)
	}
	return h, n, err
}

func readPageHeaderFields(b []byte) (pageHeader, int, error) {
	r := thriftReader{b: b}
	var h pageHeader
	var seen uint8
	err := r.fields(func(id int16, typ byte) (err error) {
		switch {
		case id >= 1 && id <= 3 && typ == tcI32:
			var v int32
			v, err = r.i32()
			switch id {
			case 1:
				h.typ = v
			case 2:
				h.uncompressed = v
			case 3:
				h.compressed = v
			}
			seen |= 1 << id
		case id == 4 && typ == tcI32:
			var v int32
			v, err = r.i32()
			h.crc, h.hasCRC = uint32(v), true
		case id == 5 && typ == tcStruct:
			h.hasData = true
			err = r.structI32s(map4(&h.values, &h.encoding, &h.defEncoding, &h.repEncoding), nil)
		case id == 7 && typ == tcStruct:
			h.hasDict = true
			err = r.structI32s(map4(&h.values, &h.encoding, nil, nil), nil)
		case id == 8 && typ == tcStruct:
			h.hasData = true
			err = r.structI32s([]*int32{&h.values, &h.nulls, &h.rows, &h.encoding, &h.defBytes, &h.repBytes}, &h.uncompressedV2Values)
		default:
			err = r.skip(typ, 0)
		}
		return err
	})
	if err != nil {
		return h, 0, err
	}
	if seen != 0b1110 {
		return h, 0, errors.New("type or sizes missing")
	}
	if h.uncompressed < 0 || h.compressed < 0 {
		return h, 0, fmt.Errorf("negative size %d or %d", h.uncompressed, h.compressed)
	}
	return h, r.pos, nil
}

func map4(a, b, c, d *int32) []*int32 { return []*int32{a, b, c, d} }

// structI32s reads a struct whose fields 1..len(dst) are i32s (a nil dst
// element: skipped), field 7 (when off is set) the v2 header's
// is_compressed, and skips the others (statistics).
func (r *thriftReader) structI32s(dst []*int32, off *bool) error {
	return r.fields(func(id int16, typ byte) (err error) {
		switch {
		case id >= 1 && int(id) <= len(dst) && dst[id-1] != nil && typ == tcI32:
			*dst[id-1], err = r.i32()
		case id == 7 && off != nil && (typ == tcTrue || typ == tcFalse):
			*off = typ == tcFalse
		default:
			err = r.skip(typ, 1)
		}
		return err
	})
}
