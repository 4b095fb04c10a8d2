// Package deploy_test checks the deployment files: the Helm chart renders
// (helm lint, helm template) into manifests that kubeconform accepts against
// the Kubernetes, KEDA and Prometheus Operator schemas, bad values are
// refused with a clear message, and the compose file is consistent. helm
// and kubeconform are Go programs, built from their modules once per
// version into the user's cache directory.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/sinks/all"
)

// The tools, at pinned versions.
const (
	helmPkg        = "helm.sh/helm/v4/cmd/helm@v4.3.2"
	kubeconformPkg = "github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0"
)

// tool returns the path of a Go program built with `go install pkg@version`
// into <user cache>/lambdaflow-tools/<name>-<version>/, building it the
// first time (helm takes about 3 minutes on two cores with an empty module
// cache). A lock keeps concurrent test processes from building it twice.
func tool(t *testing.T, pkg string) string {
	t.Helper()
	path, version, _ := strings.Cut(pkg, "@")
	name := filepath.Base(path)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "lambdaflow-tools", name+"-"+version)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	t.Logf("building %s (once per version)", pkg)
	cmd := exec.Command("go", "install", pkg)
	cmd.Dir = dir // outside the repository: go.mod is not touched
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// chartCopy copies the chart into a temporary directory without its NATS
// dependency, which cannot be downloaded here (its repository is not a
// package registry); the tests render with nats.enabled=false, as users do
// who bring their own NATS. helm refuses to render a chart whose declared
// dependencies are missing, even disabled ones.
func chartCopy(t *testing.T) string {
	t.Helper()
	src := filepath.Join("helm", "lambdaflow")
	dst := filepath.Join(t.TempDir(), "lambdaflow")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if rel == "Chart.yaml" {
			var chart map[string]any
			if err := yaml.Unmarshal(data, &chart); err != nil {
				return err
			}
			deps, _ := chart["dependencies"].([]any)
			if len(deps) != 1 || deps[0].(map[string]any)["name"] != "nats" {
				return fmt.Errorf("Chart.yaml: want exactly the nats dependency, have %v", deps)
			}
			delete(chart, "dependencies")
			if data, err = yaml.Marshal(chart); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// helm runs helm with args and returns stdout; stderr is in the error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, stderr bytes.Buffer
	cmd := exec.Command(tool(t, helmPkg), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.String(), nil
}

// kubeconform validates manifests strictly against the schemas in
// schemaDir; a kind without a schema is an error too.
func kubeconform(t *testing.T, schemaDir, manifests string) {
	t.Helper()
	if err := kubeconformErr(t, schemaDir, manifests); err != nil {
		t.Fatalf("%v\n--- manifests ---\n%s", err, manifests)
	}
}

func kubeconformErr(t *testing.T, schemaDir, manifests string) error {
	t.Helper()
	loc := filepath.Join(schemaDir, "{{ .ResourceKind }}{{ .KindSuffix }}.json")
	cmd := exec.Command(tool(t, kubeconformPkg), "-strict", "-summary", "-output", "text", "-schema-location", loc, "-")
	cmd.Stdin = strings.NewReader(manifests)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubeconform: %w\n%s", err, out)
	}
	t.Logf("kubeconform: %s", strings.TrimSpace(string(out)))
	return nil
}

// object is one rendered manifest.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   struct{ Name string }
	Data       map[string]string
	Spec       map[string]any
}

func decodeAll(t *testing.T, manifests string) []object {
	t.Helper()
	var objs []object
	dec := yaml.NewDecoder(strings.NewReader(manifests))
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if o.Kind != "" {
			objs = append(objs, o)
		}
	}
}

func kinds(objs []object) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.Kind]++
	}
	return m
}

// containerArgs returns the args of a Deployment's first container.
func containerArgs(o object) []string {
	tmpl := o.Spec["template"].(map[string]any)["spec"].(map[string]any)
	c := tmpl["containers"].([]any)[0].(map[string]any)
	var args []string
	for _, a := range c["args"].([]any) {
		args = append(args, a.(string))
	}
	return args
}

