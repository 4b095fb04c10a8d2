package serving

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the serving layer's Prometheus metrics.
type Metrics struct{ m *metrics }

type metrics struct {
	queries *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// NewMetrics registers the serving metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_serving_queries_total", Help: "View queries answered.",
		}, []string{"view"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambdaflow_serving_query_seconds", Help: "Time to answer a view query.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"view"}),
	}
	reg.MustRegister(m.queries, m.latency)
	return &Metrics{m: m}
}

func (m *metrics) observe(view string, d time.Duration) {
	m.queries.WithLabelValues(view).Inc()
	m.latency.WithLabelValues(view).Observe(d.Seconds())
}
