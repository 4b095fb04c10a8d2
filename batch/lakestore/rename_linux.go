package lakestore

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

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

// openAnon opens a new file without a name in dir (O_TMPFILE): it
// vanishes when closed or when the process dies, unless linkAnon gave it
// a name first.
func openAnon(dir string) (*os.File, error) {
	return os.OpenFile(dir, unix.O_TMPFILE|os.O_WRONLY, 0o644)
}

// linkAnon gives the anonymous file f the name to, unless to exists (an
// error wrapping fs.ErrExist then): atomic, create-only.
func linkAnon(f *os.File, to string) error {
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, to, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return &os.LinkError{Op: "linkat", Old: f.Name(), New: to, Err: err}
	}
	return nil
}

// anonWorks tells whether files can be written anonymously in dir and
// linked into place (O_TMPFILE and /proc/self/fd): it writes, names and
// removes one.
func anonWorks(dir string) bool {
	f, err := openAnon(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	name := filepath.Join(dir, TempName("probe"))
	if linkAnon(f, name) != nil {
		return false
	}
	return os.Remove(name) == nil
}
