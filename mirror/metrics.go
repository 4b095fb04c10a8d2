package mirror

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the links' own; their lag is the log's
// (lambdaflow_consumer_lag_*, consumer mirror.<site>.<topic>).
type metrics struct {
	events   *prometheus.CounterVec
	entries  *prometheus.CounterVec
	skipped  *prometheus.CounterVec
	lost     *prometheus.CounterVec
	connects *prometheus.CounterVec
	up       *prometheus.GaugeVec
}

// linkMetrics are one link's children, looked up once.
type linkMetrics struct {
	events, entries, skipped, lost, connects prometheus.Counter
	up                                       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	labels := []string{"site", "topic"}
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_mirror_events_total",
			Help: "Events pulled from another site and appended to the local topic.",
		}, labels),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_mirror_appends_total",
			Help: "Log entries appended with pulled events.",
		}, labels),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_mirror_skipped_events_total",
			Help: "Events pulled again that the local log already held (after a broken link, a restart or another process's pull), not appended again.",
		}, labels),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_mirror_lost_events_total",
			Help: "Events the other site's retention removed before the link pulled them.",
		}, labels),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_mirror_connects_total",
			Help: "Times the link connected to the other site and found its topic.",
		}, labels),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_mirror_link_up",
			Help: "1 while the link reaches the other site and pulls, 0 otherwise.",
		}, labels),
	}
	for _, c := range []prometheus.Collector{m.events, m.entries, m.skipped, m.lost, m.connects, m.up} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mirror: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) forLink(site, topic string) linkMetrics {
	return linkMetrics{
		events:   m.events.WithLabelValues(site, topic),
		entries:  m.entries.WithLabelValues(site, topic),
		skipped:  m.skipped.WithLabelValues(site, topic),
		lost:     m.lost.WithLabelValues(site, topic),
		connects: m.connects.WithLabelValues(site, topic),
		up:       m.up.WithLabelValues(site, topic),
	}
}
