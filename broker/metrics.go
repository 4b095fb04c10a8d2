package broker

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/lambdaflow/lambdaflow/api"

	"github.com/prometheus/client_golang/prometheus"
)

// lagCacheTTL is how long a scrape reuses the previous Lag result: Lag reads
// the offsets bucket and a few entries per partition, too much per scrape
// when several scrapers poll.
const lagCacheTTL = 5 * time.Second

type metrics struct {
	reg           prometheus.Registerer
	collectors    []prometheus.Collector
	appends       *prometheus.CounterVec
	events        *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	appendSeconds prometheus.Histogram
	diskFull      prometheus.Gauge
	diskFulls     *prometheus.CounterVec
}

type partitionMetrics struct {
	appends, events, bytes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, b *Broker) (*metrics, error) {
	labels := []string{"topic", "partition"}
	m := &metrics{
		reg: reg,
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_log_appends_total",
			Help: "Log entries appended (one per Append).",
		}, labels),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_log_events_total",
			Help: "Events appended to the log.",
		}, labels),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_log_bytes_total",
			Help: "Payload bytes of the log entries appended.",
		}, labels),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lambdaflow_log_append_seconds",
			Help:    "Time from Append to the log's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17), // 0.1 ms … 6.6 s
		}),
		diskFull: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lambdaflow_log_disk_full",
			Help: "1 while the embedded log's disk is full and appends are refused (507), else 0.",
		}),
		diskFulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_log_disk_full_total",
			Help: "Times the embedded log's disk was found full, by cause: reserve (free space below the reserve) or write (a write failed for space).",
		}, []string{"cause"}),
	}
	// Both causes are exported from the start, at zero: a rate over a
	// series that appears at its first increment misses that one.
	m.diskFulls.WithLabelValues("reserve")
	m.diskFulls.WithLabelValues("write")
	labels = []string{"consumer", "topic", "partition"}
	lag := &lagCollector{
		b: b,
		events: prometheus.NewDesc("lambdaflow_consumer_lag_events",
			"Events appended to the partition that the consumer has not committed.",
			labels, nil),
		seconds: prometheus.NewDesc("lambdaflow_consumer_lag_seconds",
			"Time since the log appended the oldest event the consumer has not committed.",
			labels, nil),
		eventTime: prometheus.NewDesc("lambdaflow_consumer_event_time_lag_seconds",
			"Age by event time of the oldest event the consumer has not committed.",
			labels, nil),
		readEvents: prometheus.NewDesc("lambdaflow_consumer_read_lag_events",
			"Events appended to the partition that the consumer has not read yet.",
			labels, nil),
		readSeconds: prometheus.NewDesc("lambdaflow_consumer_read_lag_seconds",
			"Time since the log appended the oldest event the consumer has not read yet.",
			labels, nil),
	}
	for _, c := range []prometheus.Collector{m.appends, m.events, m.bytes, m.appendSeconds, m.diskFull, m.diskFulls, lag} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, fmt.Errorf("broker: register metrics: %w", err)
		}
		m.collectors = append(m.collectors, c)
	}
	return m, nil
}

func (m *metrics) forPartition(topic, part string) partitionMetrics {
	return partitionMetrics{
		appends: m.appends.WithLabelValues(topic, part),
		events:  m.events.WithLabelValues(topic, part),
		bytes:   m.bytes.WithLabelValues(topic, part),
	}
}

func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
	m.collectors = nil
}

// lagCollector exports Lag as gauges, computed at scrape time.
type lagCollector struct {
	b                                                   *Broker
	events, seconds, eventTime, readEvents, readSeconds *prometheus.Desc

	mu   sync.Mutex
	at   time.Time
	last []api.Lag
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.seconds
	ch <- c.eventTime
	ch <- c.readEvents
	ch <- c.readSeconds
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil || time.Since(c.at) > lagCacheTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		lags, err := c.b.Lag(ctx)
		cancel()
		if err != nil {
			c.b.log.Warn("broker: lag metrics", "err", err)
		} else {
			c.last, c.at = lags, time.Now()
		}
	}
	for _, l := range c.last {
		part := strconv.Itoa(l.Partition)
		for _, g := range []struct {
			d *prometheus.Desc
			v float64
		}{
			{c.events, float64(l.Lag)},
			{c.seconds, l.LagSeconds},
			{c.eventTime, l.EventTimeLagSeconds},
			{c.readEvents, float64(l.ReadLag)},
			{c.readSeconds, l.ReadLagSeconds},
		} {
			if m, err := prometheus.NewConstMetric(g.d, prometheus.GaugeValue, g.v, l.Consumer, l.Topic, part); err == nil {
				ch <- m
			}
		}
	}
}
