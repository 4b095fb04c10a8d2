package sinks

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are shared by every runner registered on one registerer: each
// runner binds its own label values. Labels are sink and source, never
// anything taken from a record; the process adds pipeline to every metric by
// wrapping the registerer.
type metrics struct {
	written      *prometheus.CounterVec
	retries      *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	batchSeconds *prometheus.HistogramVec
	up           *prometheus.GaugeVec
}

// sourceMetrics are the metrics of one source of one sink.
type sourceMetrics struct {
	written      prometheus.Counter
	retries      prometheus.Counter
	deadLetters  prometheus.Counter
	batchSeconds prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	labels := []string{"sink", "source"}
	m := &metrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_sink_rows_written_total",
			Help: "Rows a sink wrote to its target (not counting dead letters).",
		}, labels),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_sink_retries_total",
			Help: "Retries of failed sink writes.",
		}, labels),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_sink_dead_letters_total",
			Help: "Rows a sink's target rejected for good, sent to its dead-letter topic.",
		}, labels),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lambdaflow_sink_batch_seconds",
			Help:    "Time to deliver one batch, retries and dead-lettering included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, labels),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_sink_up",
			Help: "1 while a sink delivers, 0 once a write has failed batch.max_retries times in a row.",
		}, []string{"sink"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.written, err = register(reg, m.written)
	if err != nil {
		return nil, err
	}
	m.retries, err = register(reg, m.retries)
	if err != nil {
		return nil, err
	}
	m.deadLetters, err = register(reg, m.deadLetters)
	if err != nil {
		return nil, err
	}
	m.batchSeconds, err = register(reg, m.batchSeconds)
	if err != nil {
		return nil, err
	}
	m.up, err = register(reg, m.up)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name, so that every sink of a process shares one family.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("registering sink metrics: %w", err)
}

func (m *metrics) forSource(sink, source string) sourceMetrics {
	return sourceMetrics{
		written:      m.written.WithLabelValues(sink, source),
		retries:      m.retries.WithLabelValues(sink, source),
		deadLetters:  m.deadLetters.WithLabelValues(sink, source),
		batchSeconds: m.batchSeconds.WithLabelValues(sink, source),
	}
}
