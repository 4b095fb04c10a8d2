//go:build !unix

package lakestore

import "errors"

// Map is not available here: readers read the file.
func (o *fileObject) Map() ([]byte, error) {
	return nil, errors.New("lakestore: no memory mapping on this system")
}

func (o *fileObject) unmap() error { return nil }
