package pipetest

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/lambdaflow/lambdaflow/sinks/all"
)

// FuzzLoadTestFile parses pipeline test files beside the quickstart
// pipeline (as p.yaml): no panic, and a refusal always says why.
func FuzzLoadTestFile(f *testing.F) {
	pipeline, err := os.ReadFile("../pipelines/examples/quickstart.yaml")
	if err != nil {
		f.Fatal(err)
	}
	seeds, _ := filepath.Glob("testdata/*.test.yaml")
	examples, _ := filepath.Glob("../pipelines/examples/quickstart.test.yaml")
	for _, s := range append(seeds, examples...) {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(regexp.MustCompile(`(?m)^pipeline: .*$`).ReplaceAll(data, []byte("pipeline: p.yaml")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "p.yaml"), pipeline, 0o644)
		path := filepath.Join(dir, "x.test.yaml")
		os.WriteFile(path, data, 0o644)
		if _, err := load(path, all.Types()); err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}
