package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// kubeconform validates manifests against one JSON schema per kind. Its
// usual schemas are downloaded from a web site, which these machines cannot
// reach, so the tests make their own from Go modules, fetched through the
// module proxy like any dependency (into the module cache, not go.mod):
//   - Kubernetes' kinds from the OpenAPI v2 document of k8s.io/kubernetes
//     (api/openapi-spec/swagger.json), the spec the API server serves;
//   - the KEDA ScaledObject and the Prometheus Operator ServiceMonitor and PrometheusRule from
//     the CRDs in their modules (config/crd/bases, example/prometheus-operator-crd).
//
// Each schema is standalone (every definition it needs inlined under
// "definitions") and strict: objects reject unknown fields, as
// `kubeconform -strict` expects, which catches a misspelt or misplaced key.
const (
	kubernetesModule = "k8s.io/kubernetes@v1.36.3"
	kedaModule       = "github.com/kedacore/keda/v2@v2.19.0"
	promOpModule     = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
)

// moduleDir downloads a module (path@version) into the module cache and
// returns its directory.
func moduleDir(t *testing.T, mod string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Dir = t.TempDir() // outside the repository: go.mod is not touched
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || info.Dir == "" {
		t.Fatalf("go mod download %s: %v %s %s", mod, err, info.Error, out)
	}
	return info.Dir
}

// writeKubeSchemas writes the schemas into dir as
// <kind><suffix>.json, kubeconform's {{.ResourceKind}}{{.KindSuffix}}.
func writeKubeSchemas(t *testing.T, dir string) {
	t.Helper()
	var spec struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	data, err := os.ReadFile(filepath.Join(moduleDir(t, kubernetesModule), "api", "openapi-spec", "swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("swagger.json: %v", err)
	}
	n := 0
	for name, def := range spec.Definitions {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk := g.(map[string]any)
			group, _ := gvk["group"].(string)
			apiVersion := gvk["version"].(string)
			if group != "" {
				apiVersion = group + "/" + apiVersion
			}
			schema := map[string]any{
				"$schema":     "http://json-schema.org/draft-04/schema#",
				"$ref":        "#/definitions/" + name,
				"definitions": closure(spec.Definitions, name),
			}
			writeSchema(t, dir, gvk["kind"].(string), apiVersion, schema)
			n++
		}
	}
	if n < 50 {
		t.Fatalf("only %d Kubernetes kinds in %s's OpenAPI document", n, kubernetesModule)
	}
	crds := []string{
		filepath.Join(moduleDir(t, kedaModule), "config", "crd", "bases", "keda.sh_scaledobjects.yaml"),
		filepath.Join(moduleDir(t, promOpModule), "example", "prometheus-operator-crd", "monitoring.coreos.com_servicemonitors.yaml"),
		filepath.Join(moduleDir(t, promOpModule), "example", "prometheus-operator-crd", "monitoring.coreos.com_prometheusrules.yaml"),
	}
	for _, f := range crds {
		writeCRDSchemas(t, dir, f)
	}
}

// closure returns the definitions that root refers to, directly or not,
// made strict; their references stay "#/definitions/<name>".
func closure(defs map[string]map[string]any, root string) map[string]any {
	out := map[string]any{}
	var visit func(name string)
	visit = func(name string) {
		if _, ok := out[name]; ok {
			return
		}
		def := deepCopy(defs[name]).(map[string]any)
		out[name] = def
		for _, ref := range refs(def) {
			visit(ref)
		}
		strict(def, true)
	}
	visit(root)
	return out
}

// refs lists the definition names v refers to.
func refs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				out = append(out, strings.TrimPrefix(s, "#/definitions/"))
			} else {
				out = append(out, refs(x)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, refs(x)...)
		}
	}
	return out
}

