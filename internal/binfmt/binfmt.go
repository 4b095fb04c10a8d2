// Package binfmt reads and writes the primitives of Lambdaflow's persisted
// binary formats: the log entry (docs/log-format.md), the speed-layer
// checkpoint (docs/checkpoint-format.md) and the aggregate state inside it.
// Those formats are specified in their own documents and implemented by
// their own packages; this package only knows how to put one integer, one
// length-prefixed string or one fixed-width word after another, and how to
// take them off again without ever reading past the end.
//
// Encodings, fixed by the formats that use them:
//   - uvarint, varint: Go encoding/binary (Protocol Buffers) varints, varint
//     zig-zag encoded;
//   - fixed-width integers and float64 bits: little-endian;
//   - length-prefixed bytes and strings: a uvarint length, then the bytes.
//
// Writing is a set of Append functions in the style of encoding/binary.
// Reading is a Reader whose first failure sticks: it records the offset and
// what went wrong, and every later read returns zero, so a decoder reads a
// run of values and checks Err once. Nothing here allocates on the success
// path except LenString, which copies.
//
// The package imports only the standard library, so every layer may use it.
package binfmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// ErrMalformed is what a Reader's error wraps when the Reader was made
// without a sentinel of its own.
var ErrMalformed = errors.New("malformed binary encoding")

// Error is a Reader's failure: what was wrong and at which byte offset of
// the Reader's input. It wraps the sentinel the Reader was made with.
type Error struct {
	Offset int
	Msg    string
	base   error
}

func (e *Error) Error() string {
	if e.base == nil {
		return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset)
	}
	return fmt.Sprintf("%v: %s at byte %d", e.base, e.Msg, e.Offset)
}

// Unwrap returns the Reader's sentinel (ErrMalformed if it had none).
func (e *Error) Unwrap() error {
	if e.base == nil {
		return ErrMalformed
	}
	return e.base
}

// Reader reads primitives from a byte slice with bounds checks. The zero
// Reader reads nothing. A Reader is a small value: keep it on the stack
// (NewReader returns it by value) and pass a pointer to helpers. It is not
// safe for concurrent use.
//
// The fixed-width reads are small enough to inline into a decoder's loop, so
// a failure only records where it happened; Err builds the error.
type Reader struct {
	buf  []byte
	pos  int
	bad  int    // 1 + offset of the first failure; 0: none
	need int    // for a truncation: the bytes the read needed; else 0
	msg  string // for other failures: what was wrong
	err  error  // built by Err
	base error
}

// NewReader returns a Reader of b from offset 0. Its errors wrap base (nil:
// ErrMalformed), so a format's decoder can give every failure its own
// sentinel, e.g. ErrCorruptEntry.
func NewReader(b []byte, base error) Reader {
	return Reader{buf: b, base: base}
}

// Failed reports whether a read has failed; it is Err() != nil without
// building the error, for a decoder's inner loop.
func (r *Reader) Failed() bool { return r.bad != 0 }

// Err returns the first failure, an *Error wrapping the Reader's sentinel,
// or nil.
func (r *Reader) Err() error {
	if r.bad == 0 {
		return nil
	}
	if r.err == nil {
		at := r.bad - 1
		msg := r.msg
		if r.need > 0 {
			msg = fmt.Sprintf("truncated: %d bytes needed, %d left", r.need, len(r.buf)-at)
		}
		r.err = &Error{Offset: at, Msg: msg, base: r.base}
	}
	return r.err
}

// Offset is the position of the next read in the input (its length after a
// failure).
func (r *Reader) Offset() int { return r.pos }

// Remaining is the number of bytes not yet read (0 after a failure).
func (r *Reader) Remaining() int { return len(r.buf) - r.pos }

// Failf records a failure at the current offset, unless one is already
// recorded, and makes every later read return zero. Decoders use it for
// bytes that are well formed but mean something impossible (an unknown
// type code, a count that disagrees with another).
func (r *Reader) Failf(format string, args ...any) {
	r.fail(r.pos, fmt.Sprintf(format, args...))
}

// fail records msg at offset at (the start of the value that failed).
//
//go:noinline
func (r *Reader) fail(at int, msg string) {
	if r.bad == 0 {
		r.bad, r.msg = at+1, msg
	}
	r.pos = len(r.buf)
}

// truncated records a read of n bytes that the input cannot satisfy, and
// moves to the end of the input so that every later read fails at once.
func (r *Reader) truncated(n int) {
	if r.bad == 0 {
		r.bad, r.need = r.pos+1, max(n, 1)
	}
	r.pos = len(r.buf)
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if p := r.pos; p < len(r.buf) {
		r.pos = p + 1
		return r.buf[p]
	}
	r.truncated(1)
	return 0
}

// Uint32 reads four bytes, little-endian.
func (r *Reader) Uint32() uint32 {
	if p := r.pos; p <= len(r.buf)-4 {
		r.pos = p + 4
		return binary.LittleEndian.Uint32(r.buf[p:])
	}
	r.truncated(4)
	return 0
}

// Uint64 reads eight bytes, little-endian.
func (r *Reader) Uint64() uint64 {
	if p := r.pos; p <= len(r.buf)-8 {
		r.pos = p + 8
		return binary.LittleEndian.Uint64(r.buf[p:])
	}
	r.truncated(8)
	return 0
}

