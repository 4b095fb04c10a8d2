package lakestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDirGroupSync: a group's Sync syncs the directories of many files
// (more than it syncs at once) and records every directory it made as
// durable; a directory gone before Sync fails it with an error naming the
// directory, and a Sync whose context is done fails with the context's
// error.
func TestDirGroupSync(t *testing.T) {
	ctx := context.Background()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(g Group, key string) {
		t.Helper()
		w, err := g.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(key)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	g := d.newGroup()
	const files = 3 * groupSyncs
	for i := range files {
		put(g, fmt.Sprintf("t/dt=2013-01-%02d/hour=%02d/f.parquet", 1+i/24, i%24))
	}
	if got := len(g.(*dirGroup).dirs); got != files+files/24+2 {
		// Each hour directory, each day directory, t and the root.
		t.Fatalf("%d directories to sync, want %d", got, files+files/24+2)
	}
	if err := g.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		dir := filepath.Join(d.root, "t", fmt.Sprintf("dt=2013-01-%02d", 1+i/24), fmt.Sprintf("hour=%02d", i%24))
		if _, ok := d.synced.Load(dir); !ok {
			t.Fatalf("%s is not recorded as durable", dir)
		}
	}

	g = d.newGroup()
	put(g, "t/dt=2013-02-01/hour=00/f.parquet")
	gone := filepath.Join(d.root, "t", "dt=2013-02-01")
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	err = g.Sync(ctx)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), gone) {
		t.Fatalf("Sync with a directory gone: %v, want an error naming %s", err, gone)
	}

	g = d.newGroup()
	put(g, "t/dt=2013-03-01/hour=00/f.parquet")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.Sync(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync with its context done: %v, want context.Canceled", err)
	}
}
