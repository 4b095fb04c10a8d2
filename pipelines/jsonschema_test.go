package pipelines

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/pipelines/aggregate"
	"go.yaml.in/yaml/v3"
)

func loadJSONSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := JSONSchema()
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
	b, _ := JSONSchema()
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

// TestEveryFieldDocumented keeps the `doc` tags, which become the schema's
// descriptions, complete.
func TestEveryFieldDocumented(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(st reflect.Type) {
		if seen[st] {
			return
		}
		seen[st] = true
		for _, f := range fieldsOf(st) {
			if f.doc == "" {
				t.Errorf("%s.%s has no doc tag", st.Name(), st.Field(f.index).Name)
			}
			ft := st.Field(f.index).Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeFor[Pipeline]())
	walk(reflect.TypeFor[fieldSpec]())
}

func TestSchemaPatternsAgreeWithParsers(t *testing.T) {
	dur := regexp.MustCompile(durationPattern)
	for _, s := range []string{"90s", "5m", "168h", "7d", "1d12h", "1.5s", ".5s", "0", "-1m", "+2h", "500ms", "3us", "3µs", "", "-", "90", "d", "1.5d", "5x", "7 days", "1d-1h", "0.s"} {
		_, err := ParseDuration(s)
		if got := dur.MatchString(s); got != (err == nil) {
			t.Errorf("duration %q: pattern says %v, ParseDuration says %v", s, got, err)
		}
	}
	size := regexp.MustCompile(sizePattern)
	for _, s := range []string{"1024", "64KiB", "10MB", "2GiB", "1 TiB", "10kb", "100B", "", "GiB", "-1", "1.5GiB", "10 gigs", "10  MB"} {
		_, err := ParseByteSize(s)
		if got := size.MatchString(s); got != (err == nil) {
			t.Errorf("size %q: pattern says %v, ParseByteSize says %v", s, got, err)
		}
	}
	call := regexp.MustCompile(aggregatePattern)
	var examples []string
	for _, f := range aggregate.Funcs() {
		examples = append(examples, f.Example)
	}
	for _, s := range append(examples, "count()", " count( ) ", "sum(bytes)", "quantile(cpu, 0.95)", "quantile(cpu,1e-3)", "first(Url)", "count", "count(x)", "sum()", "sum(a, b)", "median(x)", "quantile(cpu)", "max(a.b)", "Sum(x)") {
		_, _, _, msg := parseAggregate(s)
		if got := call.MatchString(s); got != (msg == "") {
			t.Errorf("aggregate %q: pattern says %v, parseAggregate says %q", s, got, msg)
		}
	}
	hp := regexp.MustCompile(hostPortPattern)
	for _, s := range []string{"127.0.0.1:8080", ":8080", "[::1]:8080", "localhost:0", "8080", "host:", "::1:80", "a:b:80"} {
		v := &validator{pos: positions{val: map[string]Pos{}, bad: map[string]bool{}}}
		v.hostPort("x", s)
		if got := hp.MatchString(s); got != (len(v.errs) == 0) {
			t.Errorf("host:port %q: pattern says %v, validation says %v", s, got, v.errs)
		}
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
			k, v := n.Content[i].Value, n.Content[i+1]
			keys[k] = v
			sub := keyPath(path, k)
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
		req, _ := s["required"].([]any)
		if all, ok := s["allOf"].([]any); ok {
			for _, c := range all {
				cond := c.(map[string]any)
				want := cond["if"].(map[string]any)["properties"].(map[string]any)["type"].(map[string]any)["const"]
				if tn := keys["type"]; tn != nil && tn.Value == want {
					req = append(req, cond["then"].(map[string]any)["required"].([]any)...)
				}
			}
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
			out = append(out, checkSchema(root, s["items"].(map[string]any), c, indexPath(path, i))...)
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
	b, _ := JSONSchema()
	if len(b) == 0 || b[0] != '{' || b[len(b)-1] != '}' {
		t.Errorf("schema starts %q, ends %q", b[:1], b[len(b)-1:])
	}
}
