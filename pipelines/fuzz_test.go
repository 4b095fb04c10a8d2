package pipelines_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// FuzzLoad checks that no input makes Parse panic, and that what it returns
// is consistent: a pipeline with no error, or sorted positioned problems.
// Plain `go test` runs only the seeds; fuzz with
//
//	go test -run '^$' -fuzz FuzzLoad -fuzztime 60s ./pipelines/
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("examples/*.yaml")
	more, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range append(files, more...) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"version: 1\nname: p\ntopics: [{name: m, schema: {ts: timestamp}}]\n",
		"a: &a\n  <<: *a\n",
		"a: &a [*a]\n",
		"topics: [&t {name: m, schema: {x: {type: long, required: false}}}, *t, <<: *t]\n",
		"views: [{aggregates: {a: 'quantile(x, NaN)', b: 'sum(,)'}}]\n",
		"data_dir: ${A:${B}}\n",
		"version: !!binary aGVsbG8=\n",
	} {
		f.Add([]byte(s))
	}
	env := mapEnv(map[string]string{"A": "1", "WAREHOUSE_DSN": "postgres://x"})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := pipelines.Parse("f.yaml", data, env, sinkTypes)
		if err == nil {
			if p == nil || p.File != "f.yaml" || p.Version != 1 || len(p.Topics) == 0 {
				t.Fatalf("valid pipeline %+v", p)
			}
			for _, v := range p.Views {
				if !slices.ContainsFunc(p.Topics, func(tp pipelines.Topic) bool { return tp.Name == v.From }) {
					t.Fatalf("view %q reads unknown topic %q", v.Name, v.From)
				}
			}
			return
		}
		var errs pipelines.Errors
		if p != nil || !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("got %v, %T %v", p, err, err)
		}
		if !slices.IsSortedFunc(errs, func(a, b *pipelines.Error) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Col - b.Col
		}) {
			t.Fatalf("errors not sorted:\n%v", err)
		}
		for _, e := range errs {
			if e.Msg == "" || e.File != "f.yaml" || e.Line < 0 || e.Col < 0 {
				t.Fatalf("malformed error %+v", e)
			}
		}
	})
}
