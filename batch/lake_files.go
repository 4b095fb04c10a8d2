package batch

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// LakeDir is the root of p's lake in a directory: lake.dir, or
// <data_dir>/lake.
func LakeDir(p *pipelines.Pipeline) string {
	if p.Lake.Dir != "" {
		return p.Lake.Dir
	}
	return filepath.Join(p.DataDir, "lake")
}

// LakeFiles lists the live Parquet files of topic's lake, as paths under
// LakeDir(p), from its committed manifest: together they hold every event
// the lake holds, each exactly once. It reads the manifest log from
// storage, so any process that sees the lake directory may call it while
// the batch layer writes. Files that compaction replaces afterwards stay
// on disk for the grace period (ten minutes), long enough for a reader
// that lists and then reads at once. An empty lake lists no file. A lake
// on object storage (lake.url) has no local paths: it is an error (see
// LakeCopies). Only files whose period overlaps [from, to) are listed (a
// zero bound is open).
func LakeFiles(p *pipelines.Pipeline, topic string, from, to time.Time) ([]string, error) {
	if p.Lake.URL != "" {
		return nil, fmt.Errorf("lake: topic %s: the lake is on object storage (lake.url %s); its files are read through the batch layer only", topic, p.Lake.URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := OpenStore(ctx, p)
	if err != nil {
		return nil, err
	}
	m, err := readManifest(ctx, st, topic)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(LakeDir(p), topic)
	files := filesBetween(m, from, to)
	out := make([]string, 0, len(files))
	for _, f := range files {
		out = append(out, filepath.Join(dir, filepath.FromSlash(f.Path)))
	}
	return out, nil
}

// filesBetween returns m's live files whose period overlaps [from, to), a
// zero bound being open.
func filesBetween(m *manifest, from, to time.Time) []fileEntry {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !from.IsZero() {
		lo = from.UnixMicro()
	}
	if !to.IsZero() {
		hi = to.UnixMicro()
	}
	return m.FilesIn(lo, hi)
}
