package promtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lambdaflow/lambdaflow/internal/promtest"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.VerifyNoLeaks(m) }

// TestServer: the server scrapes a target behind a bearer token, answers
// a query with the target's value, and holds the alert of a rule that is
// true; a query it cannot parse is an error naming why.
func TestServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdaflow_test_total", Help: "A test counter."}, []string{"kind"})
	reg.MustRegister(c)
	c.WithLabelValues("a").Add(7)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		metrics.ServeHTTP(w, r)
	}))
	defer target.Close()
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: test
    rules:
      - alert: TestCounted
        expr: sum by (kind) (lambdaflow_test_total) > 5
        labels: { severity: warning }
        annotations: { summary: "{{ $labels.kind }} counted {{ $value }}" }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := promtest.Start(t, promtest.Config{Targets: []promtest.Target{{URL: target.URL, Token: "secret"}}, RuleFiles: []string{rules}})
	ctx := context.Background()
	testenv.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		got, err := s.Query(ctx, `lambdaflow_test_total{kind="a"}`)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Value != 7 || got[0].Metric["kind"] != "a" || got[0].Metric["job"] != "lambdaflow-0" {
			return fmt.Errorf("lambdaflow_test_total: %+v, want one series of 7", got)
		}
		return nil
	})
	testenv.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		alerts, err := s.Alerts(ctx)
		if err != nil {
			return err
		}
		if len(alerts) != 1 || alerts[0].Labels["alertname"] != "TestCounted" || alerts[0].State != "firing" || alerts[0].Annotations["summary"] != "a counted 7" {
			return fmt.Errorf("alerts %+v, want TestCounted firing", alerts)
		}
		return nil
	})
	rs, err := s.Rules(ctx)
	if err != nil || len(rs) != 1 || rs[0].Health != "ok" {
		t.Fatalf("rules %+v, %v: want one, healthy", rs, err)
	}
	if _, err := s.Query(ctx, "sum by (kind (lambdaflow_test_total)"); err == nil {
		t.Fatal("a query that does not parse answered")
	}
}
