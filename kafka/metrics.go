package kafka

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the Kafka listener; all named lambdaflow_kafka_*.
type metrics struct {
	connections       prometheus.Gauge
	refused           prometheus.Counter
	requests          *prometheus.CounterVec
	seconds           *prometheus.HistogramVec
	produced          *prometheus.CounterVec
	produceErrors     *prometheus.CounterVec
	produceDuplicates prometheus.Counter
	fetchedBytes      prometheus.Counter
	authFailures      prometheus.Counter
	rebalances        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lambdaflow_kafka_connections", Help: "Open Kafka client connections."}),
		refused:     prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdaflow_kafka_connections_refused_total", Help: "Connections closed at once because kafka.max_connections were open."}),
		requests:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdaflow_kafka_requests_total", Help: "Kafka requests by API."}, []string{"api"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lambdaflow_kafka_request_seconds", Help: "Time to answer a Kafka request, by API (Fetch includes its long poll).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"api"}),
		produced:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdaflow_kafka_produced_records_total", Help: "Records appended through Produce, by topic."}, []string{"topic"}),
		produceErrors:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdaflow_kafka_produce_errors_total", Help: "Produce partitions answered with an error, by Kafka error name."}, []string{"error"}),
		produceDuplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdaflow_kafka_produce_duplicate_batches_total", Help: "Retried idempotent-producer batches answered without appending again."}),
		fetchedBytes:      prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdaflow_kafka_fetched_bytes_total", Help: "Record bytes sent in Fetch answers."}),
		authFailures:      prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdaflow_kafka_sasl_failures_total", Help: "Failed SASL authentications."}),
		rebalances:        prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdaflow_kafka_group_rebalances_total", Help: "Consumer-group rebalances completed by this process."}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.refused, m.requests, m.seconds, m.produced, m.produceErrors, m.produceDuplicates, m.fetchedBytes, m.authFailures, m.rebalances} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return nil, err
		}
	}
	return m, nil
}
