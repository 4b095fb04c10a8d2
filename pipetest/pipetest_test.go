package pipetest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/sinks/all"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestExamples runs the pipeline tests shipped with every example pipeline.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../pipelines/examples/*.test.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example tests: %v", err)
	}
	var out bytes.Buffer
	failed, err := Run(context.Background(), files, all.Types(), &out)
	if err != nil || failed != 0 {
		t.Fatalf("failed %d, err %v:\n%s", failed, err, out.String())
	}
	t.Logf("\n%s", out.String())
}

func TestRunPassingFile(t *testing.T) {
	var out bytes.Buffer
	failed, err := Run(context.Background(), []string{"testdata/pass.test.yaml"}, all.Types(), &out)
	if err != nil || failed != 0 {
		t.Fatalf("failed %d, err %v:\n%s", failed, err, out.String())
	}
	if want := "ok   testdata/pass.test.yaml: 2 cases\n"; out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestRunTopicWithoutTimeField(t *testing.T) {
	var out bytes.Buffer
	if failed, err := Run(context.Background(), []string{"testdata/notime.test.yaml"}, all.Types(), &out); err != nil || failed != 0 {
		t.Fatalf("failed %d, err %v:\n%s", failed, err, out.String())
	}
}

func TestRunFailingFile(t *testing.T) {
	var out bytes.Buffer
	failed, err := Run(context.Background(), []string{"testdata/fail.test.yaml", "testdata/pass.test.yaml"}, all.Types(), &out)
	if err != nil {
		t.Fatal(err)
	}
	if failed != 2 {
		t.Errorf("failed %d, want 2", failed)
	}
	want := `--- FAIL: testdata/fail.test.yaml: case "wrong values" (line 9)
    step 2, expect per_page (line 14):
        late events: want 1, got 0
        row 1 (line 18; window_start 2026-01-01T00:00:00Z, page "/a"): column "clicks": want 3, got 2
        row 1 (line 18; window_start 2026-01-01T00:00:00Z, page "/a"): column "avg_ms": want 16 within 1%, got 15
        row 1 (line 18; window_start 2026-01-01T00:00:00Z, page "/a"): column "final": want true, got false
--- FAIL: testdata/fail.test.yaml: case "wrong row count" (line 19)
    step 2, expect per_page (line 23):
        want 0 rows, got 1:
            {"window_start":"2026-01-01T00:00:00Z","window_end":"2026-01-01T00:01:00Z","page":"/a","clicks":1,"users":1,"avg_ms":10,"layer":"speed","final":false}
FAIL testdata/fail.test.yaml: 2 of 3 cases failed
ok   testdata/pass.test.yaml: 2 cases
`
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestRunFormatErrors(t *testing.T) {
	dir := t.TempDir()
	pipeline, err := filepath.Abs("testdata/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, body, want string }{
		{"unknown field", "testdata/bad.test.yaml", `testdata/bad.test.yaml:6:41: topic "clicks" has no field "usr" (fields: ts, user, page, ms)`},
		{"unknown key", "pipeline: P\ncases:\n  - name: a\n    stepz: []\n", `:4:5: unknown key "stepz" (known: name, steps)`},
		{"two kinds", "pipeline: P\ncases:\n  - name: a\n    steps:\n      - { advance: 1s, watermark: 2026-01-01T00:00:00Z }\n", `:5:9: case "a" step 1: a step has exactly one of events, advance, watermark and expect`},
		{"unknown view", "pipeline: P\ncases:\n  - name: a\n    steps:\n      - expect: { view: nope, rows: [] }\n", `:5:25: unknown view "nope"`},
		{"unknown column", "pipeline: P\ncases:\n  - name: a\n    steps:\n      - expect: { view: per_page, rows: [ { pages: 1 } ] }\n", `:5:45: view "per_page" has no column "pages" (columns: window_start, window_end, page, clicks, users, avg_ms, final)`},
		{"bad value", "pipeline: P\ncases:\n  - name: a\n    steps:\n      - events: [ { ts: 2026-01-01T00:00:01Z, user: a, page: /a, ms: lots } ]\n", `:5:70: field "ms": "lots" is not an integer`},
		{"missing time", "pipeline: P\ncases:\n  - name: a\n    steps:\n      - events: [ { user: a, page: /a, ms: 1 } ]\n", `:5:19: field "ts" is required by topic "clicks"`},
		{"bad partition", "pipeline: P\ncases:\n  - name: a\n    steps:\n      - { partition: 2, events: [ { ts: 1, user: a, page: /a, ms: 1 } ] }\n", `:5:22: partition: "2" is not a partition of topic "clicks" (it has 2)`},
		{"no pipeline", "pipeline: nope.yaml\ncases:\n  - name: a\n    steps: [ { advance: 1s } ]\n", `:1:11: pipeline "nope.yaml":`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := c.body
			if !strings.HasSuffix(c.body, ".yaml") {
				path = filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".test.yaml")
				body := strings.Replace(c.body, "pipeline: P", "pipeline: "+pipeline, 1)
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			_, err := Run(context.Background(), []string{path}, all.Types(), &out)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("err %v, want a *FormatError", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err:\n  %v\nwant it to contain:\n  %s", err, c.want)
			}
		})
	}
}
