//go:build !linux

package lakestore

import (
	"errors"
	"os"
)

// renameNoReplace moves from to to unless to exists (an error wrapping
// fs.ErrExist then): a hard link, which fails if to exists, then the
// removal of from.
func renameNoReplace(from, to string) error { return linkRemove(from, to) }

// Anonymous files (O_TMPFILE) are Linux's: elsewhere files are written
// under a temporary name.
func anonWorks(string) bool { return false }

func openAnon(string) (*os.File, error) { return nil, errors.ErrUnsupported }

func linkAnon(*os.File, string) error { return errors.ErrUnsupported }
