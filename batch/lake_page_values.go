package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/parquet-go/bitpack"
)

// The value encodings of Parquet pages the lake's page decoder reads
// (lake_pages.go): bit unpacking, the RLE/bit-packed hybrid (levels and
// dictionary indices), DELTA_BINARY_PACKED, BYTE_STREAM_SPLIT and PLAIN.
// Every function checks its input's length before it reads: a corrupt
// page is an error, never a panic or a read past the page.

// padded returns src, or a copy of it with bitpack.PaddingInt64 zero bytes
// after it, so that the values of n·w bits at its start can be read with
// wide loads (bitpack.Unpack, bitsAt, wideBitsAt). It reports an error
// when src holds fewer than n·w bits.
func padded(src []byte, n int, w uint, scratch *[]byte) ([]byte, error) {
	need := (uint64(n)*uint64(w) + 7) / 8
	if uint64(len(src)) < need {
		return nil, fmt.Errorf("%d values of %d bits in %d bytes", n, w, len(src))
	}
	if uint64(len(src)) >= need+bitpack.PaddingInt64 {
		return src, nil
	}
	*scratch = grow((*scratch)[:0], int(need)+bitpack.PaddingInt64)
	clear((*scratch)[copy(*scratch, src[:need]):])
	return *scratch, nil
}

// unpackInt32 unpacks the n = len(dst) values of w bits (w ≤ 32) at the
// start of src.
func unpackInt32(dst []int32, src []byte, w uint, scratch *[]byte) error {
	if w == 0 {
		clear(dst)
		return nil
	}
	src, err := padded(src, len(dst), w, scratch)
	if err != nil {
		return err
	}
	bitpack.Unpack(dst, src, w)
	return nil
}

// hybridDecoder reads the RLE/bit-packed hybrid encoding (definition
// levels, dictionary indices).
type hybridDecoder struct {
	scratch []byte
}

// decode appends n values of width w (≤ 32) read from src to dst and
// returns the bytes it consumed. Each run is a varint header: an RLE run
// (low bit 0) repeats one value of ceil(w/8) bytes; a bit-packed run (low
// bit 1) holds groups of eight values, w bytes each; values past n in the
// last group are padding.
func (h *hybridDecoder) decode(dst []int32, src []byte, n int, w uint) ([]int32, int, error) {
	if w > 32 {
		return dst, 0, fmt.Errorf("bit width %d", w)
	}
	pos := 0
	for n > 0 {
		hdr, k := binary.Uvarint(src[pos:])
		if k <= 0 {
			return dst, 0, errors.New("hybrid run header truncated")
		}
		pos += k
		if hdr&1 == 0 {
			run := hdr >> 1
			vb := int(w+7) / 8
			if len(src)-pos < vb {
				return dst, 0, errors.New("RLE run truncated")
			}
			var v uint32
			for i := range vb {
				v |= uint32(src[pos+i]) << (8 * i)
			}
			pos += vb
			m := int(min(run, uint64(n)))
			start := len(dst)
			dst = grow(dst, m)
			for i := range dst[start:] {
				dst[start+i] = int32(v)
			}
			n -= m
			continue
		}
		groups := hdr >> 1
		if groups > 1<<28 || groups*uint64(w) > uint64(len(src)) {
			return dst, 0, fmt.Errorf("bit-packed run of %d groups", groups)
		}
		size := int(groups) * int(w)
		if len(src)-pos < size {
			return dst, 0, errors.New("bit-packed run truncated")
		}
		m := min(int(groups)*8, n)
		start := len(dst)
		dst = grow(dst, m)
		// The rest of src, not the run alone: the loads may read past
		// the run's last value (padded copies only near src's end).
		if err := unpackInt32(dst[start:], src[pos:], w, &h.scratch); err != nil {
			return dst, 0, err
		}
		pos += size
		n -= m
	}
	return dst, pos, nil
}

// grow extends s by n elements (their values unset).
func grow[T any](s []T, n int) []T {
	if cap(s)-len(s) < n {
		return append(s[:cap(s)], make([]T, len(s)+n-cap(s))...)
	}
	return s[:len(s)+n]
}

// deltaDecoder reads DELTA_BINARY_PACKED values: a header (block size,
// miniblocks per block, value count, first value), then blocks of a
// minimum delta and one bit width per miniblock, each miniblock's deltas
// above the minimum packed at its width.
type deltaDecoder struct {
	scratch []byte
}

