package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// TestExamplesStart runs every example pipeline with all roles until it
// serves, then stops it with SIGINT: a file that validates must also start,
// whatever its sinks' databases are doing (they show in /readyz, not as a
// failure to start).
func TestExamplesStart(t *testing.T) {
	files, err := filepath.Glob("../../pipelines/examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".test.yaml") {
			continue
		}
		n++
		abs, _ := filepath.Abs(f)
		t.Run(filepath.Base(f), func(t *testing.T) {
			dir := t.TempDir()
			addr := testenv.FreeAddr(t)
			cmd := exec.Command(binary, "run", "-c", abs, "--listen", addr)
			cmd.Dir = dir // examples with data_dir ./data write here
			// A site's embedded NATS listens on a free port, not NATS' own.
			nats := testenv.FreeAddr(t)
			cmd.Env = append(os.Environ(), "LAMBDAFLOW_DATA="+filepath.Join(dir, "data"),
				"EU_NATS_LISTEN="+nats, "EU_NATS_URL=nats://"+nats)
			var logs bytes.Buffer
			cmd.Stdout, cmd.Stderr = &logs, &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			defer func() {
				cmd.Process.Kill()
				<-done
			}()
			deadline := time.Now().Add(60 * time.Second)
			for {
				resp, err := http.Get("http://" + addr + "/healthz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				select {
				case err := <-done:
					t.Fatalf("exited before serving (%v):\n%s", err, logs.String())
				case <-time.After(50 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("not serving after 60s:\n%s", logs.String())
				}
			}
			cmd.Process.Signal(os.Interrupt)
			select {
			case err := <-done:
				done <- err // for the deferred wait
				if err != nil {
					t.Fatalf("exit after SIGINT: %v\n%s", err, logs.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("did not stop within 60s of SIGINT:\n%s", logs.String())
			}
		})
	}
	if n != 5 {
		t.Fatalf("%d example pipelines, want 5", n)
	}
}

// TestMakeRunListen: `make run` takes LISTEN=host:port or PORT=n and passes
// it to --listen; without either the pipeline file's http.listen holds.
func TestMakeRunListen(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on this machine")
	}
	for _, c := range []struct {
		vars []string
		want string
	}{
		{nil, "bin/lambdaflow run -c pipelines/examples/quickstart.yaml\n"},
		{[]string{"LISTEN=0.0.0.0:9000"}, "bin/lambdaflow run -c pipelines/examples/quickstart.yaml --listen 0.0.0.0:9000\n"},
		{[]string{"PORT=9001"}, "bin/lambdaflow run -c pipelines/examples/quickstart.yaml --listen 127.0.0.1:9001\n"},
		{[]string{"PORT=9001", "LISTEN=[::1]:9002"}, "bin/lambdaflow run -c pipelines/examples/quickstart.yaml --listen [::1]:9002\n"},
	} {
		// -n prints the commands; the last is the one that runs the pipeline.
		out, err := exec.Command("make", append([]string{"-s", "-n", "-C", "../..", "run"}, c.vars...)...).Output()
		if err != nil {
			t.Fatalf("make -n run %v: %v", c.vars, err)
		}
		lines := strings.SplitAfter(strings.TrimSuffix(string(out), "\n"), "\n")
		if last := lines[len(lines)-1] + "\n"; last != c.want {
			t.Errorf("make run %v runs %q, want %q", c.vars, last, c.want)
		}
	}
}
