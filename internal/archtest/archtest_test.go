package archtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/lambdaflow/lambdaflow"

// layers gives every package of the module its layer, as
// docs/architecture.md draws them: a package may import packages of lower
// layers only. A new package needs a line here (and in the doc).
var layers = map[string]int{
	// Values: those of events, and the answers of the HTTP API.
	"pipelines/event": 0,
	"api":             0,
	// Foundations on the standard library alone (see foundations).
	"internal/binfmt": 0,
	"internal/retry":  0,
	// The pipeline: what the file is made of, the file, plans.
	"pipelines/expr":      1,
	"pipelines/aggregate": 1,
	"pipelines/viewrow":   1,
	// The topic the pipeline packages' tests share.
	"pipelines/internal/testtopic": 1,
	"pipelines":                    2,
	"pipelines/plan":               3,
	// What a token may do, from the file's tokens, for every protocol.
	"internal/access": 3,
	// What the runtime layers share: the log, the HTTP surface, metrics.
	"broker":            4,
	"internal/httpapi":  4,
	"internal/promread": 4,
	"batch/lakestore":   4,
	// The runtime layers, side by side: none imports another.
	"ingest":  5,
	"speed":   5,
	"batch":   5,
	"serving": 5,
	"sinks":   5,
	"console": 5,
	"groups":  5,
	"mirror":  5,
	// What builds on one layer: sink targets on the sink runner.
	"sinks/cassandra":     6,
	"sinks/elasticsearch": 6,
	"sinks/warehouse":     6,
	"sinks/sinktest":      6,
	// The Kafka listener builds on ingest's path into the log.
	"kafka": 6,
	// What puts layers together.
	"sinks/all": 7,
	"pipetest":  7,
	"sqlquery":  7,
	"client":    7,
	// Test support, imported by tests and test harnesses only: it sits
	// low so that any of them may use it.
	"internal/testenv":     0,
	"internal/fakeclock":   0,
	"internal/netns":       1,
	"internal/s3test":      1,
	"internal/parquetjava": 1,
	"internal/promtest":    1,
	"internal/natstest":    2,
	"internal/brokertest":  5,
	// What the benchmark harnesses share (running programs, medians):
	// it imports nothing of the module.
	"bench/measure": 0,
	// The binary, and the tests from outside.
	"cmd/lambdaflow":     8,
	"e2e":                8,
	"deploy":             8,
	"internal/archtest":  8,
	"bench/kafkaproduce": 8,
	"bench/peers":        8,
	"bench/backfill":     8,
	"bench/scale":        8,
}

// foundations import nothing of the module, only the standard library, so
// every package may use them, the pipeline packages too: they are not
// runtime packages.
var foundations = map[string]bool{
	"internal/binfmt": true, // the binary reader and writer of the persisted formats
	"internal/retry":  true, // the one retry loop
}

// pkg is what the rules need of one package.
type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages returns every package of the module with its imports (not
// its tests' imports: tests may start an in-process NATS server or load
// whole pipeline files with every sink type).
func listPackages(t *testing.T) []pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "list", "-json=ImportPath,Imports", module+"/...")
	cmd.Dir = filepath.Join("..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// violations checks the rules on pkgs and returns what breaks them, one
// line each, sorted.
func violations(pkgs []pkg, layers map[string]int) []string {
	var out []string
	for _, p := range pkgs {
		name, ok := strings.CutPrefix(p.ImportPath, module+"/")
		if p.ImportPath == module {
			name, ok = ".", true
		}
		if !ok {
			continue
		}
		level, known := layers[name]
		if !known {
			out = append(out, fmt.Sprintf("%s: has no layer; add it to docs/architecture.md and to internal/archtest", name))
			continue
		}
		for _, imp := range p.Imports {
			switch {
			case strings.HasPrefix(imp, "github.com/nats-io/") && name != "broker":
				out = append(out, fmt.Sprintf("%s imports %s: only broker talks to NATS", name, imp))
			case !strings.HasPrefix(imp, module+"/"):
			default:
				dep := strings.TrimPrefix(imp, module+"/")
				depLevel, depKnown := layers[dep]
				switch {
				case strings.HasPrefix(dep, "cmd/"):
					out = append(out, fmt.Sprintf("%s imports %s: nothing imports cmd", name, dep))
				case foundations[name]:
					out = append(out, fmt.Sprintf("%s imports %s: a foundation imports nothing of the module", name, dep))
				case isPipeline(name) && !isPipeline(dep) && !foundations[dep]:
					out = append(out, fmt.Sprintf("%s imports %s: the pipeline packages import no runtime package", name, dep))
				case !depKnown:
					// Reported as a package without a layer.
				case depLevel >= level:
					out = append(out, fmt.Sprintf("%s (layer %d) imports %s (layer %d): imports go to lower layers only", name, level, dep, depLevel))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func isPipeline(name string) bool {
	return name == "pipelines" || strings.HasPrefix(name, "pipelines/")
}

// TestImportRules checks the module's real import graph.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < len(layers)/2 {
		t.Fatalf("go list found %d packages, too few: is the test run inside the module?", len(pkgs))
	}
	for _, v := range violations(pkgs, layers) {
		t.Error(v)
	}
	// Every layer entry names a package that exists, so the table does not
	// rot.
	for name := range layers {
		if !slices.ContainsFunc(pkgs, func(p pkg) bool { return p.ImportPath == module+"/"+name }) {
			t.Errorf("layers lists %s, which is not a package of the module", name)
		}
	}
}

// TestRulesCatchViolations feeds the checker a made-up graph with one
// violation of each rule.
func TestRulesCatchViolations(t *testing.T) {
	m := func(name string, imports ...string) pkg {
		p := pkg{ImportPath: module + "/" + name}
		for _, i := range imports {
			if !strings.Contains(i, ".") {
				i = module + "/" + i
			}
			p.Imports = append(p.Imports, i)
		}
		return p
	}
	got := violations([]pkg{
		m("pipelines/event"),
		m("pipelines", "pipelines/event", "broker", "internal/binfmt"),
		m("internal/binfmt", "pipelines/event"),
		m("broker", "pipelines", "github.com/nats-io/nats.go"),
		m("speed", "broker", "batch", "github.com/nats-io/nats.go/jetstream"),
		m("batch", "serving", "pipelines/plan"),
		m("serving", "cmd/lambdaflow"),
		m("newpkg"),
		m("cmd/lambdaflow", "speed", "batch", "fmt"),
	}, layers)
	want := []string{
		"batch (layer 5) imports serving (layer 5): imports go to lower layers only",
		"internal/binfmt imports pipelines/event: a foundation imports nothing of the module",
		"newpkg: has no layer; add it to docs/architecture.md and to internal/archtest",
		"pipelines imports broker: the pipeline packages import no runtime package",
		"serving imports cmd/lambdaflow: nothing imports cmd",
		"speed (layer 5) imports batch (layer 5): imports go to lower layers only",
		"speed imports github.com/nats-io/nats.go/jetstream: only broker talks to NATS",
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}
