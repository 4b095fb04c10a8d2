package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// TestBuildWithoutDuckDB builds the binary the way an ingest-only node
// without a C toolchain would (CGO_ENABLED=0, -tags noduckdb), then checks
// that it validates a pipeline without DuckDB and refuses one with a duckdb
// sink, naming where. DuckDB is the only dependency that needs cgo.
func TestBuildWithoutDuckDB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped in -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "lambdaflow")
	build := exec.Command("go", "build", "-tags", "noduckdb", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build -tags noduckdb: %v\n%s", err, out)
	}

	ok := filepath.Join(dir, "ok.yaml")
	duck := filepath.Join(dir, "duck.yaml")
	const head = "version: 1\nname: x\ntopics:\n  - name: m\n    schema: { ts: timestamp }\n"
	os.WriteFile(ok, []byte(head), 0o644)
	os.WriteFile(duck, []byte(head+"sinks:\n  - { name: w, type: postgres, dsn: \"postgres://x\", from: [m] }\n  - { name: local, type: duckdb, from: [m] }\n"), 0o644)
	out, err := exec.Command(bin, "validate", ok).CombinedOutput()
	if err != nil || string(out) != ok+": ok\n" {
		t.Fatalf("validate without duckdb: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "validate", duck)
	out, err = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("validate with a duckdb sink: exit %d (%v), want 1\n%s", cmd.ProcessState.ExitCode(), err, out)
	}
	want := regexp.MustCompile("^" + regexp.QuoteMeta(duck) + `:8:\d+: sinks\[1\]\.type: duckdb is not compiled into this binary \(it was built with -tags noduckdb\); use a build without that tag, or another sink type\n`)
	if !want.Match(out) {
		t.Fatalf("validate with a duckdb sink said:\n%s\nwant first a line matching %s", out, want)
	}
	// SQL needs DuckDB: the endpoint says so with a 501.
	served := filepath.Join(dir, "served.yaml")
	os.WriteFile(served, []byte(head+"data_dir: "+filepath.Join(dir, "data")+"\n"), 0o644)
	addr := testenv.FreeAddr(t)
	srv := exec.Command(bin, "run", "-c", served, "--listen", addr)
	var logs bytes.Buffer
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var status int
	var body []byte
	testenv.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
		resp, err := http.Post("http://"+addr+"/v1/sql", "text/plain", strings.NewReader("SELECT 1"))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		status = resp.StatusCode
		body, _ = io.ReadAll(resp.Body)
		return nil
	})
	if status != http.StatusNotImplemented || !strings.Contains(string(body), "SQL needs DuckDB, which this binary was built without (-tags noduckdb)") {
		t.Fatalf("POST /v1/sql without duckdb: %d %s\n%s", status, body, logs.String())
	}

	// run refuses the same file before anything starts.
	cmd = exec.Command(bin, "run", "-c", duck)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "sinks[1].type: duckdb is not compiled into this binary") || !strings.Contains(string(out), "nothing started") {
		t.Fatalf("run with a duckdb sink: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
}
