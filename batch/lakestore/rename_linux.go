package lakestore

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace moves from to to unless to exists (an error wrapping
// fs.ErrExist then): one renameat2(RENAME_NOREPLACE), atomic. File
// systems without it get a hard link (which fails if to exists) and the
// removal of from.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return linkRemove(from, to)
	}
	return &os.LinkError{Op: "renameat2", Old: from, New: to, Err: err}
}
