package speed

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	events          *prometheus.CounterVec
	late            *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	stateWindows    *prometheus.GaugeVec
	watermark       *prometheus.GaugeVec
	idleParts       *prometheus.GaugeVec
	checkpointAge   *prometheus.GaugeVec
	checkpointSecs  prometheus.Histogram
	collectors      []prometheus.Collector
	registerer      prometheus.Registerer
	checkpointBytes *prometheus.GaugeVec
}

// viewMetrics are the children of one view, looked up once.
type viewMetrics struct {
	events, late, rejected prometheus.Counter
	stateWindows           prometheus.Gauge
	watermark              prometheus.Gauge
	idleParts              prometheus.Gauge
	checkpointAge          prometheus.Gauge
	checkpointBytes        prometheus.Gauge
	checkpointSecs         prometheus.Histogram

	// what the counters were last set from, so that Stats deltas are added
	last Stats
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_speed_events_total",
			Help: "Events of the view's topic processed by the speed layer (replays after a restart included).",
		}, []string{"view"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_speed_late_events_total",
			Help: "Events left out of a window that was already final (behind the watermark); the batch layer includes them.",
		}, []string{"view"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_speed_rejected_events_total",
			Help: "Events on which the view's where expression failed (e.g. a missing optional field); they are not aggregated.",
		}, []string{"view"}),
		stateWindows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_speed_state_windows",
			Help: "Open (group, window) states held by the speed layer.",
		}, []string{"view"}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_speed_watermark_seconds",
			Help: "The view's watermark, Unix seconds: windows ending at or before it are final.",
		}, []string{"view"}),
		idleParts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_speed_idle_partitions",
			Help: "Partitions of the view's topic found idle: caught up and quiet for the idle time, they do not hold the watermark back.",
		}, []string{"view"}),
		checkpointAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_speed_checkpoint_age_seconds",
			Help: "Time since the view's last successful checkpoint (since start before the first).",
		}, []string{"view"}),
		checkpointBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambdaflow_speed_checkpoint_bytes",
			Help: "Size of the view's last checkpoint.",
		}, []string{"view"}),
		checkpointSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lambdaflow_speed_checkpoint_seconds",
			Help:    "Time to take one checkpoint: encode the state and store it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1 ms … 16 s
		}),
		registerer: reg,
	}
	for _, c := range []prometheus.Collector{m.events, m.late, m.rejected, m.stateWindows, m.watermark, m.idleParts, m.checkpointAge, m.checkpointBytes, m.checkpointSecs} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("speed: metrics already registered (one speed layer per registry): %w", err)
			}
			return nil, fmt.Errorf("speed: register metrics: %w", err)
		}
		m.collectors = append(m.collectors, c)
	}
	return m, nil
}

func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.registerer.Unregister(c)
	}
	m.collectors = nil
}

func (m *metrics) forView(view string) *viewMetrics {
	return &viewMetrics{
		events:          m.events.WithLabelValues(view),
		late:            m.late.WithLabelValues(view),
		rejected:        m.rejected.WithLabelValues(view),
		stateWindows:    m.stateWindows.WithLabelValues(view),
		watermark:       m.watermark.WithLabelValues(view),
		idleParts:       m.idleParts.WithLabelValues(view),
		checkpointAge:   m.checkpointAge.WithLabelValues(view),
		checkpointBytes: m.checkpointBytes.WithLabelValues(view),
		checkpointSecs:  m.checkpointSecs,
	}
}

// observe brings the view's metrics up to date with its engine.
func (vm *viewMetrics) observe(e *engine) {
	s := e.Stats()
	vm.events.Add(float64(s.Events - vm.last.Events))
	vm.late.Add(float64(s.Late - vm.last.Late))
	vm.rejected.Add(float64(s.Rejected - vm.last.Rejected))
	vm.last = s
	vm.stateWindows.Set(float64(e.OpenWindows()))
	vm.idleParts.Set(float64(e.IdlePartitions()))
	if wm, ok := e.Watermark(); ok {
		vm.watermark.Set(float64(wm) / 1e6)
	}
}
