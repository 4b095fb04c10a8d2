// Package elasticsearch is the sink target for Elasticsearch 7 and
// OpenSearch 2.x, written with olivere/elastic v7.
//
// It owns the mapping of a sinks.Table onto indices — index names from the
// sink's pattern and each row's event time, an index template with mappings
// from the schema, fields added to the mappings of existing indices — bulk
// indexing with a deterministic _id so that a redelivered row replaces its
// document, and the sorting of per-item failures: rejected for load (429)
// retried here a few times, refused documents (mapping errors) reported per
// row. It does not batch by time, back off between batches or dead-letter:
// the sink runner wraps it for that.
//
// A topic's document _id is the event's _id, and _id is not repeated in the
// source (Elasticsearch forbids it there). A view's _id is the JSON array of
// its group-by values and window_start, e.g. ["eu","2024-03-01T12:00:00.000000Z"],
// which no two keys share whatever their values contain. Timestamps are sent
// as RFC 3339 with microseconds, so _source keeps them exactly; the date
// field indexes milliseconds. Documents never carry a _type: OpenSearch 2
// refuses it.
package elasticsearch

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/lambdaflow/lambdaflow/internal/retry"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks"
)

var _ sinks.Target = (*Sink)(nil)

const (
	// httpTimeout bounds one HTTP request when the caller's ctx does not;
	// a bulk of a few MB takes well under it on a healthy node.
	httpTimeout = 2 * time.Minute
	// maxBulkBytes caps one bulk request; Elasticsearch's default limit is
	// 100 MB and its guidance is 5–15 MB per request.
	maxBulkBytes = 8 << 20
	// bulkInFlight bulk requests of one Write run at once, each of at
	// least minBulkDocs documents.
	bulkInFlight = 2
	minBulkDocs  = 500
	// Items refused with 429 are resent this many times, after
	// rejectedBackoff, doubled each time, before Write gives up with a
	// transient error.
	rejectedRetries = 4
	rejectedBackoff = 100 * time.Millisecond
	// templatePriority puts our templates above Elasticsearch's built-in
	// ones (priority 100 for logs-*-*, metrics-*-*), which may overlap a
	// dated pattern such as metrics-*.
	templatePriority = 200
)

// Sink writes rows to Elasticsearch or OpenSearch. It is safe for
// concurrent use, though the runner calls it from one goroutine at a time.
type Sink struct {
	spec    *pipelines.Sink
	client  *elastic.Client
	log     *slog.Logger
	pattern indexPattern
	// transport is the client's, closed with the sink so that no
	// keep-alive connection outlives it.
	transport *http.Transport
	// resend paces the resending of items refused for load.
	resend retry.Backoff
}

// resendBackoff waits 100, 200, 400 and 800 ms (rejectedRetries resends)
// with equal jitter: at least half of each wait, because a node that refused
// items for load needs the time to drain its queue, spread over the other
// half, so that sinks refused together do not come back together.
func resendBackoff() retry.Backoff {
	return retry.Backoff{Base: rejectedBackoff, Cap: rejectedBackoff << (rejectedRetries - 1), Jitter: retry.Equal,
		Attempts: rejectedRetries + 1}
}

// New checks spec and returns a Sink for it. It does not dial — sniffing and
// health checks are off, as a cluster behind a load balancer or in a
// container advertises addresses the client cannot reach — so the sink
// starts while the cluster is down and reports it through Ping. ctx is not
// retained.
func New(ctx context.Context, spec *pipelines.Sink, logger *slog.Logger) (*Sink, error) {
	_ = ctx
	if spec == nil {
		return nil, fmt.Errorf("elasticsearch sink: nil spec: %w", sinks.ErrPermanent)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("sink", spec.Name, "target", "elasticsearch")
	cfg, err := sinks.ConfigOf[Config](spec)
	if err != nil {
		return nil, err
	}
	if len(cfg.URLs) == 0 {
		return nil, fmt.Errorf("elasticsearch sink %q: no urls: %w", spec.Name, sinks.ErrPermanent)
	}
	pat, err := parseIndexPattern(cfg.Index)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch sink %q: %w: %w", spec.Name, err, sinks.ErrPermanent)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = bulkInFlight + 2
	opts := []elastic.ClientOptionFunc{
		elastic.SetURL(cfg.URLs...),
		elastic.SetSniff(false),
		elastic.SetHealthcheck(false),
		elastic.SetHttpClient(&http.Client{Timeout: httpTimeout, Transport: tr}),
		// The runner logs failed writes; the client's own "node is dead" lines
		// would repeat each of them.
		elastic.SetErrorLog(logAdapter{logger, slog.LevelDebug}),
	}
	if cfg.Username != "" {
		opts = append(opts, elastic.SetBasicAuth(cfg.Username, cfg.Password))
	}
	client, err := elastic.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch sink %q: %w: %w", spec.Name, err, sinks.ErrPermanent)
	}
	return &Sink{spec: spec, client: client, log: logger, pattern: pat, transport: tr, resend: resendBackoff()}, nil
}

// Ping reports whether the cluster answers.
func (s *Sink) Ping(ctx context.Context) error {
	_, err := s.client.PerformRequest(ctx, elastic.PerformRequestOptions{Method: http.MethodGet, Path: "/"})
	if err != nil {
		return fmt.Errorf("elasticsearch sink %q: ping: %w", s.spec.Name, err)
	}
	return nil
}

// Close releases the client and its connections.
func (s *Sink) Close() error {
	s.client.Stop()
	s.transport.CloseIdleConnections()
	return nil
}

// logAdapter gives olivere's logger interface a *slog.Logger.
type logAdapter struct {
	l     *slog.Logger
	level slog.Level
}

func (a logAdapter) Printf(format string, v ...any) {
	a.l.Log(context.Background(), a.level, strings.TrimSpace(fmt.Sprintf(format, v...)), "source", "olivere/elastic")
}
