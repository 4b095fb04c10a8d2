package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
	"github.com/lambdaflow/lambdaflow/sinks/sinktest"
)

// testURL returns the OpenSearch the tests run against, from
// LF_TEST_OPENSEARCH_URL (sinktest.Service).
func testURL(tb testing.TB) string {
	tb.Helper()
	return sinktest.Service(tb, "LF_TEST_OPENSEARCH_URL", "opensearch")
}

// testPrefix is a fresh index name prefix, so tests never see each other's
// indices or templates.
func testPrefix() string { return sinktest.UniqueName("lft_") + "_" }

// newTestSink returns a sink whose index pattern is "<fresh prefix>" +
// pattern (default "{name}"); its indices and templates are deleted after
// the test.
func newTestSink(tb testing.TB, pattern string, edit func(*pipelines.Sink)) *Sink {
	tb.Helper()
	if pattern == "" {
		pattern = "{name}"
	}
	prefix := testPrefix()
	spec := &pipelines.Sink{Name: "es_test", Type: "elasticsearch", Config: &Config{URLs: []string{testURL(tb)}, Index: prefix + pattern}, Create: true}
	if edit != nil {
		edit(spec)
	}
	s, err := New(context.Background(), spec, sinktest.Logger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cleanupPrefix(tb, s.client, prefix)
		_ = s.Close()
	})
	return s
}

// cleanupPrefix deletes the indices and index templates named prefix*.
func cleanupPrefix(tb testing.TB, c *elastic.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.DeleteIndex(prefix + "*").Do(ctx); err != nil && !elastic.IsNotFound(err) {
		tb.Logf("delete indices %s*: %v", prefix, err)
	}
	resp, err := c.PerformRequest(ctx, elastic.PerformRequestOptions{Method: http.MethodGet, Path: "/_index_template/" + prefix + "*"})
	if err != nil {
		if !elastic.IsNotFound(err) {
			tb.Logf("list templates %s*: %v", prefix, err)
		}
		return
	}
	var list struct {
		IndexTemplates []struct{ Name string } `json:"index_templates"`
	}
	if err := json.Unmarshal(resp.Body, &list); err != nil {
		tb.Logf("list templates: %v", err)
		return
	}
	for _, t := range list.IndexTemplates {
		if _, err := c.IndexDeleteIndexTemplate(t.Name).Do(ctx); err != nil {
			tb.Logf("delete template %s: %v", t.Name, err)
		}
	}
}

// doc is one document as read back.
type readDoc struct {
	Index  string
	ID     string
	Values map[string]any // column name to string, int64, float64, bool, time.Time; nil when null
}

// readAll refreshes and reads every document of t's indices; values are
// decoded by the column's type from _source, and a topic's _id column comes
// from the document _id.
func readAll(ctx context.Context, s *Sink, t sinks.Table) ([]readDoc, error) {
	pattern := s.pattern.wildcard(t.Name)
	if _, err := s.client.Refresh(pattern).Do(ctx); err != nil && !elastic.IsNotFound(err) {
		return nil, fmt.Errorf("refresh %s: %w", pattern, err)
	}
	res, err := s.client.Search(pattern).IgnoreUnavailable(true).AllowNoIndices(true).
		Query(elastic.NewMatchAllQuery()).Size(10000).Do(ctx)
	if err != nil {
		if elastic.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("search %s: %w", pattern, err)
	}
	var out []readDoc
	for _, h := range res.Hits.Hits {
		dec := json.NewDecoder(bytes.NewReader(h.Source))
		dec.UseNumber()
		var src map[string]any
		if err := dec.Decode(&src); err != nil {
			return nil, fmt.Errorf("document %s: %w", h.Id, err)
		}
		d := readDoc{Index: h.Index, ID: h.Id, Values: make(map[string]any, len(t.Columns))}
		for _, c := range t.Columns {
			if c.Name == event.ColID && idIsColumn(t) {
				d.Values[c.Name] = h.Id
				continue
			}
			v, err := decodeValue(c.Type, src[c.Name])
			if err != nil {
				return nil, fmt.Errorf("document %s, field %s: %w", h.Id, c.Name, err)
			}
			d.Values[c.Name] = v
		}
		out = append(out, d)
	}
	return out, nil
}

func decodeValue(t event.FieldType, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t {
	case event.TypeString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case event.TypeLong, event.TypeInt:
		if n, ok := v.(json.Number); ok {
			return n.Int64()
		}
	case event.TypeDouble:
		if n, ok := v.(json.Number); ok {
			return n.Float64()
		}
	case event.TypeBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case event.TypeTimestamp:
		if s, ok := v.(string); ok {
			return time.Parse(time.RFC3339Nano, s)
		}
	}
	return nil, fmt.Errorf("%T %v is not a %v", v, v, t)
}
