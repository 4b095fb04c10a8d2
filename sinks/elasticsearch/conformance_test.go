package elasticsearch

import (
	"context"
	"math"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

// TestConformance runs the shared sink suite against the real OpenSearch.
func TestConformance(t *testing.T) {
	u := sinktest.Service(t, "LF_TEST_OPENSEARCH_URL", "opensearch")
	sinktest.Run(t, sinktest.Harness{
		Sink: func(t *testing.T) pipelines.Sink {
			prefix := testPrefix()
			t.Cleanup(func() {
				s, err := New(context.Background(), &pipelines.Sink{Name: "cleanup", URLs: []string{u}}, nil)
				if err != nil {
					t.Log(err)
					return
				}
				defer s.Close()
				cleanupPrefix(t, s.client, prefix)
			})
			return pipelines.Sink{Type: "elasticsearch", URLs: []string{u}, Index: prefix + "{name}"}
		},
		NewTarget: func(t *testing.T, _ *pipelines.Pipeline, spec *pipelines.Sink) sinks.Target {
			s, err := New(context.Background(), spec, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		ReadAll: func(t *testing.T, target sinks.Target, _ *pipelines.Sink, table sinks.Table) []map[string]any {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			docs, err := readAll(ctx, target.(*Sink), table)
			if err != nil {
				t.Fatalf("reading %s: %v", table.Name, err)
			}
			out := make([]map[string]any, len(docs))
			for i, d := range docs {
				out[i] = d.Values
			}
			return out
		},
		// OpenSearch refuses a document whose integer field is out of
		// range (mapper_parsing_exception).
		Poison: func(*testing.T) (pipelines.FieldType, pipelines.Value) {
			return pipelines.TypeInt, pipelines.Value{I: math.MaxInt32 + 1, Valid: true}
		},
		Outage:  outage(u),
		Timeout: 3 * time.Minute,
	})
}

// outage stops and restarts OpenSearch with deploy/dev/opensearch.sh, when
// that script runs the OpenSearch the tests use (it does for make test and
// CI); nil otherwise, which skips the case.
func outage(u string) func(t *testing.T) func() {
	const script = "../../deploy/dev/opensearch.sh"
	pu, err := url.Parse(u)
	if err != nil || pu.Host != "127.0.0.1:"+envOr("LF_OPENSEARCH_PORT", "9200") || exec.Command(script, "status").Run() != nil {
		return nil
	}
	return func(t *testing.T) func() {
		if out, err := exec.Command(script, "stop").CombinedOutput(); err != nil {
			t.Fatalf("%s stop: %v\n%s", script, err, out)
		}
		return func() {
			if out, err := exec.Command(script, "start").CombinedOutput(); err != nil {
				t.Fatalf("%s start: %v\n%s", script, err, out)
			}
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