// Float64 reads the eight little-endian bytes of an IEEE 754 double.
func (r *Reader) Float64() float64 { return math.Float64frombits(r.Uint64()) }

// Bytes reads n bytes. The result aliases the input (capacity capped at its
// length, so appending to it cannot overwrite what follows).
func (r *Reader) Bytes(n int) []byte {
	p := r.pos
	if uint(n) <= uint(len(r.buf)-p) {
		r.pos = p + n
		return r.buf[p : p+n : p+n]
	}
	r.truncated(n)
	return nil
}

// Skip advances n bytes and returns the offset it started at, so that a
// decoder holding the input as one string can cut values out of it:
// s[r.Skip(n):r.Offset()].
func (r *Reader) Skip(n int) int {
	p := r.pos
	if uint(n) <= uint(len(r.buf)-p) {
		r.pos = p + n
		return p
	}
	r.truncated(n)
	return r.pos
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	p := r.pos
	// One-byte varints (lengths, counts, small values) are the common case.
	if p < len(r.buf) && r.buf[p] < 0x80 {
		r.pos = p + 1
		return uint64(r.buf[p])
	}
	v, n := binary.Uvarint(r.buf[p:])
	if n <= 0 {
		r.badVarint(n)
		return 0
	}
	r.pos = p + n
	return v
}

// Varint reads a zig-zag encoded signed varint.
func (r *Reader) Varint() int64 {
	p := r.pos
	if p < len(r.buf) && r.buf[p] < 0x80 {
		r.pos = p + 1
		c := int64(r.buf[p])
		return c>>1 ^ -(c & 1)
	}
	v, n := binary.Varint(r.buf[p:])
	if n <= 0 {
		r.badVarint(n)
		return 0
	}
	r.pos = p + n
	return v
}

// badVarint records a varint that encoding/binary refused with n.
func (r *Reader) badVarint(n int) {
	if n == 0 {
		r.fail(r.pos, "truncated varint")
	} else {
		r.fail(r.pos, "varint overflows 64 bits")
	}
}

// Len reads a uvarint length prefix and checks that that many bytes follow.
func (r *Reader) Len() int {
	p := r.pos
	// Short strings are the common case: one byte, no call.
	if p < len(r.buf) {
		if n := int(r.buf[p]); n < 0x80 && n < len(r.buf)-p {
			r.pos = p + 1
			return n
		}
	}
	return r.lenSlow()
}

//go:noinline
func (r *Reader) lenSlow() int {
	at := r.pos
	n := r.Uvarint()
	if n <= uint64(len(r.buf)-r.pos) {
		return int(n)
	}
	r.fail(at, fmt.Sprintf("length %d exceeds the %d bytes left", n, len(r.buf)-r.pos))
	return 0
}

// Count reads a uvarint count of items that take at least minSize (≥ 1)
// bytes each, refusing counts the remaining bytes cannot hold, so that a
// corrupt count never makes a decoder allocate without limit.
func (r *Reader) Count(minSize int) int {
	at := r.pos
	n := r.Uvarint()
	if n <= uint64((len(r.buf)-r.pos)/max(minSize, 1)) {
		return int(n)
	}
	r.fail(at, fmt.Sprintf("count %d exceeds what the %d bytes left can hold", n, len(r.buf)-r.pos))
	return 0
}

// LenBytes reads length-prefixed bytes, aliasing the input.
func (r *Reader) LenBytes() []byte { return r.Bytes(r.Len()) }

// LenString reads a length-prefixed string, copied.
func (r *Reader) LenString() string { return string(r.LenBytes()) }

// LenStringView reads a length-prefixed string without copying: the result
// aliases the input, so it must not outlive it or see it change. For
// decoders that look at a string and keep a copy only when they need one.
func (r *Reader) LenStringView() string {
	b := r.LenBytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// AppendUvarint appends v as an unsigned varint.
func AppendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// AppendVarint appends v as a zig-zag signed varint.
func AppendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

// AppendUint32 appends v as four little-endian bytes.
func AppendUint32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

// AppendUint64 appends v as eight little-endian bytes.
func AppendUint64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// AppendFloat64 appends the IEEE 754 bits of f as eight little-endian bytes.
func AppendFloat64(b []byte, f float64) []byte { return AppendUint64(b, math.Float64bits(f)) }

// AppendString appends s with a uvarint length prefix.
func AppendString(b []byte, s string) []byte {
	return append(AppendUvarint(b, uint64(len(s))), s...)
}

// AppendBytes appends p with a uvarint length prefix.
func AppendBytes(b []byte, p []byte) []byte {
	return append(AppendUvarint(b, uint64(len(p))), p...)
}

// ReserveUint32 appends four zero bytes for a value known only later (the
// length of what follows, say) and returns where they are; PutUint32 fills
// them in. This writes a length-prefixed value once instead of twice.
func ReserveUint32(b []byte) ([]byte, int) { return append(b, 0, 0, 0, 0), len(b) }

// PutUint32 writes v little-endian at b[at:at+4].
func PutUint32(b []byte, at int, v uint32) { binary.LittleEndian.PutUint32(b[at:], v) }
