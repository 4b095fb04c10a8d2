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

// NewMetrics registers the serving metrics on reg, among them the drift of
// every view of store.
func NewMetrics(reg prometheus.Registerer, store *Store) *Metrics {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_serving_queries_total", Help: "View queries answered.",
		}, []string{"view"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambdaflow_serving_query_seconds", Help: "Time to answer a view query.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"view"}),
	}
	reg.MustRegister(m.queries, m.latency, driftCollector{store})
	return &Metrics{m: m}
}

// driftCollector exports how many closed windows differed between the
// layers, per view: the counter of the Lambda architecture's health. A
// steady rise means late data beyond lateness, or a bug in one layer.
type driftCollector struct{ s *Store }

var driftDesc = prometheus.NewDesc("lambdaflow_view_drift_windows_total",
	"Closed windows whose batch result differed from the speed layer's.", []string{"view"}, nil)

func (c driftCollector) Describe(ch chan<- *prometheus.Desc) { ch <- driftDesc }

func (c driftCollector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.s.Views() {
		ch <- prometheus.MustNewConstMetric(driftDesc, prometheus.CounterValue, float64(c.s.Drift(v)), v)
	}
}

func (m *metrics) observe(view string, d time.Duration) {
	m.queries.WithLabelValues(view).Inc()
	m.latency.WithLabelValues(view).Observe(d.Seconds())
}
