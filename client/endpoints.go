package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
)

// Publish posts events to topic: body is one JSON object, a JSON array or
// NDJSON (contentType says which; empty sends none). A non-empty
// idempotencyKey makes a retried request land once.
func (c *Client) Publish(ctx context.Context, topic string, body []byte, contentType, idempotencyKey string) (api.IngestResult, error) {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	var out api.IngestResult
	err := c.Do(ctx, http.MethodPost, topicPath(topic), nil, bytes.NewReader(body), h, &out)
	return out, err
}

// Topics lists the topics of the log.
func (c *Client) Topics(ctx context.Context) ([]api.Topic, error) {
	var out api.Topics
	err := c.Get(ctx, "/v1/topics", nil, &out)
	return out.Topics, err
}

// Cluster lists the pipeline's live processes and what each owns.
func (c *Client) Cluster(ctx context.Context) (api.Cluster, error) {
	var out api.Cluster
	err := c.Get(ctx, "/v1/cluster", nil, &out)
	return out, err
}

// Lag lists every consumer's position per partition.
func (c *Client) Lag(ctx context.Context) ([]api.Lag, error) {
	var out api.LagAnswer
	err := c.Get(ctx, "/v1/lag", nil, &out)
	return out.Consumers, err
}

// Browse is a selection of the message browser. From is an offset or an
// RFC 3339 time; Last the newest N of each partition; Offsets continues
// partitions where a page's Next left them; Limit and MaxBytes bound the
// page in events and bytes. Zero values are left out.
type Browse struct {
	Partition *int
	From      string
	Last      int
	Offsets   map[string]int64
	Limit     int
	MaxBytes  int
}

// Values is the selection as query parameters.
func (b Browse) Values() url.Values {
	q := url.Values{}
	if b.Partition != nil {
		q.Set("partition", strconv.Itoa(*b.Partition))
	}
	if b.From != "" {
		q.Set("from", b.From)
	}
	if b.Last > 0 {
		q.Set("last", strconv.Itoa(b.Last))
	}
	for p, o := range b.Offsets {
		q.Set("offset."+p, strconv.FormatInt(o, 10))
	}
	if b.Limit > 0 {
		q.Set("limit", strconv.Itoa(b.Limit))
	}
	if b.MaxBytes > 0 {
		q.Set("max_bytes", strconv.Itoa(b.MaxBytes))
	}
	return q
}

// Events reads one page of a topic's events.
func (c *Client) Events(ctx context.Context, topic string, b Browse) (api.Browse, error) {
	var out api.Browse
	err := c.Get(ctx, topicPath(topic), b.Values(), &out)
	return out, err
}

// EventsNDJSON reads one page of a topic's events as NDJSON, one event a
// line, as the console's download does.
func (c *Client) EventsNDJSON(ctx context.Context, topic string, b Browse) (*http.Response, []byte, error) {
	q := b.Values()
	q.Set("format", "ndjson")
	return c.send(ctx, http.MethodGet, topicPath(topic), q, nil, nil)
}

// Views lists the views.
func (c *Client) Views(ctx context.Context) ([]api.ViewInfo, error) {
	var out api.Views
	err := c.Get(ctx, "/v1/views", nil, &out)
	return out.Views, err
}

// Query asks for a view's rows: where filters group-by fields by value;
// from and to bound window starts (zero: unbounded).
func (c *Client) Query(ctx context.Context, view string, where url.Values, from, to time.Time) (api.ViewRows, error) {
	q := url.Values{}
	for k, v := range where {
		q[k] = v
	}
	var out api.ViewRows
	err := c.Get(ctx, "/v1/views/"+url.PathEscape(view), timeParams(q, from, to), &out)
	return out, err
}

// QueryInto is Query with the rows decoded into rows, a pointer to a slice
// of a struct (or map) of the view's columns.
func (c *Client) QueryInto(ctx context.Context, view string, where url.Values, from, to time.Time, rows any) (api.ViewRows, error) {
	ans, err := c.Query(ctx, view, where, from, to)
	if err != nil {
		return ans, err
	}
	raw, err := json.Marshal(ans.Rows)
	if err != nil {
		return ans, err
	}
	return ans, json.Unmarshal(raw, rows)
}

// Recompute starts a batch run of view over window starts in [from, to)
// (zero: all the lake holds) and returns the job's id.
func (c *Client) Recompute(ctx context.Context, view string, from, to time.Time) (string, error) {
	var out api.JobStarted
	err := c.Post(ctx, "/v1/views/"+url.PathEscape(view)+"/recompute", timeParams(nil, from, to), "", nil, &out)
	return out.Job, err
}

// Job is one batch job's status.
func (c *Client) Job(ctx context.Context, id string) (api.JobStatus, error) {
	var out api.JobStatus
	err := c.Get(ctx, "/v1/jobs/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Jobs lists the batch jobs, newest first.
func (c *Client) Jobs(ctx context.Context) ([]api.JobStatus, error) {
	var out api.Jobs
	err := c.Get(ctx, "/v1/jobs", nil, &out)
	return out.Jobs, err
}

// Sinks lists the sinks with their health.
func (c *Client) Sinks(ctx context.Context) ([]api.SinkStatus, error) {
	var out api.Sinks
	err := c.Get(ctx, "/v1/sinks", nil, &out)
	return out.Sinks, err
}

// DeadLetters lists up to limit dead letters of a sink (0: the server's
// default).
func (c *Client) DeadLetters(ctx context.Context, sink string, limit int) (api.DeadLetters, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out api.DeadLetters
	err := c.Get(ctx, "/v1/sinks/"+url.PathEscape(sink)+"/dlq", q, &out)
	return out, err
}

// Replay writes a sink's dead letters again.
func (c *Client) Replay(ctx context.Context, sink string) (api.Replay, error) {
	var out api.Replay
	err := c.Post(ctx, "/v1/sinks/"+url.PathEscape(sink)+"/dlq/replay", nil, "", nil, &out)
	return out, err
}

// Stats is the live numbers of the process.
func (c *Client) Stats(ctx context.Context) (*api.Stats, error) {
	var out api.Stats
	if err := c.Get(ctx, "/v1/stats", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Ready asks /readyz: the answer whether ready (200) or not (503); an
// error only when there is no such answer.
func (c *Client) Ready(ctx context.Context) (api.Health, error) {
	var out api.Health
	err := c.Get(ctx, "/readyz", nil, &out)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusServiceUnavailable && json.Unmarshal(e.Body, &out) == nil {
		return out, nil
	}
	return out, err
}

// Metrics reads /metrics, the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	_, body, err := c.send(ctx, http.MethodGet, "/metrics", nil, nil, nil)
	return body, err
}

func topicPath(topic string) string { return "/v1/topics/" + url.PathEscape(topic) + "/events" }
