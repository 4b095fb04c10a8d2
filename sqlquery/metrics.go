package sqlquery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a query, the result label of lambdaflow_sql_queries_total.
const (
	resultOK          = "ok"
	resultInvalid     = "invalid"     // 400: parse, bind or run error, not one SELECT, unknown table
	resultForbidden   = "forbidden"   // 401, 403
	resultLimit       = "limit"       // 422: lambdaflow_sql_limits_total says which
	resultUnavailable = "unavailable" // 503 and 501: a table or the engine is not here
	resultCanceled    = "canceled"    // the caller went away
	resultError       = "error"       // 500
)

// limitNames are the limits a query can hit, the limit label of
// lambdaflow_sql_limits_total.
var limitNames = []string{"sql.timeout", "sql.max_rows", "sql.max_bytes", "sql.memory_limit", "sql.lake_cache"}

// metrics are the engine's Prometheus metrics.
type metrics struct {
	queries *prometheus.CounterVec
	limits  *prometheus.CounterVec
	seconds prometheus.Histogram
	rows    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_sql_queries_total",
			Help: "SQL queries answered, by result: ok, invalid (400), forbidden (401, 403), limit (422), unavailable (503, 501), canceled (the caller went away) or error (500).",
		}, []string{"result"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_sql_limits_total",
			Help: "SQL queries stopped by a limit, by the limit: sql.timeout, sql.max_rows, sql.max_bytes, sql.memory_limit or sql.lake_cache.",
		}, []string{"limit"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lambdaflow_sql_query_seconds",
			Help:    "Time to answer a SQL query, whatever its result (attaching its tables, fetching lake copies and running it).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lambdaflow_sql_result_rows_total",
			Help: "Rows answered by SQL queries.",
		}),
	}
	// Every result and limit is exported from the start, at zero: a rate
	// over a series that appears at its first increment misses that one.
	for _, r := range []string{resultOK, resultInvalid, resultForbidden, resultLimit, resultUnavailable, resultCanceled, resultError} {
		m.queries.WithLabelValues(r)
	}
	for _, l := range limitNames {
		m.limits.WithLabelValues(l)
	}
	for _, c := range []prometheus.Collector{m.queries, m.limits, m.seconds, m.rows} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sql: register metrics: %w", err)
		}
	}
	return m, nil
}

// observe records one request's outcome; rows and limit only where it
// has them.
func (m *metrics) observe(result, limit string, rows int, took time.Duration) {
	m.seconds.Observe(took.Seconds())
	m.queries.WithLabelValues(result).Inc()
	if limit != "" {
		m.limits.WithLabelValues(limit).Inc()
	}
	m.rows.Add(float64(rows))
}

// outcomeOf names the result of a failed query, by the status the HTTP API
// answers it with, and the limit it hit.
func outcomeOf(err error) (result, limit string) {
	var qe *Error
	if !errors.As(err, &qe) {
		if errors.Is(err, context.Canceled) {
			return resultCanceled, ""
		}
		return resultError, ""
	}
	switch Status(qe.Kind) {
	case http.StatusBadRequest:
		return resultInvalid, ""
	case http.StatusForbidden:
		return resultForbidden, ""
	case http.StatusUnprocessableEntity:
		return resultLimit, qe.Limit
	case http.StatusServiceUnavailable, http.StatusNotImplemented:
		return resultUnavailable, ""
	}
	return resultError, ""
}
