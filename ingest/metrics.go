package ingest

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reject reasons, the values of the reason label of
// lambdaflow_ingest_rejects_total.
const (
	reasonInvalid      = "invalid"
	reasonTooLarge     = "too_large"
	reasonUnauthorized = "unauthorized"
	reasonOverloaded   = "overloaded"
	reasonUnavailable  = "unavailable"
	reasonDiskFull     = "disk_full"
	reasonUnknownTopic = "unknown_topic"
)

type metrics struct {
	events     *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	rejects    *prometheus.CounterVec
	// unknownTopic counts requests for a topic the pipeline lacks; it is
	// there from the start, at 0, like every topic's series.
	unknownTopic prometheus.Counter
	ackSeconds   prometheus.Histogram
	batchEvents  prometheus.Histogram
}

// topicMetrics are the children of one topic, looked up once.
type topicMetrics struct {
	events     prometheus.Counter
	bytes      prometheus.Counter
	duplicates prometheus.Counter
	rejects    map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_ingest_events_total",
			Help: "Events acknowledged durable, duplicates not included.",
		}, []string{"topic"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_ingest_bytes_total",
			Help: "Request body bytes of acknowledged requests.",
		}, []string{"topic"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_ingest_duplicates_total",
			Help: "Events answered as duplicates of an id seen within the dedup window, not appended again.",
		}, []string{"topic"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_ingest_rejects_total",
			Help: "Rejected requests by reason: invalid, too_large, unauthorized, overloaded, unavailable, unknown_topic (topic label empty).",
		}, []string{"topic", "reason"}),
		ackSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lambdaflow_ingest_ack_seconds",
			Help:    "Time from a request's arrival to its 200 answer, when all its events are durable.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms … 4 s
		}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lambdaflow_ingest_batch_events",
			Help:    "Events per log entry (one Append of the group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 17), // 1 … 65536
		}),
	}
	var regd []prometheus.Collector
	for _, c := range []prometheus.Collector{m.events, m.bytes, m.duplicates, m.rejects, m.ackSeconds, m.batchEvents} {
		if err := reg.Register(c); err != nil {
			for _, r := range regd {
				reg.Unregister(r)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("ingest: metrics already registered (one Ingest per registry): %w", err)
			}
			return nil, fmt.Errorf("ingest: register metrics: %w", err)
		}
		regd = append(regd, c)
	}
	m.unknownTopic = m.rejects.WithLabelValues("", reasonUnknownTopic)
	return m, nil
}

func (m *metrics) forTopic(topic string) *topicMetrics {
	tm := &topicMetrics{
		events:     m.events.WithLabelValues(topic),
		bytes:      m.bytes.WithLabelValues(topic),
		duplicates: m.duplicates.WithLabelValues(topic),
		rejects:    make(map[string]prometheus.Counter),
	}
	for _, r := range []string{reasonInvalid, reasonTooLarge, reasonUnauthorized, reasonOverloaded, reasonUnavailable, reasonDiskFull} {
		tm.rejects[r] = m.rejects.WithLabelValues(topic, r)
	}
	return tm
}
