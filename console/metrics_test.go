package console

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// twice is a faulty collector: it collects one series two times.
type twice struct{ d *prometheus.Desc }

func (c twice) Describe(ch chan<- *prometheus.Desc) { ch <- c.d }
func (c twice) Collect(ch chan<- prometheus.Metric) {
	for range 2 {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.GaugeValue, 1, "a")
	}
}

// TestMetricsServedDespiteFaultyCollector: one series that cannot be
// gathered is logged and left out, and every other series is served.
func TestMetricsServedDespiteFaultyCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	ok := prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdaflow_ok_total", Help: "A healthy series."})
	ok.Add(3)
	reg.MustRegister(ok, twice{prometheus.NewDesc("lambdaflow_twice", "A faulty series.", []string{"l"}, nil)})
	var logged bytes.Buffer
	routes := MetricsRoutes(reg, slog.New(slog.NewTextHandler(&logged, nil)))
	if len(routes) != 1 || routes[0].Pattern != "GET /metrics" {
		t.Fatalf("routes %+v, want GET /metrics", routes)
	}
	rec := httptest.NewRecorder()
	routes[0].Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body:\n%s", rec.Code, body)
	}
	if !strings.Contains(string(body), "\nlambdaflow_ok_total 3\n") {
		t.Errorf("body lacks lambdaflow_ok_total 3:\n%s", body)
	}
	if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "lambdaflow_twice") {
		t.Errorf("the fault was not logged as a warning naming the series: %q", logged.String())
	}
}
