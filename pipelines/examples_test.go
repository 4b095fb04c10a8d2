package pipelines_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"github.com/lambdaflow/lambdaflow/sinks/cassandra"
	"github.com/lambdaflow/lambdaflow/sinks/elasticsearch"
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

// TestExampleServiceAddresses: every address an example connects to or
// listens on comes from a variable with a default, so the examples run
// against services elsewhere without editing them.
func TestExampleServiceAddresses(t *testing.T) {
	type addrs struct {
		Listen, Data, DSN, ES, Index, Cassandra, Keyspace string
		NATSListen, Source                                string
	}
	get := func(t *testing.T, file string, env map[string]string) addrs {
		t.Helper()
		p, err := pipelines.Load(file, mapEnv(env), sinkTypes)
		if err != nil {
			t.Fatal(err)
		}
		a := addrs{Listen: p.HTTP.Listen, Data: p.DataDir, NATSListen: p.Broker.Listen}
		for _, tp := range p.Topics {
			for _, src := range tp.Sources {
				a.Source = src.URL
			}
		}
		for _, s := range p.Sinks {
			switch cfg := s.Config.(type) {
			case *warehouse.PostgresConfig:
				a.DSN = cfg.DSN
			case *elasticsearch.Config:
				a.ES, a.Index = strings.Join(cfg.URLs, ","), cfg.Index
			case *cassandra.Config:
				a.Cassandra, a.Keyspace = strings.Join(cfg.Hosts, ","), cfg.Keyspace
			}
		}
		return a
	}
	env := map[string]string{
		"LAMBDAFLOW_LISTEN": "0.0.0.0:9090", "LAMBDAFLOW_DATA": "/srv/lf", "WAREHOUSE_DSN": "postgres://x@db/ops",
		"ES_URL": "http://search:9200", "CASSANDRA_HOST": "cass:9042", "ES_INDEX_PREFIX": "test-", "CASSANDRA_KEYSPACE": "test_ops",
		"EU_NATS_LISTEN": "0.0.0.0:4333", "EU_NATS_URL": "nats://eu.example:4333",
	}
	for _, c := range []struct {
		file      string
		dflt, set addrs
	}{
		{"examples/quickstart.yaml", addrs{Listen: "127.0.0.1:8080", Data: "./data"}, addrs{Listen: "0.0.0.0:9090", Data: "/srv/lf"}},
		{"examples/clickstream.yaml", addrs{Listen: "127.0.0.1:8080", Data: "./data", ES: "http://127.0.0.1:9200", Index: "{name}-{yyyy.MM.dd}"},
			addrs{Listen: "0.0.0.0:9090", Data: "/srv/lf", ES: "http://search:9200", Index: "{name}-{yyyy.MM.dd}"}},
		{"examples/ops-metrics.yaml",
			addrs{Listen: "127.0.0.1:8080", Data: "./data", DSN: "postgres://lambdaflow@127.0.0.1:5432/lambdaflow?sslmode=disable",
				ES: "http://127.0.0.1:9200", Index: "{name}", Cassandra: "127.0.0.1:9042", Keyspace: "ops"},
			addrs{Listen: "0.0.0.0:9090", Data: "/srv/lf", DSN: "postgres://x@db/ops",
				ES: "http://search:9200", Index: "test-{name}", Cassandra: "cass:9042", Keyspace: "test_ops"}},
		{"examples/site-eu.yaml", addrs{Listen: "127.0.0.1:8081", Data: "./data-eu", NATSListen: "127.0.0.1:4222"},
			addrs{Listen: "0.0.0.0:9090", Data: "/srv/lf", NATSListen: "0.0.0.0:4333"}},
		{"examples/site-hq.yaml", addrs{Listen: "127.0.0.1:8080", Data: "./data-hq", Source: "nats://127.0.0.1:4222"},
			addrs{Listen: "0.0.0.0:9090", Data: "/srv/lf", Source: "nats://eu.example:4333"}},
	} {
		if got := get(t, c.file, nil); got != c.dflt {
			t.Errorf("%s with no variables: %+v, want %+v", c.file, got, c.dflt)
		}
		if got := get(t, c.file, env); got != c.set {
			t.Errorf("%s with the variables set: %+v, want %+v", c.file, got, c.set)
		}
	}
	files, _ := exampleFiles()
	if len(files) != 5 {
		t.Errorf("%d examples, the test knows 5", len(files))
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
