package batch

import (
	"math/bits"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// readPool is the Arrow allocator of one file scan. The streaming reader
// allocates the same buffers for every batch and releases the previous
// batch's when it reads the next, so recycling them leaves the scan
// allocating about one batch's worth of memory instead of the file's.
//
// Recycled memory is reused while the scan runs, so nothing may keep a
// pointer into an Arrow buffer past its batch: scanParquet copies every
// string it hands out (see ownStrings). Buffers are zeroed and 64-byte
// aligned, as memory.GoAllocator's are. It is safe for concurrent use.
type readPool struct {
	mu   sync.Mutex
	free [48][][]byte // by log2 of the capacity
}

var _ memory.Allocator = (*readPool)(nil)

const (
	readPoolAlign   = 64
	readPoolMinLog2 = 6 // 64 bytes
)

func poolClass(size int) int {
	if size <= 1<<readPoolMinLog2 {
		return readPoolMinLog2
	}
	return bits.Len(uint(size - 1))
}

// Allocate returns a zeroed buffer of size bytes.
func (p *readPool) Allocate(size int) []byte {
	if size < 0 {
		panic("readPool: negative size")
	}
	c := poolClass(size)
	if c >= len(p.free) {
		return memory.DefaultAllocator.Allocate(size)
	}
	p.mu.Lock()
	var b []byte
	if n := len(p.free[c]); n > 0 {
		b = p.free[c][n-1]
		p.free[c][n-1] = nil
		p.free[c] = p.free[c][:n-1]
	}
	p.mu.Unlock()
	if b != nil {
		clear(b[:cap(b)])
		return b[:size]
	}
	capacity := 1 << c
	raw := make([]byte, capacity+readPoolAlign)
	off := 0
	if r := uintptr(unsafe.Pointer(unsafe.SliceData(raw))) % readPoolAlign; r != 0 {
		off = readPoolAlign - int(r)
	}
	return raw[off : off+size : off+capacity]
}

// Reallocate returns a buffer of size bytes holding b's first bytes; b
// must not be used afterwards.
func (p *readPool) Reallocate(size int, b []byte) []byte {
	if size == len(b) {
		return b
	}
	nb := p.Allocate(size)
	copy(nb, b)
	p.Free(b)
	return nb
}

// Free takes back a buffer Allocate returned; others are left to the
// garbage collector.
func (p *readPool) Free(b []byte) {
	c := cap(b)
	if c < 1<<readPoolMinLog2 || c&(c-1) != 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%readPoolAlign != 0 {
		return
	}
	k := bits.Len(uint(c)) - 1
	if k >= len(p.free) {
		return
	}
	p.mu.Lock()
	p.free[k] = append(p.free[k], b[:0])
	p.mu.Unlock()
}
