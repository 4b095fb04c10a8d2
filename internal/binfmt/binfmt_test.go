package binfmt

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// sample writes one of every primitive; read checks them back in order.
func sample() []byte {
	b := []byte{0xAB}
	b = AppendUvarint(b, 300)
	b = AppendVarint(b, -3)
	b = AppendVarint(b, math.MinInt64)
	b = AppendUint32(b, 0xDEADBEEF)
	b = AppendUint64(b, 0x0102030405060708)
	b = AppendFloat64(b, -1.5)
	b = AppendString(b, "héllo")
	b = AppendBytes(b, []byte{1, 2, 3})
	b, at := ReserveUint32(b)
	b = append(b, "xyz"...)
	PutUint32(b, at, uint32(len(b)-at-4))
	return b
}

func TestRoundTrip(t *testing.T) {
	b := sample()
	r := NewReader(b, nil)
	if got := r.Byte(); got != 0xAB {
		t.Errorf("Byte = %#x", got)
	}
	if got := r.Uvarint(); got != 300 {
		t.Errorf("Uvarint = %d", got)
	}
	if got := r.Varint(); got != -3 {
		t.Errorf("Varint = %d", got)
	}
	if got := r.Varint(); got != math.MinInt64 {
		t.Errorf("Varint = %d", got)
	}
	if got := r.Uint32(); got != 0xDEADBEEF {
		t.Errorf("Uint32 = %#x", got)
	}
	if got := r.Uint64(); got != 0x0102030405060708 {
		t.Errorf("Uint64 = %#x", got)
	}
	if got := r.Float64(); got != -1.5 {
		t.Errorf("Float64 = %v", got)
	}
	if got := r.LenString(); got != "héllo" {
		t.Errorf("LenString = %q", got)
	}
	if got := r.LenBytes(); string(got) != "\x01\x02\x03" || cap(got) != 3 {
		t.Errorf("LenBytes = %v (cap %d), want [1 2 3] with cap 3", got, cap(got))
	}
	n := int(r.Uint32())
	if at := r.Skip(n); string(b[at:r.Offset()]) != "xyz" {
		t.Errorf("Skip(%d) from %d gave %q", n, at, b[at:r.Offset()])
	}
	if r.Err() != nil || r.Failed() || r.Remaining() != 0 || r.Offset() != len(b) {
		t.Errorf("after reading everything: err %v, remaining %d, offset %d of %d", r.Err(), r.Remaining(), r.Offset(), len(b))
	}
}

