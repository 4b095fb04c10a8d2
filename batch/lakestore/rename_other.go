//go:build !linux

package lakestore

// renameNoReplace moves from to to unless to exists (an error wrapping
// fs.ErrExist then): a hard link, which fails if to exists, then the
// removal of from.
func renameNoReplace(from, to string) error { return linkRemove(from, to) }
