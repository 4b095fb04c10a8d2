package batch

import (
	"path/filepath"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// LakeDir is the root of p's lake: lake.dir, or <data_dir>/lake.
func LakeDir(p *pipelines.Pipeline) string {
	if p.Lake.Dir != "" {
		return p.Lake.Dir
	}
	return filepath.Join(p.DataDir, "lake")
}

// LakeFiles lists the live Parquet files of topic's lake, as paths under
// LakeDir(p), from its committed manifest: together they hold every event
// the lake holds, each exactly once. It reads the manifest from disk, so any
// process that sees the lake directory may call it while the batch layer
// writes. Files that compaction replaces afterwards stay on disk for the
// grace period (ten minutes), long enough for a reader that lists and then
// reads at once. An empty lake lists no file.
func LakeFiles(p *pipelines.Pipeline, topic string) ([]string, error) {
	dir := filepath.Join(LakeDir(p), topic)
	m, err := readManifest(dir, topic)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(m.Files))
	for _, f := range m.Files {
		out = append(out, filepath.Join(dir, filepath.FromSlash(f.Path)))
	}
	return out, nil
}
