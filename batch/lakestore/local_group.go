package lakestore

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
)

// groupSyncs is how many directory fsyncs a group's Sync has under way at
// once. A backfill's flush leaves thousands of directories to sync; one
// after another, each waits for the disk alone and the flush (the lake
// writer's only one) waits for them all.
const groupSyncs = 16

// dirGroup is the Group of a Dir. A file committed through it is written,
// fsynced and linked into place as by Dir's own writers, but the fsync of
// the directory that makes its entry durable waits for Sync, which syncs
// each directory once: a backfill's flush puts thousands of files in a
// few thousand hour directories of a few hundred days, and syncing the
// day directory of every new hour directory (as a lone write must) was a
// third of those fsyncs.
type dirGroup struct {
	d  *Dir
	mu sync.Mutex
	// dirs are the directories whose entries Sync makes durable; made are
	// the directories made for the group's files, durable entries of
	// their parents once dirs are synced.
	dirs map[string]struct{}
	made []string
}

func (d *Dir) newGroup() Group { return &dirGroup{d: d, dirs: map[string]struct{}{}} }

func (g *dirGroup) Create(ctx context.Context, key string) (Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return g.d.create(key, g)
}

// add records a committed file's directories.
func (g *dirGroup) add(dirs, made []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, dir := range dirs {
		g.dirs[dir] = struct{}{}
	}
	g.made = append(g.made, made...)
}

func (g *dirGroup) Sync(ctx context.Context) error {
	g.mu.Lock()
	dirs := make([]string, 0, len(g.dirs))
	for dir := range g.dirs {
		dirs = append(dirs, dir)
	}
	made := g.made
	clear(g.dirs)
	g.made = nil
	g.mu.Unlock()
	if err := syncDirsConcurrently(ctx, dirs); err != nil {
		return err
	}
	for _, m := range made {
		g.d.synced.Store(m, struct{}{})
	}
	return nil
}

// syncDirsConcurrently syncs dirs, groupSyncs at a time, and returns the
// first error, after which no new sync starts (a failed Sync is retried
// whole).
func syncDirsConcurrently(ctx context.Context, dirs []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(groupSyncs)
	for _, dir := range dirs {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := syncDir(dir); err != nil {
				return fmt.Errorf("lakestore: syncing %s: %w", dir, err)
			}
			return nil
		})
	}
	return g.Wait()
}
