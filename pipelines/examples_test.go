package pipelines_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/sinks/warehouse"
)

// TestExamplesLoad keeps every example valid with an empty environment: each
// ${VAR} in them has a default.
func TestExamplesLoad(t *testing.T) {
	files, err := exampleFiles()
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v, %v", files, err)
	}
	for _, f := range files {
		if _, err := pipelines.Load(f, mapEnv(nil), sinkTypes); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
}

// TestQuickstart pins what `make run` relies on: only embedded parts, and
// every aggregate function in one view.
func TestQuickstart(t *testing.T) {
	p, err := pipelines.Load("examples/quickstart.yaml", mapEnv(nil), sinkTypes)
	if err != nil {
		t.Fatal(err)
	}
	if p.DataDir != "./data" || p.HTTP.Listen != "127.0.0.1:8080" || p.Broker.URL != "" {
		t.Errorf("data_dir %q, listen %q, broker url %q", p.DataDir, p.HTTP.Listen, p.Broker.URL)
	}
	if len(p.Topics) != 1 || p.Topics[0].Name != "metrics" || p.Topics[0].Partitions != 4 {
		t.Errorf("topics = %+v", p.Topics)
	}
	if len(p.Views) != 1 {
		t.Fatalf("views = %+v", p.Views)
	}
	v := p.Views[0]
	if v.Name != "cpu_by_region" || v.Window.Type != "tumbling" || v.Window.Size.String() != "1m" || v.Batch.Schedule != "*/5 * * * *" {
		t.Errorf("view = %+v", v)
	}
	var funcs []string
	for _, a := range v.Aggregates {
		funcs = append(funcs, a.Func)
	}
	slices.Sort(funcs)
	want := slices.Sorted(slices.Values(aggregate.Names()))
	if !reflect.DeepEqual(funcs, want) {
		t.Errorf("aggregate functions = %v, want all of %v", funcs, want)
	}
	if len(p.Sinks) != 1 || p.Sinks[0].Type != "duckdb" || p.Sinks[0].Name != "warehouse" ||
		!reflect.DeepEqual(p.Sinks[0].From, []string{"metrics", "cpu_by_region"}) {
		t.Errorf("sinks = %+v", p.Sinks)
	}

	p, err = pipelines.Load("examples/quickstart.yaml", mapEnv(map[string]string{"LAMBDAFLOW_DATA": "/srv/lf"}), sinkTypes)
	if err != nil || p.DataDir != "/srv/lf" {
		t.Errorf("with LAMBDAFLOW_DATA: data_dir %q, %v", p.DataDir, err)
	}
}

func TestOpsMetricsDSN(t *testing.T) {
	p, err := pipelines.Load("examples/ops-metrics.yaml", mapEnv(map[string]string{"WAREHOUSE_DSN": "postgres://x@db/ops"}), sinkTypes)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, ok := p.Sinks[0].Config.(*warehouse.PostgresConfig); !ok || cfg.DSN != "postgres://x@db/ops" {
		t.Errorf("config = %#v", p.Sinks[0].Config)
	}
}

// exampleFiles lists the example pipelines, leaving out their test files
// (*.test.yaml), which are in the pipeline-test format.
func exampleFiles() ([]string, error) {
	all, err := filepath.Glob("examples/*.yaml")
	var out []string
	for _, f := range all {
		if !strings.HasSuffix(f, ".test.yaml") {
			out = append(out, f)
		}
	}
	return out, err
}