// strict rewrites an OpenAPI schema into the JSON schema kubeconform
// checks: objects with properties reject unknown fields, int-or-string and
// quantities take strings or numbers, and nested values may be null (YAML
// renders an empty key as null; the API server accepts it).
func strict(v any, top bool) {
	switch s := v.(type) {
	case map[string]any:
		if s["format"] == "int-or-string" || s["x-kubernetes-int-or-string"] == true {
			delete(s, "type")
			delete(s, "format")
			s["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
		}
		if desc, _ := s["description"].(string); strings.HasPrefix(desc, "Quantity is a fixed-point") {
			s["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}
			delete(s, "type")
		}
		if _, ok := s["properties"]; ok && s["additionalProperties"] == nil && s["x-kubernetes-preserve-unknown-fields"] != true {
			s["additionalProperties"] = false
		}
		if t, ok := s["type"].(string); ok && !top {
			s["type"] = []any{t, "null"}
		}
		for k, x := range s {
			switch k {
			case "properties", "patternProperties", "definitions":
				if m, ok := x.(map[string]any); ok {
					for _, p := range m {
						strict(p, false)
					}
				}
			case "enum", "required", "x-kubernetes-group-version-kind", "x-kubernetes-list-map-keys":
			default:
				strict(x, false)
			}
		}
	case []any:
		for _, x := range s {
			strict(x, false)
		}
	}
}

// writeCRDSchemas writes one schema per served version of a CRD file.
func writeCRDSchemas(t *testing.T, dir, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Group string
			Names struct{ Kind string }
			// Versions keep their schemas as generic values.
			Versions []struct {
				Name   string
				Schema struct {
					OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if crd.Spec.Names.Kind == "" || len(crd.Spec.Versions) == 0 {
		t.Fatalf("%s: not a CustomResourceDefinition with versions", file)
	}
	for _, v := range crd.Spec.Versions {
		s := v.Schema.OpenAPIV3Schema
		if s == nil {
			t.Fatalf("%s: version %s has no openAPIV3Schema", file, v.Name)
		}
		strict(s, true)
		s["$schema"] = "http://json-schema.org/draft-04/schema#"
		writeSchema(t, dir, crd.Spec.Names.Kind, crd.Spec.Group+"/"+v.Name, s)
	}
}

// writeSchema names the file as kubeconform looks for it.
func writeSchema(t *testing.T, dir, kind, apiVersion string, schema map[string]any) {
	t.Helper()
	group, version, found := strings.Cut(apiVersion, "/")
	suffix := "-" + strings.ToLower(strings.Split(group, ".")[0])
	if found {
		suffix += "-" + strings.ToLower(version)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(schema); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.ToLower(kind)+suffix+".json")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = deepCopy(x)
		}
		return s
	default:
		return v
	}
}

// TestSchemasAreStrict shows that the generated schemas catch what they
// are for: a correct Deployment and ScaledObject pass, and a misspelt key,
// a value of the wrong type or a kind without a schema fail.
func TestSchemasAreStrict(t *testing.T) {
	dir := t.TempDir()
	writeKubeSchemas(t, dir)
	const good = `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replicas: 2
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: i
          ports: [{containerPort: 8080, name: http}]
          readinessProbe: {httpGet: {path: /readyz, port: http}}
          resources: {requests: {cpu: 1, memory: 1Gi}}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: x}
spec:
  scaleTargetRef: {name: x}
  triggers: [{type: prometheus, metadata: {serverAddress: "http://p:9090", query: "sum(x)", threshold: "10"}}]
`
	kubeconform(t, dir, good)
	for name, bad := range map[string]string{
		"misspelt key": strings.Replace(good, "replicas: 2", "replica: 2", 1),
		"wrong type":   strings.Replace(good, "replicas: 2", "replicas: two", 1),
		"nested typo":  strings.Replace(good, "containerPort: 8080", "containerport: 8080", 1),
		"crd typo":     strings.Replace(good, "scaleTargetRef", "scaleTarget", 1),
		"unknown kind": good + "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
	} {
		err := kubeconformErr(t, dir, bad)
		if err == nil {
			t.Errorf("%s: kubeconform accepted it", name)
			continue
		}
		t.Logf("%s: refused: %v", name, err)
	}
}