// decode appends the n values at the start of src to dst; int32 values
// (narrow) wrap as 32-bit integers do. It returns the bytes consumed.
func (d *deltaDecoder) decode(dst []int64, src []byte, n int, narrow bool) ([]int64, int, error) {
	pos := 0
	uv := func() (uint64, error) {
		v, k := binary.Uvarint(src[pos:])
		if k <= 0 {
			return 0, errors.New("delta header truncated")
		}
		pos += k
		return v, nil
	}
	block, err := uv()
	if err != nil {
		return dst, 0, err
	}
	minis, err := uv()
	if err != nil {
		return dst, 0, err
	}
	total, err := uv()
	if err != nil {
		return dst, 0, err
	}
	zz, err := uv()
	if err != nil {
		return dst, 0, err
	}
	first := int64(zz>>1) ^ -int64(zz&1)
	if block == 0 || block%128 != 0 || minis == 0 || block%minis != 0 || (block/minis)%32 != 0 || block > 1<<20 {
		return dst, 0, fmt.Errorf("delta blocks of %d values in %d miniblocks", block, minis)
	}
	if total < uint64(n) {
		return dst, 0, fmt.Errorf("delta page holds %d values, %d wanted", total, n)
	}
	if n == 0 {
		return dst, pos, nil
	}
	per := int(block / minis)
	start := len(dst)
	dst = grow(dst, n)
	out := dst[start:]
	out[0] = first
	last, i := first, 1
	for i < n {
		zz, err := uv()
		if err != nil {
			return dst, 0, err
		}
		minDelta := int64(zz>>1) ^ -int64(zz&1)
		if len(src)-pos < int(minis) {
			return dst, 0, errors.New("delta miniblock widths truncated")
		}
		widths := src[pos : pos+int(minis)]
		pos += int(minis)
		for _, w := range widths {
			if i >= n {
				break
			}
			if w > 64 {
				return dst, 0, fmt.Errorf("delta bit width %d", w)
			}
			m := min(per, n-i)
			size := per * int(w) / 8
			if len(src)-pos < size && len(src)-pos < (m*int(w)+7)/8 {
				return dst, 0, errors.New("delta miniblock truncated")
			}
			last, err = d.miniblock(out[i:i+m], src[pos:], uint(w), minDelta, last)
			if err != nil {
				return dst, 0, err
			}
			pos += min(size, len(src)-pos)
			i += m
		}
	}
	if narrow {
		for j, v := range out {
			out[j] = int64(int32(v))
		}
	}
	return dst, pos, nil
}

// miniblock adds minDelta plus each packed delta to last, in turn, into
// out; it returns the last value.
func (d *deltaDecoder) miniblock(out []int64, src []byte, w uint, minDelta, last int64) (int64, error) {
	if w == 0 {
		for i := range out {
			last += minDelta
			out[i] = last
		}
		return last, nil
	}
	src, err := padded(src, len(out), w, &d.scratch)
	if err != nil {
		return last, err
	}
	bitpack.Unpack(out, src, w)
	for i, v := range out {
		last += minDelta + v
		out[i] = last
	}
	return last, nil
}

// plainInt64 appends n little-endian 8-byte values of src to dst.
func plainInt64(dst []int64, src []byte, n int) ([]int64, error) {
	if n < 0 || len(src)/8 < n {
		return dst, fmt.Errorf("%d plain values in %d bytes", n, len(src))
	}
	start := len(dst)
	dst = grow(dst, n)
	out := dst[start:]
	src = src[:8*n]
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(src[8*i:]))
	}
	return dst, nil
}

// plainInt32 appends n little-endian 4-byte values of src to dst.
func plainInt32(dst []int32, src []byte, n int) ([]int32, error) {
	if n < 0 || len(src)/4 < n {
		return dst, fmt.Errorf("%d plain values in %d bytes", n, len(src))
	}
	start := len(dst)
	dst = grow(dst, n)
	out := dst[start:]
	src = src[:4*n]
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(src[4*i:]))
	}
	return dst, nil
}

// plainDouble appends n little-endian doubles of src to dst.
func plainDouble(dst []float64, src []byte, n int) ([]float64, error) {
	if n < 0 || len(src)/8 < n {
		return dst, fmt.Errorf("%d plain values in %d bytes", n, len(src))
	}
	start := len(dst)
	dst = grow(dst, n)
	out := dst[start:]
	src = src[:8*n]
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:]))
	}
	return dst, nil
}
