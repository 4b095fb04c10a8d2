package batch

import (
	"context"
	"fmt"
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
// on object storage (lake.url) has no local paths: it is an error.
func LakeFiles(p *pipelines.Pipeline, topic string) ([]string, error) {
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
	out := make([]string, 0, m.fileCount())
	for f := range m.all() {
		out = append(out, filepath.Join(dir, filepath.FromSlash(f.Path)))
	}
	return out, nil
}