// TestTruncatedEverywhere cuts the sample at every length: each read either
// gives its value or fails, the failure names an offset inside the input,
// and nothing panics.
func TestTruncatedEverywhere(t *testing.T) {
	full := sample()
	sentinel := errors.New("test: corrupt")
	for n := range len(full) {
		r := NewReader(full[:n], sentinel)
		r.Byte()
		r.Uvarint()
		r.Varint()
		r.Varint()
		r.Uint32()
		r.Uint64()
		r.Float64()
		r.LenString()
		r.LenBytes()
		r.Skip(int(r.Uint32()))
		err := r.Err()
		if err == nil {
			t.Fatalf("cut at %d: no error", n)
		}
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, sentinel) {
			t.Fatalf("cut at %d: %v is not an *Error wrapping the sentinel", n, err)
		}
		if e.Offset < 0 || e.Offset > n {
			t.Fatalf("cut at %d: offset %d outside the input", n, e.Offset)
		}
		if !strings.Contains(err.Error(), "test: corrupt: ") || !strings.HasSuffix(err.Error(), "at byte "+itoa(e.Offset)) {
			t.Fatalf("cut at %d: message %q", n, err)
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestFailures(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		read func(r *Reader)
		at   int
		msg  string
	}{
		{"truncated fixed", []byte{1, 2, 3}, func(r *Reader) { r.Byte(); r.Uint64() }, 1, "truncated: 8 bytes needed, 2 left"},
		{"truncated varint", []byte{7, 0x80, 0x80}, func(r *Reader) { r.Byte(); r.Uvarint() }, 1, "truncated varint"},
		{"overlong varint", append([]byte{0}, strings.Repeat("\xff", 10)+"\x01"...), func(r *Reader) { r.Byte(); r.Varint() }, 1, "varint overflows 64 bits"},
		{"length past the end", []byte{9, 5, 'a', 'b'}, func(r *Reader) { r.Byte(); r.LenString() }, 1, "length 5 exceeds the 2 bytes left"},
		{"huge length", append([]byte{9}, AppendUvarint(nil, math.MaxUint64)...), func(r *Reader) { r.Byte(); r.Len() }, 1, "length 18446744073709551615 exceeds the 0 bytes left"},
		{"count past the end", []byte{3, 0, 0, 0, 0, 0}, func(r *Reader) { r.Count(2) }, 0, "count 3 exceeds what the 5 bytes left can hold"},
		{"negative skip", []byte{1, 2}, func(r *Reader) { r.Skip(-1) }, 0, "truncated: 1 bytes needed, 2 left"},
		{"failf", []byte{1, 2, 3}, func(r *Reader) { r.Byte(); r.Failf("type %d unknown", 2) }, 1, "type 2 unknown"},
	} {
		r := NewReader(c.in, nil)
		c.read(&r)
		err := r.Err()
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want an *Error wrapping ErrMalformed", c.name, err)
			continue
		}
		if e.Offset != c.at || e.Msg != c.msg {
			t.Errorf("%s: %q at %d, want %q at %d", c.name, e.Msg, e.Offset, c.msg, c.at)
		}
	}
}

// TestSticky: after the first failure every read returns zero and the
// error stays the first one.
func TestSticky(t *testing.T) {
	r := NewReader([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, nil)
	r.Byte()
	r.Uint64() // 9 bytes left: fine
	r.Uint32() // 1 left: fails at 9
	first := r.Err()
	if got := r.Byte(); got != 0 {
		t.Errorf("Byte after failure = %d", got)
	}
	if got := r.Uvarint(); got != 0 {
		t.Errorf("Uvarint after failure = %d", got)
	}
	if got := r.LenString(); got != "" {
		t.Errorf("LenString after failure = %q", got)
	}
	r.Failf("later")
	if r.Err() != first || !strings.Contains(first.Error(), "at byte 9") {
		t.Errorf("error changed to %v (first %v)", r.Err(), first)
	}
	if r.Remaining() != 0 {
		t.Errorf("remaining %d after failure", r.Remaining())
	}
}

func TestZeroReader(t *testing.T) {
	var r Reader
	if r.Remaining() != 0 || r.Err() != nil {
		t.Fatalf("zero Reader: %d bytes left, err %v", r.Remaining(), r.Err())
	}
	r.Byte()
	if !r.Failed() {
		t.Fatal("reading a byte of nothing did not fail")
	}
}

func TestLenStringView(t *testing.T) {
	b := AppendString(nil, "abc")
	r := NewReader(b, nil)
	if s := r.LenStringView(); s != "abc" {
		t.Fatalf("LenStringView = %q", s)
	}
	r = NewReader(AppendString(nil, ""), nil)
	if s := r.LenStringView(); s != "" || r.Err() != nil {
		t.Fatalf("empty LenStringView = %q, %v", s, r.Err())
	}
}

func BenchmarkRead(b *testing.B) {
	var buf []byte
	for i := range 1000 {
		buf = AppendVarint(buf, int64(i%50))
		buf = AppendString(buf, "host-0001")
		buf = AppendFloat64(buf, float64(i))
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(buf, nil)
		for r.Remaining() > 0 {
			r.Varint()
			r.Skip(r.Len())
			r.Float64()
		}
		if r.Err() != nil {
			b.Fatal(r.Err())
		}
	}
}
