package all

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

// TestKindsDeclareTheirKeys checks every kind's declaration: a name, a doc,
// an Open, and a configuration struct whose every key has a doc tag (they
// become the JSON Schema's descriptions) and whose defaults decode.
func TestKindsDeclareTheirKeys(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		if k.Name == "" || k.Doc == "" || k.Open == nil || k.NewConfig == nil {
			t.Errorf("kind %q: name, doc, NewConfig and Open are required", k.Name)
			continue
		}
		if seen[k.Name] {
			t.Errorf("kind %q listed twice", k.Name)
		}
		seen[k.Name] = true
		cfg := reflect.TypeOf(k.NewConfig())
		if cfg.Kind() != reflect.Pointer || cfg.Elem().Kind() != reflect.Struct {
			t.Errorf("kind %q: NewConfig returns %s, want a pointer to a struct", k.Name, cfg)
			continue
		}
		for i := range cfg.Elem().NumField() {
			f := cfg.Elem().Field(i)
			if f.Tag.Get("yaml") == "" || f.Tag.Get("doc") == "" {
				t.Errorf("kind %q: field %s needs yaml and doc tags", k.Name, f.Name)
			}
		}
	}
}

// TestEveryKindLoads loads a sink of every kind with only its required keys:
// the declaration's defaults and checks accept it, and Config holds the
// kind's configuration.
func TestEveryKindLoads(t *testing.T) {
	required := map[string]string{
		"postgres":      "dsn: postgres://localhost/db",
		"duckdb":        "",
		"cassandra":     "hosts: [127.0.0.1]\n    keyspace: ks",
		"elasticsearch": "urls: [http://127.0.0.1:9200]",
	}
	for _, k := range Kinds() {
		keys, ok := required[k.Name]
		if !ok {
			t.Errorf("kind %q: add its required keys to this test", k.Name)
			continue
		}
		src := "version: 1\nname: p\ntopics:\n  - name: m\n    schema: {ts: timestamp}\nsinks:\n  - name: s\n    type: " +
			k.Name + "\n    from: [m]\n    " + keys + "\n"
		p, err := pipelines.Parse("p.yaml", []byte(src), nil, Types())
		if err != nil {
			t.Errorf("kind %q: %v", k.Name, err)
			continue
		}
		if got, want := reflect.TypeOf(p.Sinks[0].Config), reflect.TypeOf(k.NewConfig()); got != want {
			t.Errorf("kind %q: Config is %v, want %v", k.Name, got, want)
		}
	}
}

func TestOpenUnknownType(t *testing.T) {
	_, err := Open(context.Background(), &pipelines.Pipeline{}, &pipelines.Sink{Name: "s", Type: "mongodb"}, nil)
	if err == nil || !strings.Contains(err.Error(), `sink "s": unknown type "mongodb"`) {
		t.Errorf("Open of an unknown type: %v", err)
	}
}
