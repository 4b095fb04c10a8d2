package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/lambdaflow/lambdaflow/internal/promtest"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks/all"
)

// composeService is the part of a compose service the checks read.
type composeService struct {
	Image     string
	Command   []string
	DependsOn yaml.Node `yaml:"depends_on"`
	Volumes   []string
	Ports     []string
	Env       map[string]string `yaml:"environment"`
	Deploy    struct{ Replicas int }
}

// TestComposeFile checks deploy/compose/compose.yaml without a Docker
// engine (there is none on the development machines): three NATS nodes
// routed to each other, every dependency and mounted file exists, host ports
// are not reused, every Lambdaflow container runs known roles, together all
// of them, each in at least two containers, on a pipeline that validates and
// whose lake and sink the containers of a role can share.
func TestComposeFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]composeService
		Volumes  map[string]any
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	svcs := file.Services
	var nats []string
	for name := range svcs {
		if strings.HasPrefix(name, "nats-") {
			nats = append(nats, name)
		}
	}
	slices.Sort(nats)
	if !slices.Equal(nats, []string{"nats-1", "nats-2", "nats-3"}) {
		t.Fatalf("NATS services %v, want nats-1..3", nats)
	}
	for _, n := range nats {
		cmd := svcs[n].Command
		i := slices.Index(cmd, "--routes")
		if i < 0 || !slices.Contains(cmd, "-js") || !slices.Contains(cmd, "--name") {
			t.Fatalf("%s: command %v lacks -js, --name or --routes", n, cmd)
		}
		for _, r := range strings.Split(cmd[i+1], ",") {
			host := strings.TrimSuffix(strings.TrimPrefix(r, "nats://"), ":6222")
			if host == n || !slices.Contains(nats, host) {
				t.Fatalf("%s: route %q is not another NATS node", n, r)
			}
		}
	}
	hostPorts := map[string]string{}
	seenRoles := map[string]bool{}
	for name, s := range svcs {
		var deps []string
		switch s.DependsOn.Kind {
		case yaml.SequenceNode:
			for _, d := range s.DependsOn.Content {
				deps = append(deps, d.Value)
			}
		case yaml.MappingNode:
			for i := 0; i < len(s.DependsOn.Content); i += 2 {
				deps = append(deps, s.DependsOn.Content[i].Value)
			}
		}
		for _, d := range deps {
			if _, ok := svcs[d]; !ok {
				t.Errorf("%s depends on unknown service %s", name, d)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := file.Volumes[src]; !ok {
				t.Errorf("%s mounts volume %s, which is not declared", name, src)
			}
		}
		for _, p := range s.Ports {
			host, _, _ := strings.Cut(p, ":")
			if other, ok := hostPorts[host]; ok {
				t.Errorf("host port %s used by %s and %s", host, other, name)
			}
			hostPorts[host] = name
		}
		if s.Image != "lambdaflow/lambdaflow:dev" {
			continue
		}
		i := slices.Index(s.Command, "--role")
		if s.Command[0] != "run" || i < 0 {
			t.Fatalf("%s: command %v is not `run … --role ROLES`", name, s.Command)
		}
		for _, r := range strings.Split(s.Command[i+1], ",") {
			if !slices.Contains([]string{"ingest", "speed", "batch", "sinks", "serve"}, r) {
				t.Errorf("%s: unknown role %q", name, r)
			}
			seenRoles[r] = true
		}
		if s.Deploy.Replicas < 2 {
			t.Errorf("%s: deploy.replicas %d; every role runs in at least two containers, as on a cluster", name, s.Deploy.Replicas)
		}
		if n := s.Deploy.Replicas; n > 1 {
			// Replicas publishing a port need a range with one host port each.
			for _, p := range s.Ports {
				lo, hi, ok := strings.Cut(strings.Split(p, ":")[0], "-")
				a, _ := strconv.Atoi(lo)
				b, _ := strconv.Atoi(hi)
				if !ok || b-a+1 < n {
					t.Errorf("%s: %d replicas publish %s, want a range of %d host ports", name, n, p, n)
				}
			}
		}
		if !strings.Contains(s.Env["LAMBDAFLOW_BROKER_URL"], "nats-1:4222") {
			t.Errorf("%s: LAMBDAFLOW_BROKER_URL %q does not name the NATS nodes", name, s.Env["LAMBDAFLOW_BROKER_URL"])
		}
	}
	if len(seenRoles) != 5 {
		t.Errorf("the containers run roles %v, want all five", seenRoles)
	}
	env := map[string]string{"LAMBDAFLOW_BROKER_URL": "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222", "LAMBDAFLOW_DATA": "/data",
		"LF_S3_ACCESS_KEY": "lambdaflow", "LF_S3_SECRET_KEY": "lambdaflow-secret"}
	p, err := pipelines.Load(filepath.Join("compose", "pipeline.yaml"), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, all.Types())
	if err != nil {
		t.Fatalf("compose pipeline: %v", err)
	}
	if p.Broker.Replicas != 3 {
		t.Fatalf("compose pipeline: broker.replicas %d, want 3 on a 3-node cluster", p.Broker.Replicas)
	}
	// Several lake writers and sink processes: the lake on the S3 service, sinks in a database server.
	if !strings.HasPrefix(p.Lake.URL, "s3://") || !strings.Contains(p.Lake.Endpoint, "s3:") {
		t.Errorf("compose pipeline: lake %q at %q, want the compose file's S3 service", p.Lake.URL, p.Lake.Endpoint)
	}
	for _, sk := range p.Sinks {
		if sk.Type == "duckdb" {
			t.Errorf("compose pipeline: sink %s is a DuckDB file, which one process holds; the sinks run in several containers", sk.Name)
		}
	}
}