func TestHelmChart(t *testing.T) {
	chart := chartCopy(t)
	schemaDir := t.TempDir()
	writeKubeSchemas(t, schemaDir)
	const ext = "nats://nats-0.nats:4222,nats://nats-1.nats:4222,nats://nats-2.nats:4222"
	// --set splits on commas; the URL list keeps them escaped.
	base := []string{"--set", "nats.enabled=false", "--set", "broker.url=" + strings.ReplaceAll(ext, ",", `\,`)}
	if _, err := helm(t, append([]string{"lint", "--strict", chart}, base...)...); err != nil {
		t.Fatal(err)
	}

	t.Run("defaults", func(t *testing.T) {
		out, err := helm(t, append([]string{"template", "lf", chart, "--namespace", "data"}, base...)...)
		if err != nil {
			t.Fatal(err)
		}
		kubeconform(t, schemaDir, out)
		objs := decodeAll(t, out)
		want := map[string]int{"ConfigMap": 1, "Deployment": 4, "Service": 4}
		if got := kinds(objs); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("rendered kinds %v, want %v", got, want)
		}
		roles := map[string]string{}
		replicas := map[string]int{}
		for _, o := range objs {
			switch o.Kind {
			case "Deployment":
				args := containerArgs(o)
				i := slices.Index(args, "--role")
				if i < 0 {
					t.Fatalf("%s: no --role in %v", o.Metadata.Name, args)
				}
				roles[o.Metadata.Name] = args[i+1]
				replicas[o.Metadata.Name] = o.Spec["replicas"].(int)
				pod := o.Spec["template"].(map[string]any)["spec"].(map[string]any)
				if _, ok := pod["topologySpreadConstraints"]; !ok {
					t.Errorf("%s: its pods are not spread over nodes", o.Metadata.Name)
				}
			case "ConfigMap":
				// The pipeline users get validates, with the environment the pods have.
				env := map[string]string{"LAMBDAFLOW_BROKER_URL": ext, "LAMBDAFLOW_DATA": "/data",
					"LAMBDAFLOW_LAKE_URL": "s3://lambdaflow/lake", "LAMBDAFLOW_LAKE_ENDPOINT": "", "LAMBDAFLOW_LAKE_REGION": "us-east-1",
					"LAMBDAFLOW_LAKE_PATH_STYLE": "false", "WAREHOUSE_DSN": "postgres://lf@db:5432/lf"}
				p, err := pipelines.Parse("pipeline.yaml", []byte(o.Data["pipeline.yaml"]), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, all.Types())
				if err != nil {
					t.Fatalf("the chart's pipeline: %v", err)
				}
				if p.Broker.URL != ext || p.Broker.Replicas != 3 {
					t.Fatalf("the chart's pipeline: broker %+v", p.Broker)
				}
				if p.Lake.URL != "s3://lambdaflow/lake" {
					t.Fatalf("the chart's pipeline: lake.url %q, want the shared object storage", p.Lake.URL)
				}
			}
		}
		// A cluster: every role in several pods, those of a consumer sharing its partitions.
		wantRoles := map[string]string{"lf-lambdaflow-ingest": "ingest", "lf-lambdaflow-views": "speed,serve", "lf-lambdaflow-batch": "batch", "lf-lambdaflow-sinks": "sinks"}
		if fmt.Sprint(roles) != fmt.Sprint(wantRoles) {
			t.Fatalf("deployments and roles %v, want %v", roles, wantRoles)
		}
		wantReplicas := map[string]int{"lf-lambdaflow-ingest": 2, "lf-lambdaflow-views": 3, "lf-lambdaflow-batch": 2, "lf-lambdaflow-sinks": 2}
		if fmt.Sprint(replicas) != fmt.Sprint(wantReplicas) {
			t.Fatalf("replicas %v, want %v", replicas, wantReplicas)
		}
	})

	t.Run("a lake on a shared volume", func(t *testing.T) {
		out, err := helm(t, append([]string{"template", "lf", chart, "--set-file", "pipeline=" + localLakePipeline(t, "postgres"),
			"--set", "deployments.batch.persistence.enabled=true", "--set", "deployments.batch.persistence.accessMode=ReadWriteMany"}, base...)...)
		if err != nil {
			t.Fatal(err)
		}
		kubeconform(t, schemaDir, out)
		objs := decodeAll(t, out)
		if k := kinds(objs); k["PersistentVolumeClaim"] != 1 {
			t.Fatalf("rendered kinds %v, want one PersistentVolumeClaim", k)
		}
		for _, o := range objs {
			if o.Kind == "Deployment" && o.Metadata.Name == "lf-lambdaflow-batch" && (o.Spec["replicas"] != 2 || o.Spec["strategy"] != nil) {
				t.Fatalf("batch Deployment: replicas %v, strategy %v; want 2 pods rolling over one ReadWriteMany volume", o.Spec["replicas"], o.Spec["strategy"])
			}
		}
	})

	t.Run("keda, service monitor and alerting rules", func(t *testing.T) {
		out, err := helm(t, append([]string{"template", "lf", chart,
			"--set", "metrics.serviceMonitor.enabled=true",
			"--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.labels.release=kube-prometheus",
			"--set", "deployments.sinks.autoscaling.enabled=true",
			"--set", `deployments.sinks.autoscaling.consumer=sink\\..*`, // --set unescapes one backslash
			"--set", "deployments.speed.roles={speed}", "--set", "deployments.speed.autoscaling.enabled=true"}, base...)...)
		if err != nil {
			t.Fatal(err)
		}
		kubeconform(t, schemaDir, out)
		objs := decodeAll(t, out)
		if k := kinds(objs); k["ScaledObject"] != 2 || k["ServiceMonitor"] != 1 || k["Deployment"] != 5 || k["PrometheusRule"] != 1 {
			t.Fatalf("rendered kinds %v, want 5 Deployments, 2 ScaledObjects, a ServiceMonitor and a PrometheusRule", k)
		}
		var rules map[string]any
		readYAML(t, alertsFile, &rules)
		for _, o := range objs {
			// The rules as the file has them, Prometheus's templates
			// untouched by Helm's.
			if o.Kind == "PrometheusRule" && !reflect.DeepEqual(o.Spec, rules) {
				t.Fatalf("PrometheusRule spec:\n%v\nwant %s:\n%v", o.Spec, alertsFile, rules)
			}
			if o.Kind == "ScaledObject" && o.Metadata.Name == "lf-lambdaflow-sinks" {
				q := o.Spec["triggers"].([]any)[0].(map[string]any)["metadata"].(map[string]any)["query"].(string)
				if want := `lambdaflow_consumer_lag_events{pipeline="ops-metrics", consumer=~"sink\\..*"}`; !strings.Contains(q, want) {
					t.Fatalf("ScaledObject query %q does not select %s", q, want)
				}
			}
			if o.Kind == "Deployment" && (o.Metadata.Name == "lf-lambdaflow-sinks" || o.Metadata.Name == "lf-lambdaflow-speed") && o.Spec["replicas"] != nil {
				t.Fatalf("%s sets replicas although KEDA scales it", o.Metadata.Name)
			}
		}
	})

	t.Run("hpa on an external metric", func(t *testing.T) {
		out, err := helm(t, append([]string{"template", "lf", chart,
			"--set", "autoscaling.mode=hpa", "--set", "deployments.sinks.autoscaling.enabled=true"}, base...)...)
		if err != nil {
			t.Fatal(err)
		}
		kubeconform(t, schemaDir, out)
		if k := kinds(decodeAll(t, out)); k["HorizontalPodAutoscaler"] != 1 || k["ScaledObject"] != 0 {
			t.Fatalf("rendered kinds %v, want one HorizontalPodAutoscaler", k)
		}
	})

	t.Run("bad values are refused", func(t *testing.T) {
		for _, tc := range []struct {
			set  []string
			want string
		}{
			{[]string{"--set", "nats.enabled=false"}, "broker.url is required when nats.enabled is false"},
			{append([]string{"--set", "deployments.ingest.roles={ingest,speedy}"}, base...), `deployments.ingest.roles: unknown role "speedy"`},
			{append([]string{"--set", "deployments.batch.persistence.enabled=true"}, base...), "deployments.batch: persistence with a ReadWriteOnce volume needs replicas: 1"},
			{append([]string{"--set", "autoscaling.mode=magic", "--set", "deployments.sinks.autoscaling.enabled=true"}, base...), `autoscaling.mode "magic": want keda or hpa`},
			{append([]string{"--set", "deployments.batch.persistence.enabled=true", "--set", "deployments.batch.replicas=1", "--set", "deployments.batch.autoscaling.enabled=true"}, base...),
				"deployments.batch: autoscaling and a ReadWriteOnce volume do not mix"},
			{append([]string{"--set-file", "pipeline=" + localLakePipeline(t, "postgres")}, base...),
				"deployments.batch: several pods run the batch role and share the lake: put it on object storage"},
			{append([]string{"--set-file", "pipeline=" + localLakePipeline(t, "duckdb"), "--set", "deployments.batch.replicas=1"}, base...),
				"deployments.sinks: several pods run the sinks role, but sink warehouse is a DuckDB file"},
		} {
			_, err := helm(t, append([]string{"template", "lf", chart}, tc.set...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template %v: %v, want an error saying %q", tc.set, err, tc.want)
			}
		}
	})
}

// localLakePipeline writes a pipeline whose lake is a directory (no
// lake.url) and whose sink is of type sinkType, and returns its path.
func localLakePipeline(t *testing.T, sinkType string) string {
	t.Helper()
	sink := `{ name: warehouse, type: postgres, dsn: "postgres://lf@db:5432/lf", from: [metrics] }`
	if sinkType == "duckdb" {
		sink = `{ name: warehouse, type: duckdb, from: [metrics] }`
	}
	p := filepath.Join(t.TempDir(), "pipeline.yaml")
	body := `version: 1
name: local-lake
broker: { url: "${LAMBDAFLOW_BROKER_URL}", replicas: 3 }
topics:
  - { name: metrics, partitions: 6, schema: { ts: timestamp, host: string } }
sinks:
  - ` + sink + "\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
