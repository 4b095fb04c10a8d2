package groups

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the HTTP groups' own; their lag is the log's
// (lambdaflow_consumer_*, consumer http.<group>).
type metrics struct {
	delivered  *prometheus.CounterVec
	rebalances *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_groups_delivered_events_total",
			Help: "Events this process delivered to members of HTTP consumer groups (polls and streams), per group.",
		}, []string{"group"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdaflow_groups_rebalances_total",
			Help: "New generations of HTTP consumer groups this process made (a member joined, left or expired), per group.",
		}, []string{"group"}),
	}
	for _, c := range []prometheus.Collector{m.delivered, m.rebalances} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("groups: register metrics: %w", err)
		}
	}
	return m, nil
}
