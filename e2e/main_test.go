package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
)

var (
	// binary is the lambdaflow binary under test: built once by TestMain,
	// or LF_BINARY.
	binary string
	// artifacts is where screenshots and process logs go: LF_ARTIFACTS_DIR
	// (make test sets ./artifacts), or a temporary directory.
	artifacts string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	tmp, err := os.MkdirTemp("", "lambdaflow-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	artifacts = filepath.Join(tmp, "artifacts")
	if dir := os.Getenv("LF_ARTIFACTS_DIR"); dir != "" {
		if artifacts, err = filepath.Abs(filepath.Join(dir, "e2e")); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if !testing.Short() {
		if binary, err = buildBinary(tmp); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	code := m.Run()
	stopShared()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: leaked goroutines:", err)
			return 1
		}
	}
	return code
}

// buildBinary builds ./cmd/lambdaflow once for every test, unless
// LF_BINARY names one already built (CI builds it for several suites).
func buildBinary(dir string) (string, error) {
	if b := os.Getenv("LF_BINARY"); b != "" {
		return filepath.Abs(b)
	}
	out := filepath.Join(dir, "lambdaflow")
	cmd := exec.Command("go", "build", "-o", out, "github.com/lambdaflow/lambdaflow/cmd/lambdaflow")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/lambdaflow: %w", err)
	}
	return out, nil
}

func requireBinary(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end tests build and run the binary; skipped in -short mode")
	}
}

// process is one running `lambdaflow run`.
type process struct {
	name    string
	url     string // http://127.0.0.1:port
	token   string
	dataDir string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has exited
	waitErr error
	log     *os.File
	client  *http.Client
	api     *client.Client // the API with the read token
	admin   *client.Client // the API with the admin token (recompute, replay)
	// mayBeDown names a sink whose database the test leaves unreachable
	// on purpose: readiness naming only it counts as ready.
	mayBeDown string
}

// consoleURL finds the listen address in the banner on stderr.
var consoleURL = regexp.MustCompile(`console\s+(http://\S+?)/\s`)

// startProcess runs `lambdaflow run` on pipeline (a file under testdata)
// with a fresh data directory and waits until it listens. Its stderr goes to
// <artifacts>/<name>.log. Its sink "archive" can never reach its database.
func startProcess(name, pipeline, token string) (*process, error) {
	abs, err := filepath.Abs(filepath.Join("testdata", pipeline))
	if err != nil {
		return nil, err
	}
	return startProcessWith(name, abs, token, "archive", nil)
}

// startProcessWith runs the pipeline file at path as startProcess does,
// with env added to the environment; mayBeDown names the sink whose
// database the test leaves unreachable (empty: none).
func startProcessWith(name, path, token, mayBeDown string, env []string) (*process, error) {
	dataDir, err := os.MkdirTemp("", "lambdaflow-e2e-data-")
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(artifacts, name+".log"))
	if err != nil {
		return nil, err
	}
	p := &process{name: name, token: token, dataDir: dataDir, done: make(chan struct{}), log: logf,
		client: &http.Client{Timeout: 30 * time.Second}, mayBeDown: mayBeDown}
	found := make(chan string, 1)
	p.cmd = exec.Command(binary, "run", "-c", path, "--listen", "127.0.0.1:0", "--log-format", "json")
	p.cmd.Env = append(append(os.Environ(), "LAMBDAFLOW_DATA="+dataDir, "E2E_TOKEN="+token), env...)
	p.cmd.Stdout = logf
	p.cmd.Stderr = &bannerWatcher{w: logf, found: found}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	select {
	case p.url = <-found:
		p.api = client.New(p.url, token, p.client)
		p.admin = client.New(p.url, token+"-admin", p.client)
	case <-p.done:
		p.cleanup()
		return nil, fmt.Errorf("lambdaflow run exited before listening (%v); log: %s", p.waitErr, tail(logf.Name()))
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, fmt.Errorf("lambdaflow run did not print its address in 60s; log: %s", tail(logf.Name()))
	}
	if err := p.waitReady(60 * time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// startT starts a process owned by t.
func startT(t *testing.T, name, pipeline, token string) *process {
	t.Helper()
	requireBinary(t)
	p, err := startProcess(name, pipeline, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	return p
}

// stop ends the process softly (SIGTERM: drain, checkpoint), hard after 30s.
func (p *process) stop() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	p.cleanup()
}

func (p *process) cleanup() {
	p.log.Close()
	os.RemoveAll(p.dataDir)
}

// bannerWatcher copies stderr to the log and reports the console URL once.
type bannerWatcher struct {
	w     io.Writer
	found chan string
	buf   []byte
	sent  bool
}

func (b *bannerWatcher) Write(data []byte) (int, error) {
	if !b.sent {
		b.buf = append(b.buf, data...)
		if m := consoleURL.FindSubmatch(b.buf); m != nil {
			b.found <- string(m[1])
			b.sent, b.buf = true, nil
		}
	}
	return b.w.Write(data)
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return string(data)
}

// waitReady polls /readyz until the process is ready. A sink the test keeps
// from its database (the test pipeline's "archive") is down for good, so a
// 503 naming only it counts as ready.
func (p *process) waitReady(timeout time.Duration) error {
	var last string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, body, err := p.do(http.MethodGet, "/readyz", nil, nil)
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			var ans struct {
				Down map[string]string `json:"down"`
			}
			if json.Unmarshal(body, &ans) == nil && len(ans.Down) > 0 && p.mayBeDown != "" {
				onlyIt := true
				for part, msg := range ans.Down {
					onlyIt = onlyIt && (strings.Contains(part, p.mayBeDown) || strings.Contains(msg, p.mayBeDown))
				}
				if onlyIt {
					return nil
				}
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("lambdaflow exited (%v); log: %s", p.waitErr, tail(p.log.Name()))
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %s: %s", timeout, last)
}

// do sends a request with the read token.
func (p *process) do(method, path string, body io.Reader, header http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, p.url+path, body)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if p.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

// bg is the context of the tests' API calls, which time out by the
// process's client.
var bg = context.Background()

// got fails t with err, or returns v: got(p.api.Topics(bg))(t).
func got[T any](v T, err error) func(t testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// post publishes events as NDJSON and returns the answer.
func (p *process) post(t *testing.T, topic string, events []map[string]any) api.IngestResult {
	t.Helper()
	return got(p.api.Publish(bg, topic, ndjson(t, events), "application/x-ndjson", ""))(t)
}

// ndjson encodes events one a line.
func ndjson(t testing.TB, events []map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// The shared process runs the seeded test pipeline for the API, console and
// top tests, which only read (and recompute) so their expectations hold
// whatever order they run in.
var shared struct {
	once sync.Once
	p    *process
	f    *fixture
	err  error
}

func sharedPipeline(t *testing.T) (*process, *fixture) {
	t.Helper()
	requireBinary(t)
	shared.once.Do(func() {
		shared.p, shared.err = startProcess("shared", "pipeline.yaml", "e2e-read-token")
		if shared.err == nil {
			shared.f, shared.err = seed(shared.p)
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.p, shared.f
}

func stopShared() {
	if shared.p != nil {
		shared.p.stop()
	}
}
