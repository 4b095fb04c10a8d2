package deploy_test

import (
	"os"
	"os/exec"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/lambdaflow/lambdaflow/internal/promtest"
)

// The alerting rules and their unit tests.
const (
	alertsFile      = "prometheus/lambdaflow-alerts.yaml"
	alertsTestsFile = "prometheus/lambdaflow-alerts_test.yaml"
)

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type alertTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestAlertRules: promtool accepts the rules and passes their unit tests,
// and every alert says how bad it is and what to do, and is tested both
// firing and quiet.
func TestAlertRules(t *testing.T) {
	promtool := promtest.Bin(t, "promtool")
	if out, err := exec.Command(promtool, "check", "rules", alertsFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool, "test", "rules", "lambdaflow-alerts_test.yaml")
	cmd.Dir = "prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	var rules alertRules
	readYAML(t, alertsFile, &rules)
	var tests alertTests
	readYAML(t, alertsTestsFile, &tests)
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: annotations %v, want a summary and a description", r.Alert, r.Annotations)
			}
			if !firing[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: tested firing %v, quiet %v; want both", r.Alert, firing[r.Alert], quiet[r.Alert])
			}
		}
	}
	if n == 0 {
		t.Fatalf("%s holds no alert", alertsFile)
	}
}

func readYAML(t *testing.T, file string, out any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
