package elasticsearch

import (
	"context"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
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
				s, err := New(context.Background(), &pipelines.Sink{Name: "cleanup", Config: &Config{URLs: []string{u}}}, nil)
				if err != nil {
					t.Log(err)
					return
				}
				defer s.Close()
				cleanupPrefix(t, s.client, prefix)
			})
			return pipelines.Sink{Type: "elasticsearch", Config: &Config{URLs: []string{u}, Index: prefix + "{name}"}}
		},
		NewTarget: sinktest.Opener(Kind()),
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
		Poison: func(*testing.T) (event.FieldType, event.Value) {
			return event.TypeInt, event.Value{I: math.MaxInt32 + 1, Valid: true}
		},
		Outage:  sinktest.DevOutage("../../deploy/dev/opensearch.sh", urlHost(u), "LF_OPENSEARCH_PORT", "9200"),
		Timeout: 3 * time.Minute,
	})
}

// urlHost is the host:port of u, "" when u is not a URL.
func urlHost(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return pu.Host
}
