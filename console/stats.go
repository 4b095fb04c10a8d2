package console

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
)

// StatsSource is a part of the process that reports its live numbers: it
// fills its own section of a GET /v1/stats answer (ingest, views, batch,
// one sink). AddStats must be safe to call from any goroutine.
type StatsSource interface {
	AddStats(s *api.Stats)
}

// statsLog is what the stats read of the log.
type statsLog interface {
	Topics(ctx context.Context) ([]api.Topic, error)
	Lag(ctx context.Context) ([]api.Lag, error)
}

// Stats serves GET /v1/stats: the log's topics and consumer lag, and what
// every part running in this process reports, in one JSON answer, so that
// the console and `lambdaflow top` need no metric names.
type Stats struct {
	pipeline string
	log      statsLog
	now      func() time.Time
	started  time.Time

	mu      sync.Mutex
	sources []StatsSource
}

// NewStats returns the stats of pipeline over log, with no parts yet; now
// is the clock of the answers' time (nil: time.Now). The process's counters
// count from now: call it as the process starts.
func NewStats(pipeline string, log statsLog, now func() time.Time) *Stats {
	if now == nil {
		now = time.Now
	}
	return &Stats{pipeline: pipeline, log: log, now: now, started: now().UTC()}
}

// Add registers parts that report numbers.
func (s *Stats) Add(sources ...StatsSource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources = append(s.sources, sources...)
}

// Routes returns GET /v1/stats, a read.
func (s *Stats) Routes() []httpapi.Route {
	return []httpapi.Route{{Pattern: "GET /v1/stats", Access: httpapi.Read, Handler: http.HandlerFunc(s.serve)}}
}

// Collect builds one answer.
func (s *Stats) Collect(ctx context.Context) (*api.Stats, error) {
	out := &api.Stats{Pipeline: s.pipeline, Time: s.now().UTC(), Started: s.started, Topics: []api.TopicStats{}, Views: []api.ViewStats{}, Sinks: []api.SinkStats{}, Links: []api.LinkStats{}}
	topics, err := s.log.Topics(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range topics {
		ts := api.TopicStats{Name: t.Name, Events: t.Events, Bytes: t.Bytes, EndOffsets: make([]int64, len(t.Partitions))}
		for i, p := range t.Partitions {
			ts.EndOffsets[i] = p.EndOffset
		}
		out.Topics = append(out.Topics, ts)
	}
	if out.Consumers, err = s.log.Lag(ctx); err != nil {
		return nil, err
	}
	if out.Consumers == nil {
		out.Consumers = []api.Lag{}
	}
	s.mu.Lock()
	sources := append([]StatsSource(nil), s.sources...)
	s.mu.Unlock()
	for _, src := range sources {
		src.AddStats(out)
	}
	return out, nil
}

func (s *Stats) serve(w http.ResponseWriter, r *http.Request) {
	st, err := s.Collect(r.Context())
	if err != nil {
		writeLogError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
}

// MetricsRoutes returns GET /metrics, the Prometheus exposition of reg, a
// read. A series that cannot be gathered is logged and left out rather
// than failing the scrape: a 500 would cost the scraper every other series,
// consumer lag among them, for as long as the fault lasts.
func MetricsRoutes(reg *prometheus.Registry, log *slog.Logger) []httpapi.Route {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:      reg,
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
	return []httpapi.Route{{Pattern: "GET /metrics", Access: httpapi.Read, Handler: h}}
}
