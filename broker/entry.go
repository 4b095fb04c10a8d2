package broker

import (
	"errors"
	"fmt"
	"math"

	"github.com/lambdaflow/lambdaflow/internal/binfmt"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// Entry format constants; docs/log-format.md is the specification.
const (
	entryMagic0  = 'L'
	entryMagic1  = 'F'
	entryVersion = 1

	// flagNulls says every event carries a null bitmap. Writers set it only
	// when some value of the entry is null, so dense entries pay nothing.
	flagNulls = 1 << 0

	// maxEntryFields bounds the field list so that a corrupt count cannot
	// make the decoder allocate without limit.
	maxEntryFields = 4096
)

// MaxEntryEvents is the most events one entry (one Append) may hold. It also
// bounds how far the broker skips offsets when the log of a partition has
// been emptied by retention and its exact end is unknown (see
// docs/log-format.md, "Offsets after retention").
const MaxEntryEvents = 1 << 16

// EventSize estimates an event's size in an entry, from above: the format
// stores strings with a varint length and every other value in at most 10
// bytes. Writers use it to keep entries under the server's max payload.
func EventSize(ev *event.Event) int {
	n := len(ev.ID) + 2*10
	for i := range ev.Values {
		n += len(ev.Values[i].S) + 10
	}
	return n
}

// ErrCorruptEntry is returned (wrapped) by DecodeEntry for payloads that are
// not a well-formed entry: wrong magic, truncated, unknown types, trailing bytes.
var ErrCorruptEntry = errors.New("broker: corrupt log entry")

// ErrSchemaMismatch is returned (wrapped) by DecodeEntry when a field of the
// entry cannot be read as the type the current schema gives it, e.g. a
// string field that became a long.
var ErrSchemaMismatch = errors.New("broker: entry field type does not match the schema")

// AppendEntry appends to dst the encoding of one log entry holding events,
// all of one topic with the given schema, and returns the extended slice.
// Each event's Values are in schema order; a missing trailing value or one
// with Valid false is written as null, extra values are ignored. ingest
// (UTC microseconds) is stored once for the whole entry; the events' own
// Ingest fields are not written.
func AppendEntry(dst []byte, schema event.Schema, ingest int64, events []event.Event) []byte {
	nulls := false
	for i := range events {
		if hasNull(len(schema), events[i].Values) {
			nulls = true
			break
		}
	}
	var flags byte
	if nulls {
		flags |= flagNulls
	}
	dst = append(dst, entryMagic0, entryMagic1, entryVersion, flags)
	dst = binfmt.AppendVarint(dst, ingest)
	dst = binfmt.AppendUvarint(dst, uint64(len(events)))
	dst = binfmt.AppendUvarint(dst, uint64(len(schema)))
	for _, f := range schema {
		dst = binfmt.AppendString(dst, f.Name)
		dst = append(dst, wireType(f.Type))
	}
	prevTime := ingest
	bitmapLen := (len(schema) + 7) / 8
	for i := range events {
		ev := &events[i]
		dst = binfmt.AppendString(dst, ev.ID)
		// Times of one entry are close together, so deltas keep them short.
		dst = binfmt.AppendVarint(dst, ev.Time-prevTime)
		prevTime = ev.Time
		if nulls {
			start := len(dst)
			for range bitmapLen {
				dst = append(dst, 0)
			}
			for j := range schema {
				if j >= len(ev.Values) || !ev.Values[j].Valid {
					dst[start+j/8] |= 1 << (j % 8)
				}
			}
		}
		for j, f := range schema {
			if j >= len(ev.Values) || !ev.Values[j].Valid {
				continue
			}
			v := &ev.Values[j]
			switch f.Type {
			case event.TypeString:
				dst = binfmt.AppendString(dst, v.S)
			case event.TypeDouble:
				dst = binfmt.AppendFloat64(dst, v.F)
			case event.TypeBool:
				if v.I != 0 {
					dst = append(dst, 1)
				} else {
					dst = append(dst, 0)
				}
			case event.TypeTimestamp:
				// Timestamp fields usually equal or sit near the event time
				// (the event time is often read from one of them).
				dst = binfmt.AppendVarint(dst, v.I-ev.Time)
			default: // long, int and anything integer-like
				dst = binfmt.AppendVarint(dst, v.I)
			}
		}
	}
	return dst
}

func hasNull(n int, vals []event.Value) bool {
	if len(vals) < n {
		return true
	}
	for j := range n {
		if !vals[j].Valid {
			return true
		}
	}
	return false
}

// entryField is one field as an entry declares it, with where it lands in
// the reader's schema (-1: not in the schema, skipped).
type entryField struct {
	typ    event.FieldType
	target int
	conv   convKind
}

type convKind uint8

const (
	convNone     convKind = iota // same member of Value
	convToDouble                 // integer-like written, double read
	convToBool                   // other integer-like written, bool read: non-zero is true
	convToInt                    // wider integer-like written, int read: outside int32 is null
)

// DecodeEntry decodes one log entry into events of schema (the topic's
// current schema), appending to dst[:0] so that a caller may reuse dst's
// capacity; the returned events replace whatever dst held. Fields are
// matched by name: a schema field the entry does not have is null, an
// entry field the schema does not have is skipped. Integer-like types
// (long, int, bool, timestamp) read as each other or as double; any other
// type change is ErrSchemaMismatch. Every event gets the entry's ingest time.
//
// All values of the entry share one backing array and all strings share one
// copy of data, so data may be reused after the call and decoding costs two
// allocations per entry, not per event.
func DecodeEntry(data []byte, schema event.Schema, dst []event.Event) ([]event.Event, error) {
	dst = dst[:0]
	if len(data) < 4 || data[0] != entryMagic0 || data[1] != entryMagic1 {
		return dst, fmt.Errorf("%w: bad magic", ErrCorruptEntry)
	}
	if data[2] != entryVersion {
		return dst, fmt.Errorf("%w: unsupported version %d", ErrCorruptEntry, data[2])
	}
	flags := data[3]
	if flags&^flagNulls != 0 {
		return dst, fmt.Errorf("%w: unknown flags %#x", ErrCorruptEntry, flags)
	}
	r := binfmt.NewReader(data, ErrCorruptEntry)
	r.Skip(4)
	ingest := r.Varint()
	// Every event takes at least two bytes (id length, time delta), every
	// field two (name length, type).
	count := r.Count(2)
	if count > MaxEntryEvents {
		r.Failf("event count %d exceeds %d", count, MaxEntryEvents)
	}
	nfields := r.Count(2)
	if nfields > maxEntryFields {
		r.Failf("field count %d exceeds %d", nfields, maxEntryFields)
	}
	if r.Failed() {
		return dst, r.Err()
	}
	// One conversion gives every string of the entry a stable backing.
	str := string(data)
	var fieldsArr [32]entryField
	fields := fieldsArr[:0]
	for range nfields {
		name := str[r.Skip(r.Len()):r.Offset()]
		code := r.Byte()
		if r.Failed() {
			return dst, r.Err()
		}
		typ, ok := fieldType(code)
		if !ok {
			return dst, fmt.Errorf("%w: field %q has unknown type %d at byte %d", ErrCorruptEntry, name, code, r.Offset()-1)
		}
		f := entryField{typ: typ, target: schema.Index(name)}
		if f.target >= 0 {
			want := schema[f.target].Type
			switch {
			case want == typ:
			case integerLike(typ) && want == event.TypeBool:
				// Every bool holds 0 or 1, whatever wrote the entry, so
				// that comparisons and re-encoding see one true.
				f.conv = convToBool
			case integerLike(typ) && want == event.TypeInt && typ != event.TypeBool:
				f.conv = convToInt
			case integerLike(typ) && integerLike(want):
			case integerLike(typ) && want == event.TypeDouble:
				f.conv = convToDouble
			default:
				return dst, fmt.Errorf("%w: field %q is %s in the entry and %s in the schema", ErrSchemaMismatch, name, typ, want)
			}
		}
		fields = append(fields, f)
	}
	if cap(dst) < count {
		dst = make([]event.Event, 0, count)
	}
	width := len(schema)
	values := make([]event.Value, count*width)
	bitmapLen := (len(fields) + 7) / 8
	prevTime := ingest
	for i := range count {
		id := str[r.Skip(r.Len()):r.Offset()]
		t := prevTime + r.Varint()
		prevTime = t
		var bitmap []byte
		if flags&flagNulls != 0 {
			bitmap = r.Bytes(bitmapLen)
		}
		if r.Failed() {
			return dst, r.Err()
		}
		row := values[i*width : (i+1)*width : (i+1)*width]
		for j := range fields {
			if bitmap != nil && bitmap[j/8]&(1<<(j%8)) != 0 {
				continue
			}
			f := &fields[j]
			var v event.Value
			switch f.typ {
			case event.TypeString:
				v.S = str[r.Skip(r.Len()):r.Offset()]
			case event.TypeDouble:
				v.F = r.Float64()
			case event.TypeBool:
				if b := r.Byte(); b <= 1 {
					v.I = int64(b)
				} else {
					r.Failf("bool value %d", b)
				}
			case event.TypeTimestamp:
				v.I = t + r.Varint()
			default:
				v.I = r.Varint()
			}
			if r.Failed() {
				return dst, r.Err()
			}
			if f.target < 0 {
				continue
			}
			switch f.conv {
			case convToDouble:
				v.F, v.I = float64(v.I), 0
			case convToBool:
				if v.I != 0 {
					v.I = 1
				}
			case convToInt:
				if v.I < math.MinInt32 || v.I > math.MaxInt32 {
					continue // not representable: null, like a missing field
				}
			}
			v.Valid = true
			row[f.target] = v
		}
		dst = append(dst, event.Event{ID: id, Time: t, Ingest: ingest, Values: row})
	}
	if n := r.Remaining(); n != 0 {
		return dst[:0], fmt.Errorf("%w: %d trailing bytes at byte %d", ErrCorruptEntry, n, r.Offset())
	}
	return dst, nil
}

// Wire type codes, fixed by docs/log-format.md whatever the numbering of
// event.FieldType.
var wireTypes = [...]event.FieldType{
	1: event.TypeString,
	2: event.TypeLong,
	3: event.TypeInt,
	4: event.TypeDouble,
	5: event.TypeBool,
	6: event.TypeTimestamp,
}

// wireType returns t's code; 0, which readers refuse, for an unknown type.
func wireType(t event.FieldType) byte {
	for code, ft := range wireTypes {
		if code > 0 && ft == t {
			return byte(code)
		}
	}
	return 0
}

func fieldType(code byte) (event.FieldType, bool) {
	if code == 0 || int(code) >= len(wireTypes) {
		return 0, false
	}
	return wireTypes[code], true
}

func integerLike(t event.FieldType) bool {
	return t == event.TypeLong || t == event.TypeInt || t == event.TypeBool || t == event.TypeTimestamp
}
