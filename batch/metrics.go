package batch

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the batch layer's Prometheus metrics.
type metrics struct {
	lakeRows      *prometheus.CounterVec
	lakeFiles     *prometheus.CounterVec
	compactions   *prometheus.CounterVec
	expired       *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	jobSeconds    *prometheus.HistogramVec
	rowsPerSecond *prometheus.GaugeVec
	lastSuccess   *prometheus.GaugeVec
	horizonAge    *prometheus.GaugeVec
	jobFailures   *prometheus.CounterVec
	cacheReads    *prometheus.CounterVec
	cacheBytes    prometheus.Gauge
	cacheFiles    prometheus.Gauge
}

// newMetrics creates the metrics and registers them with reg (nil: not
// exported). Registering twice with one registry is an error, so two
// Batch values need two registries.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lakeRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_lake_rows_total", Help: "Rows written to the lake, per topic.",
		}, []string{"topic"}),
		lakeFiles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_lake_files_total", Help: "Parquet files committed to the lake by the lake writer, per topic.",
		}, []string{"topic"}),
		compactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_lake_compactions_total", Help: "Compactions (files of one period merged into one), per topic.",
		}, []string{"topic"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_lake_expired_files_total", Help: "Lake files taken out of the lake because their period ended topics[].lake.retention ago or longer, per topic.",
		}, []string{"topic"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_lake_skipped_entries_total", Help: "Log entries the lake writer skipped because they could not be decoded, per topic.",
		}, []string{"topic"}),
		jobSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambdaflow_batch_job_seconds", Help: "Duration of batch recomputation jobs, per view.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}, []string{"view"}),
		rowsPerSecond: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_batch_rows_per_second", Help: "Lake rows per second read by the last batch job, per view.",
		}, []string{"view"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_batch_last_success_timestamp_seconds", Help: "When the last successful batch job of a view finished (Unix seconds).",
		}, []string{"view"}),
		horizonAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_batch_horizon_age_seconds", Help: "How far a view's batch horizon lags the clock, as of its last job.",
		}, []string{"view"}),
		jobFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_batch_job_failures_total", Help: "Failed batch jobs, per view.",
		}, []string{"view"}),
		cacheReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_lake_cache_reads_total", Help: "Reads of lake files on object storage, by whether lake.cache held the file (hit) or it was fetched (miss).",
		}, []string{"result"}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lambdaflow_lake_cache_bytes", Help: "Bytes of lake files lake.cache holds.",
		}),
		cacheFiles: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lambdaflow_lake_cache_files", Help: "Lake files lake.cache holds.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lakeRows, m.lakeFiles, m.compactions, m.skipped, m.jobSeconds,
		m.rowsPerSecond, m.lastSuccess, m.horizonAge, m.jobFailures, m.expired, m.cacheReads, m.cacheBytes, m.cacheFiles} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// init creates every topic's and view's series at zero, so that a lake that
// never wrote or a view that never ran shows as such (and can be alerted on:
// a last-success time of 0 means never) instead of being absent.
func (m *metrics) init(topics, views []string) {
	m.cacheReads.WithLabelValues("hit")
	m.cacheReads.WithLabelValues("miss")
	for _, t := range topics {
		m.lakeRows.WithLabelValues(t)
		m.lakeFiles.WithLabelValues(t)
		m.compactions.WithLabelValues(t)
		m.skipped.WithLabelValues(t)
		m.expired.WithLabelValues(t)
	}
	for _, v := range views {
		m.jobSeconds.WithLabelValues(v)
		m.rowsPerSecond.WithLabelValues(v)
		m.lastSuccess.WithLabelValues(v)
		m.jobFailures.WithLabelValues(v)
	}
}

// heldCollector exports what each topic's lake holds, read from its
// manifest at scrape time: files, periods and rows. Files above periods
// are merges compaction has still to make (or is holding back while a
// period gets events).
type heldCollector struct {
	b                    *Batch
	files, periods, rows *prometheus.Desc
}

func newHeldCollector(b *Batch) *heldCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"topic"}, nil)
	}
	return &heldCollector{b: b,
		files:   d("lambdaflow_lake_files_held", "Files the lake holds (its manifest's live files), per topic."),
		periods: d("lambdaflow_lake_periods_held", "Periods (hours, days or months: the topic's lake.partitioning) the lake's files are in, per topic; files held equal it once compaction has merged every period."),
		rows:    d("lambdaflow_lake_rows_held", "Rows the lake holds (every event once), per topic."),
	}
}

func (c *heldCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.files
	ch <- c.periods
	ch <- c.rows
}

func (c *heldCollector) Collect(ch chan<- prometheus.Metric) {
	for i := range c.b.p.Topics {
		t := c.b.p.Topics[i].Name
		m := c.b.manifestOf(t)
		if m == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.files, prometheus.GaugeValue, float64(m.fileCount()), t)
		ch <- prometheus.MustNewConstMetric(c.periods, prometheus.GaugeValue, float64(m.periodsHeld()), t)
		ch <- prometheus.MustNewConstMetric(c.rows, prometheus.GaugeValue, float64(m.rowsHeld()), t)
	}
}

// lakeCacheRead counts a read of a lake file through the cache.
func (m *metrics) lakeCacheRead(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cacheReads.WithLabelValues("hit").Inc()
	} else {
		m.cacheReads.WithLabelValues("miss").Inc()
	}
}

// lakeCacheHeld records what the cache holds.
func (m *metrics) lakeCacheHeld(bytes int64, files int) {
	if m == nil {
		return
	}
	m.cacheBytes.Set(float64(bytes))
	m.cacheFiles.Set(float64(files))
}
