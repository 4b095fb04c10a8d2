// Package promtest runs Prometheus for tests: promtool over rule files, and
// a Prometheus server that scrapes running processes, evaluates alerting
// rules and answers queries through its HTTP API, as Grafana and
// Alertmanager see them. The binaries are Debian's, unpacked by
// deploy/dev/prometheus.sh: LF_TEST_PROMETHEUS_BIN, else
// $LF_SERVICES_DIR/prometheus/bin, else the repository's
// .services/prometheus/bin. Without them a test is skipped, or failed under
// `make test` (testenv.Missing). Test support only.
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// Bin is the path of the Prometheus binary name ("prometheus" or
// "promtool").
func Bin(t testing.TB, name string) string {
	t.Helper()
	var dirs []string
	if d := os.Getenv("LF_TEST_PROMETHEUS_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("LF_SERVICES_DIR"); d != "" {
		dirs = append(dirs, filepath.Join(d, "prometheus", "bin"))
	}
	if root, ok := repoRoot(); ok {
		dirs = append(dirs, filepath.Join(root, ".services", "prometheus", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return p
		}
	}
	testenv.Missing(t, name+" is not fetched: run deploy/dev/prometheus.sh (or set LF_TEST_PROMETHEUS_BIN)")
	return ""
}

// repoRoot finds the directory of go.mod above the working directory.
func repoRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// Target is a process to scrape: its base URL (http://host:port; the
// metrics are at /metrics) and the bearer token /metrics needs, if any.
type Target struct {
	URL   string
	Token string
}

// Config is what a test server scrapes and evaluates.
type Config struct {
	Targets []Target
	// RuleFiles are rule files to evaluate, paths relative to the test's
	// working directory.
	RuleFiles []string
	// Interval is the scrape and rule evaluation interval; 0 is 1s.
	Interval time.Duration
}

// Server is a running Prometheus server.
type Server struct {
	URL  string
	http *http.Client
	log  string
}

// Start runs a Prometheus server for cfg, stopped when t ends; its log is
// shown if t failed.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin := Bin(t, "prometheus")
	dir := t.TempDir()
	every := cfg.Interval
	if every <= 0 {
		every = time.Second
	}
	conf, err := configFile(cfg, every)
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	s := &Server{URL: "http://" + addr, http: &http.Client{Timeout: 10 * time.Second}, log: filepath.Join(dir, "prometheus.log")}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+confPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			t.Logf("prometheus log:\n%s", b)
		}
	})
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		select {
		case <-done:
			b, _ := os.ReadFile(s.log)
			return fmt.Errorf("prometheus exited:\n%s", b)
		default:
		}
		resp, err := s.http.Get(s.URL + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("prometheus /-/ready: %s", resp.Status)
		}
		return nil
	})
	return s
}

// configFile writes prometheus.yml: a job per target (each with its own
// token), JSON being YAML.
func configFile(cfg Config, every time.Duration) ([]byte, error) {
	var rules []string
	for _, f := range cfg.RuleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		rules = append(rules, abs)
	}
	var jobs []map[string]any
	for i, tg := range cfg.Targets {
		u, err := url.Parse(tg.URL)
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", tg.URL, err)
		}
		job := map[string]any{
			"job_name":       fmt.Sprintf("lambdaflow-%d", i),
			"metrics_path":   "/metrics",
			"scheme":         u.Scheme,
			"static_configs": []map[string]any{{"targets": []string{u.Host}}},
		}
		if tg.Token != "" {
			job["authorization"] = map[string]string{"credentials": tg.Token}
		}
		jobs = append(jobs, job)
	}
	return json.MarshalIndent(map[string]any{
		"global":         map[string]string{"scrape_interval": every.String(), "evaluation_interval": every.String()},
		"rule_files":     rules,
		"scrape_configs": jobs,
	}, "", "  ")
}

// Sample is one series of a query's answer.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query evaluates expr now: the samples of an instant vector, or one
// sample without labels for a scalar. An error names what Prometheus
// refused.
func (s *Server) Query(ctx context.Context, expr string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.get(ctx, "/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]Sample, 0, len(vec))
		for _, v := range vec {
			f, err := value(v.Value[1])
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Metric: v.Metric, Value: f})
		}
		return out, nil
	case "scalar":
		var sc [2]any
		if err := json.Unmarshal(data.Result, &sc); err != nil {
			return nil, err
		}
		f, err := value(sc[1])
		return []Sample{{Value: f}}, err
	}
	return nil, fmt.Errorf("query %s: a %s answer, want a vector or a scalar", expr, data.ResultType)
}

func value(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return math.NaN(), fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// LabelValues lists the values label takes in the series match selects
// (what Grafana's label_values(match, label) lists).
func (s *Server) LabelValues(ctx context.Context, label, match string) ([]string, error) {
	var out []string
	err := s.get(ctx, "/api/v1/label/"+url.PathEscape(label)+"/values?match[]="+url.QueryEscape(match), &out)
	return out, err
}

// Alert is an alert Prometheus holds: pending (its expression is true, for
// less than its `for`) or firing.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

// Alerts lists the alerts pending and firing.
func (s *Server) Alerts(ctx context.Context) ([]Alert, error) {
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	err := s.get(ctx, "/api/v1/alerts", &data)
	return data.Alerts, err
}

// Rule is a rule as its last evaluation left it.
type Rule struct {
	Name      string `json:"name"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	Type      string `json:"type"`
}

// Rules lists every rule of the rule files, once each has been evaluated
// at least once ("unknown" health before).
func (s *Server) Rules(ctx context.Context) ([]Rule, error) {
	var data struct {
		Groups []struct {
			Rules []Rule `json:"rules"`
		} `json:"groups"`
	}
	if err := s.get(ctx, "/api/v1/rules", &data); err != nil {
		return nil, err
	}
	var out []Rule
	for _, g := range data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// get reads an API answer's data into out, or its error.
func (s *Server) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %s, %w", path, resp.Status, err)
	}
	if body.Status != "success" {
		return errors.New(strings.TrimSpace(body.ErrorType + ": " + body.Error))
	}
	return json.Unmarshal(body.Data, out)
}