// TestComposeMonitoring checks the compose file's Prometheus and Grafana:
// promtool accepts the Prometheus configuration and the alerting rules it
// names, which are mounted where it looks for them; it scrapes every
// Lambdaflow service at the pipeline's HTTP port; Grafana's data source is
// that Prometheus, and its dashboard provider reads the mounted dashboard.
func TestComposeMonitoring(t *testing.T) {
	promtool := promtest.Bin(t, "promtool")
	conf := filepath.Join("compose", "monitoring", "prometheus.yml")
	if out, err := exec.Command(promtool, "check", "config", conf).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	var file struct{ Services map[string]composeService }
	readYAML(t, filepath.Join("compose", "compose.yaml"), &file)
	mounts := func(svc string) map[string]string { // target → source
		out := map[string]string{}
		for _, v := range file.Services[svc].Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 {
				out[parts[1]] = parts[0]
			}
		}
		return out
	}

	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			DNSSD []struct {
				Names []string
				Type  string
				Port  int
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, conf, &prom)
	pm := mounts("prometheus")
	if pm["/etc/prometheus/prometheus.yml"] != "./monitoring/prometheus.yml" {
		t.Errorf("prometheus mounts %v: want ./monitoring/prometheus.yml at /etc/prometheus/prometheus.yml", pm)
	}
	for _, r := range prom.RuleFiles {
		if src := pm["/etc/prometheus/"+r]; src != "./monitoring/"+r {
			t.Errorf("rule file %s is mounted from %q, want ./monitoring/%s", r, src, r)
		}
	}
	if len(prom.RuleFiles) == 0 {
		t.Error("prometheus.yml names no rule file")
	}
	var ours []string
	for name, s := range file.Services {
		if s.Image == "lambdaflow/lambdaflow:dev" {
			ours = append(ours, name)
		}
	}
	slices.Sort(ours)
	if len(prom.ScrapeConfigs) != 1 || len(prom.ScrapeConfigs[0].DNSSD) != 1 {
		t.Fatalf("scrape configs %+v: want one, by DNS", prom.ScrapeConfigs)
	}
	sd := prom.ScrapeConfigs[0].DNSSD[0]
	names := slices.Sorted(slices.Values(sd.Names))
	env := map[string]string{}
	p, err := pipelines.Load(filepath.Join("compose", "pipeline.yaml"), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, all.Types())
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(p.HTTP.Listen, ":")
	if !slices.Equal(names, ours) || sd.Type != "A" || strconv.Itoa(sd.Port) != port {
		t.Errorf("prometheus scrapes %v (%s) on port %d; want every Lambdaflow service %v on the pipeline's port %s", names, sd.Type, sd.Port, ours, port)
	}

	var ds struct {
		Datasources []struct{ Type, URL string }
	}
	readYAML(t, filepath.Join("compose", "monitoring", "grafana-datasources.yaml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" ||
		!slices.Contains(file.Services["prometheus"].Ports, "9090:9090") {
		t.Errorf("grafana data sources %+v: want the prometheus service on 9090", ds.Datasources)
	}
	var dp struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	readYAML(t, filepath.Join("compose", "monitoring", "grafana-dashboards.yaml"), &dp)
	gm := mounts("grafana")
	want := map[string]string{
		"/etc/grafana/provisioning/datasources/lambdaflow.yaml": "./monitoring/grafana-datasources.yaml",
		"/etc/grafana/provisioning/dashboards/lambdaflow.yaml":  "./monitoring/grafana-dashboards.yaml",
	}
	for target, src := range want {
		if gm[target] != src {
			t.Errorf("grafana mounts %q at %s, want %s", gm[target], target, src)
		}
	}
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers %+v: want one, of files", dp.Providers)
	}
	home := file.Services["grafana"].Env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if gm[home] != "../grafana/lambdaflow.json" || filepath.Dir(home) != dp.Providers[0].Options.Path {
		t.Errorf("grafana's home dashboard %s (mounted from %q) is not deploy/grafana/lambdaflow.json in the provider's directory %s", home, gm[home], dp.Providers[0].Options.Path)
	}
}
