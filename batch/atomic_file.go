package batch

import (
	"context"
	"path/filepath"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
)

// writeFileAtomic replaces path by data durably, as the lake's local
// store writes its objects: temporary file, fsync, rename, fsync of the
// directory. Readers see the old or the new file, never a mix.
func writeFileAtomic(path string, data []byte) error {
	dir, err := lakestore.NewDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	return dir.WriteFile(context.Background(), filepath.Base(path), data, false)
}
