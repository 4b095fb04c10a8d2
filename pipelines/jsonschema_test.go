package pipelines_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/lambdaflow/lambdaflow/pipelines"
)

func loadJSONSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := pipelines.JSONSchema(sinkTypes)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("JSONSchema is not valid JSON: %v", err)
	}
	return s
}

func TestJSONSchemaShape(t *testing.T) {
	s := loadJSONSchema(t)
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" || s["type"] != "object" || s["additionalProperties"] != false {
		t.Errorf("root: $schema %v, type %v, additionalProperties %v", s["$schema"], s["type"], s["additionalProperties"])
	}
	if got, want := fmt.Sprint(s["required"]), "[version name topics]"; got != want {
		t.Errorf("required = %s, want %s", got, want)
	}
	b, _ := pipelines.JSONSchema(sinkTypes)
	// Properties keep the order of the file format, not alphabetical order.
	if i, j := strings.Index(string(b), `"version"`), strings.Index(string(b), `"topics"`); i < 0 || j < i {
		t.Errorf("version should come before topics")
	}
	defs := s["$defs"].(map[string]any)
	for _, name := range []string{"HTTP", "Broker", "TLS", "Ingest", "Auth", "Topic", "View", "Window", "ViewBatch", "Lake", "LakeRoll", "Compact", "Sink", "SinkBatch", "FieldSpec", "interpolation", "duration", "size", "field_type"} {
		if defs[name] == nil {
			t.Errorf("$defs.%s missing", name)
		}
	}
	partitions := defs["Topic"].(map[string]any)["properties"].(map[string]any)["partitions"].(map[string]any)
	if partitions["default"] != 1.0 || partitions["description"] == "" {
		t.Errorf("topic partitions = %v", partitions)
	}
	wantInt := map[string]any{"type": "integer", "minimum": 1.0, "maximum": 1024.0}
	if got := partitions["anyOf"].([]any)[0]; !reflect.DeepEqual(got, wantInt) {
		t.Errorf("partitions anyOf[0] = %v, want %v", got, wantInt)
	}
}

// TestExamplesMatchJSONSchema checks every example against the schema with a
// small validator for the keywords the schema uses, so editors that use the
// schema accept what Load accepts.
func TestExamplesMatchJSONSchema(t *testing.T) {
	s := loadJSONSchema(t)
	files, _ := exampleFiles()
	files = append(files, "testdata/valid.yaml")
	if len(files) < 4 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		var doc yaml.Node
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		if problems := checkSchema(s, s, doc.Content[0], ""); len(problems) > 0 {
			t.Errorf("%s:\n\t%s", f, strings.Join(problems, "\n\t"))
		}
	}
}

func TestInvalidFileFailsJSONSchema(t *testing.T) {
	s := loadJSONSchema(t)
	var doc yaml.Node
	data, _ := os.ReadFile("testdata/invalid.yaml")
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	got := checkSchema(s, s, doc.Content[0], "")
	want := []string{
		"version: no alternative matches",
		"name: no alternative matches",
		"topics[0]: unknown key partitons",
		"topics[0].schema.cpu: no alternative matches",
		"topics[1].partitions: no alternative matches",
		"views[0].window.type: no alternative matches",
		"views[0]: missing aggregates",
		"views[1].window: want object",
		"views[1]: missing name",
		"sinks[0]: missing dsn",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// checkSchema validates node n against schema s (root resolves $ref) and
// returns the problems. It knows the keywords JSONSchema emits.
func checkSchema(root, s map[string]any, n *yaml.Node, path string) []string {
	if r, ok := s["$ref"].(string); ok {
		def := root["$defs"].(map[string]any)[strings.TrimPrefix(r, "#/$defs/")].(map[string]any)
		return checkSchema(root, def, n, path)
	}
	if alts, ok := s["anyOf"].([]any); ok {
		for _, a := range alts {
			if len(checkSchema(root, a.(map[string]any), n, path)) == 0 {
				return nil
			}
		}
		return []string{path + ": no alternative matches"}
	}
	var out []string
	bad := func(format string, args ...any) { out = append(out, path+": "+fmt.Sprintf(format, args...)) }
	switch s["type"] {
	case "object":
		if n.Kind != yaml.MappingNode {
			bad("want object")
			return out
		}
		props, _ := s["properties"].(map[string]any)
		keys := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			keys[n.Content[i].Value] = n.Content[i+1]
		}
		// An if/then on the type that matches adds its properties (the
		// sink types' own keys) and its required keys.
		var req []any
		if r, ok := s["required"].([]any); ok {
			req = append(req, r...)
		}
		if all, ok := s["allOf"].([]any); ok {
			for _, c := range all {
				cond := c.(map[string]any)
				want := cond["if"].(map[string]any)["properties"].(map[string]any)["type"].(map[string]any)["const"]
				if tn := keys["type"]; tn == nil || tn.Value != want {
					continue
				}
				then := cond["then"].(map[string]any)
				if tp, ok := then["properties"].(map[string]any); ok {
					merged := maps.Clone(props)
					maps.Copy(merged, tp)
					props = merged
				}
				if r, ok := then["required"].([]any); ok {
					req = append(req, r...)
				}
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			sub := pipelines.KeyPath(path, k)
			if pn, ok := s["propertyNames"].(map[string]any); ok && !regexp.MustCompile(pn["pattern"].(string)).MatchString(k) {
				bad("bad key %s", k)
			}
			if ps, ok := props[k].(map[string]any); ok {
				out = append(out, checkSchema(root, ps, v, sub)...)
			} else if ap, ok := s["additionalProperties"].(map[string]any); ok {
				out = append(out, checkSchema(root, ap, v, sub)...)
			} else {
				bad("unknown key %s", k)
			}
		}
		if m, ok := s["minProperties"].(float64); ok && float64(len(keys)) < m {
			bad("too few keys")
		}
		for _, r := range req {
			if keys[r.(string)] == nil {
				bad("missing %s", r)
			}
		}
	case "array":
		if n.Kind != yaml.SequenceNode {
			bad("want array")
			return out
		}
		if m, ok := s["minItems"].(float64); ok && float64(len(n.Content)) < m {
			bad("too few items")
		}
		for i, c := range n.Content {
			out = append(out, checkSchema(root, s["items"].(map[string]any), c, pipelines.IndexPath(path, i))...)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			bad("want scalar")
			return out
		}
		tag := n.ShortTag()
		switch s["type"] {
		case "string":
			if tag != "!!str" {
				bad("want string, got %s", tag)
			}
			if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(n.Value) {
				bad("%q does not match %s", n.Value, p)
			}
		case "integer":
			i, err := strconv.ParseInt(n.Value, 10, 64)
			if tag != "!!int" || err != nil {
				bad("want integer, got %s", tag)
			}
			if m, ok := s["minimum"].(float64); ok && float64(i) < m {
				bad("below minimum")
			}
			if m, ok := s["maximum"].(float64); ok && float64(i) > m {
				bad("above maximum")
			}
			if c, ok := s["const"].(float64); ok && float64(i) != c {
				bad("want %v", c)
			}
		case "boolean":
			if tag != "!!bool" {
				bad("want boolean, got %s", tag)
			}
		}
		if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == n.Value }) {
			bad("%q not in enum", n.Value)
		}
	}
	return out
}

func TestJSONSchemaHasNoTrailingNewline(t *testing.T) {
	b, _ := pipelines.JSONSchema(sinkTypes)
	if len(b) == 0 || b[0] != '{' || b[len(b)-1] != '}' {
		t.Errorf("schema starts %q, ends %q", b[:1], b[len(b)-1:])
	}
}
