// Package promread reads back the current value of a process's own
// Prometheus metrics, so that a layer reports in GET /v1/stats exactly the
// numbers /metrics exports, from the same counters, without a second set
// of counters to keep in step.
package promread

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Value is the value of a counter, gauge or untyped metric; 0 for another
// kind or a metric that fails to write itself.
func Value(m prometheus.Metric) float64 {
	var d dto.Metric
	if m.Write(&d) != nil {
		return 0
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Untyped != nil:
		return d.Untyped.GetValue()
	}
	return 0
}

// Count is a counter's value as a whole number.
func Count(m prometheus.Metric) uint64 { return uint64(Value(m)) }

// Histogram is the number and the sum of a histogram's observations. o is
// what a HistogramVec hands out; anything else gives zeros.
func Histogram(o prometheus.Observer) (count uint64, sum float64) {
	m, ok := o.(prometheus.Metric)
	if !ok {
		return 0, 0
	}
	var d dto.Metric
	if m.Write(&d) != nil || d.Histogram == nil {
		return 0, 0
	}
	return d.Histogram.GetSampleCount(), d.Histogram.GetSampleSum()
}
