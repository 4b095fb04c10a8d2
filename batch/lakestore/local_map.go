//go:build unix

package lakestore

import (
	"errors"
	"fmt"
	"syscall"
)

// Map returns the object's bytes mapped read-only into memory, valid until
// Close: a reader of a large file then reads it where the page cache holds
// it, with no copy into a buffer of its own and no system call per read.
// Lake files are never changed in place (they are written under a temporary
// name and renamed, and a replaced or deleted file stays mapped whole), so
// the mapping holds the bytes Size says. A read error of the disk under a
// mapping is a fault (SIGBUS), not an error: a reader runs with
// debug.SetPanicOnFault to turn it into a panic it can recover from.
func (o *fileObject) Map() ([]byte, error) {
	if o.mapped != nil {
		return o.mapped, nil
	}
	if o.size <= 0 || int64(int(o.size)) != o.size {
		return nil, errors.New("lakestore: nothing to map")
	}
	b, err := syscall.Mmap(int(o.Fd()), 0, int(o.size), syscall.PROT_READ, syscall.MAP_SHARED|mapPopulate)
	if err != nil {
		return nil, fmt.Errorf("lakestore: mapping %s: %w", o.Name(), err)
	}
	o.mapped = b
	return b, nil
}

func (o *fileObject) unmap() error {
	if o.mapped == nil {
		return nil
	}
	err := syscall.Munmap(o.mapped)
	o.mapped = nil
	return err
}
