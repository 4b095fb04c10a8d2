package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// binary is the lambdaflow binary built once for the tests that run it as
// a user would: as a separate process, killed for real.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lambdaflow-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "lambdaflow")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building lambdaflow: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running `lambdaflow run` process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
	done chan struct{}
}

// startServer runs `lambdaflow run -c file` with data under dataDir and waits
// until /readyz answers 200.
func startServer(t *testing.T, file, dataDir string, extraEnv ...string) *server {
	t.Helper()
	s := launch(t, file, dataDir, extraEnv...)
	waitReady(t, s)
	return s
}

// launch starts `lambdaflow run -c file` on a free port without waiting.
func launch(t *testing.T, file, dataDir string, extraEnv ...string) *server {
	t.Helper()
	return launchArgs(t, nil, file, dataDir, extraEnv...)
}

// waitReady waits until s answers /readyz with 200.
func waitReady(t *testing.T, s *server) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url("/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.done:
			t.Fatalf("lambdaflow exited before it was ready:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lambdaflow not ready after 60s:\n%s", s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// launchArgs is launch with extra arguments to run.
func launchArgs(t *testing.T, args []string, file, dataDir string, extraEnv ...string) *server {
	t.Helper()
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(binary, append([]string{"run", "-c", file, "--listen", addr, "--log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "LF_DATA="+dataDir)
	cmd.Env = append(cmd.Env, extraEnv...)
	s := &server{t: t, cmd: cmd, addr: addr, logs: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	return s
}

func (s *server) url(path string) string { return "http://" + s.addr + path }

// client is a client of the server's HTTP API.
func (s *server) client() *client.Client { return client.New(s.addr, "", nil) }

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.done
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.t.Fatalf("lambdaflow did not stop within 60s of SIGINT:\n%s", s.logs.String())
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Fatalf("lambdaflow exited %d after SIGINT:\n%s", code, s.logs.String())
	}
}

// runCLI runs the binary with args and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// readAll pages through every event of a topic with the message browser.
func readAll(t *testing.T, s *server, topic string) []api.BrowsedEvent {
	t.Helper()
	var all []api.BrowsedEvent
	sel := client.Browse{From: "0", Limit: 10000}
	for {
		page, err := s.client().Events(context.Background(), topic, sel)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 0 {
			return all
		}
		all = append(all, page.Events...)
		sel = client.Browse{Offsets: page.Next, Limit: 10000}
	}
}

func TestCLIValidate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 2\nname: x\ntopics:\n  - name: m\n    partitons: 2\n    schema: { ts: timestamp }\n"), 0o644)
	out, errOut, code := runCLI(t, "", "validate", "../../pipelines/examples/quickstart.yaml", bad)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, errOut)
	}
	if out != "../../pipelines/examples/quickstart.yaml: ok\n" {
		t.Errorf("stdout %q", out)
	}
	want := bad + ":1:10: version: must be 1, got 2\n" +
		bad + ":5:5: topics[0].partitons: unknown key (did you mean \"partitions\"?)\n" +
		"lambdaflow validate: 1 of 2 files invalid\n"
	if errOut != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
}

// TestCLIValidateTestFiles: a glob over the examples holds their test
// files too; validate checks those as test files instead of failing on
// them as pipelines.
func TestCLIValidateTestFiles(t *testing.T) {
	files, err := filepath.Glob("../../pipelines/examples/*.yaml")
	if err != nil || len(files) != 9 {
		t.Fatalf("examples: %v %v", files, err)
	}
	out, errOut, code := runCLI(t, "", append([]string{"validate"}, files...)...)
	cases := map[string]int{"clickstream": 4, "ops-metrics": 2, "quickstart": 6, "site-hq": 1}
	want := ""
	for _, f := range files {
		if name, ok := strings.CutSuffix(filepath.Base(f), ".test.yaml"); ok {
			want += fmt.Sprintf("%s: ok (test file, %d cases; run them with lambdaflow test)\n", f, cases[name])
		} else {
			want += f + ": ok\n"
		}
	}
	if code != 0 || out != want || errOut != "" {
		t.Fatalf("validate examples: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, out, want, errOut)
	}

	bad := filepath.Join(t.TempDir(), "bad.test.yaml")
	abs, _ := filepath.Abs("../../pipelines/examples/quickstart.yaml")
	os.WriteFile(bad, []byte("pipeline: "+abs+"\ncases:\n  - name: a\n    steps:\n      - expect: { view: nope, rows: [] }\n"), 0o644)
	out, errOut, code = runCLI(t, "", "validate", bad)
	if code != 1 || out != "" || errOut != bad+":5:25: unknown view \"nope\"\nlambdaflow validate: 1 of 1 files invalid\n" {
		t.Errorf("validate a bad test file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestCLISchemaAndVersion(t *testing.T) {
	out, _, code := runCLI(t, "", "schema")
	if code != 0 {
		t.Fatalf("schema exit %d", code)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", s["$schema"])
	}
	out, _, code = runCLI(t, "", "version")
	if code != 0 || !regexp.MustCompile(`^lambdaflow \S+.* go1\.\d+`).MatchString(out) {
		t.Errorf("version: %d %q", code, out)
	}
	_, errOut, code := runCLI(t, "", "frobnicate")
	if code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
}

// TestKill9WhileClientPublishes kills the server with SIGKILL while a client
// publishes, restarts it, and checks that every acknowledged event is in the
// log exactly once.
func TestKill9WhileClientPublishes(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, "testdata/crash.yaml", data)

	acked := map[string]bool{}
	sent := map[string]bool{}
	stop := make(chan struct{})
	clientDone := make(chan error, 1)
	go func() {
		// The client: sequential requests of 50 events with fresh ids; an
		// id counts as acknowledged only once a 200 answer has arrived.
		c := client.New(s.addr, "", &http.Client{Timeout: 10 * time.Second})
		for req := 0; ; req++ {
			select {
			case <-stop:
				clientDone <- nil
				return
			default:
			}
			var body bytes.Buffer
			ids := make([]string, 50)
			for i := range ids {
				ids[i] = fmt.Sprintf("r%d-e%d", req, i)
				fmt.Fprintf(&body, `{"id":%q,"ts":"2026-03-01T10:00:%02dZ","customer":"c%d","amount":%d.5}`+"\n", ids[i], i%60, (req*50+i)%17, i)
				sent[ids[i]] = true
			}
			if _, err := c.Publish(context.Background(), "orders", body.Bytes(), "application/x-ndjson", ""); err != nil {
				continue // the server is gone or refused: keep trying until told to stop
			}
			for _, id := range ids {
				acked[id] = true
			}
		}
	}()
	// Let some requests land, then kill the server mid-stream.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ts, err := s.client().Topics(context.Background())
		if err == nil && len(ts) > 0 && ts[0].Events >= 2000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fewer than 2000 events after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	close(stop)
	<-clientDone
	if len(acked) < 2000 {
		t.Fatalf("only %d events acknowledged before the kill", len(acked))
	}

	s2 := startServer(t, "testdata/crash.yaml", data)
	events := readAll(t, s2, "orders")
	seen := map[string]int{}
	offsets := map[int][]int64{}
	for _, e := range events {
		seen[e.ID]++
		offsets[e.Partition] = append(offsets[e.Partition], e.Offset)
		if !sent[e.ID] {
			t.Fatalf("event %q in the log was never sent", e.ID)
		}
	}
	for p, offs := range offsets {
		slices.Sort(offs)
		for i, o := range offs {
			if o != int64(i) {
				t.Fatalf("partition %d: offsets %v…: must be 0, 1, 2, … without gaps or repeats", p, offs[:min(i+1, len(offs))][max(0, i-3):])
			}
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s is in the log %d times", id, n)
		}
	}
	missing := 0
	for id := range acked {
		if seen[id] != 1 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events are not in the log", missing, len(acked))
	}
	t.Logf("%d events acknowledged, %d in the log after kill -9 and restart", len(acked), len(events))

	// Re-sending acknowledged events after the restart must not append them again.
	var body bytes.Buffer
	n := 0
	for id := range acked {
		fmt.Fprintf(&body, `{"id":%q,"ts":"2026-03-01T10:00:00Z","customer":"c1","amount":1}`+"\n", id)
		if n++; n == 100 {
			break
		}
	}
	ans, err := s2.client().Publish(context.Background(), "orders", body.Bytes(), "application/x-ndjson", "")
	if err != nil || ans.Accepted != 0 || len(ans.Results) != 100 {
		t.Fatalf("re-send after restart: %v, accepted %d of %d", err, ans.Accepted, len(ans.Results))
	}
	if got := len(readAll(t, s2, "orders")); got != len(events) {
		t.Fatalf("re-send appended: %d events, want %d", got, len(events))
	}
	s2.stop()
}

func TestCLIAgainstRunningServer(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, "testdata/crash.yaml", data)
	in := ""
	for i := 0; i < 25; i++ {
		in += fmt.Sprintf(`{"ts":"2026-03-01T10:00:%02dZ","customer":"c%d","amount":%d}`+"\n", i, i%5, i)
	}
	_, errOut, code := runCLI(t, in, "produce", "orders", "--addr", s.addr, "--batch", "10")
	if code != 0 || errOut != "produced 25 events to orders (0 duplicates)\n" {
		t.Fatalf("produce: %d %q", code, errOut)
	}
	out, _, code := runCLI(t, "", "topics", "--addr", s.addr)
	if code != 0 {
		t.Fatalf("topics: %d", code)
	}
	total := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 7 && f[0] == "orders" && f[1] == "events" {
			var n int
			fmt.Sscan(f[5], &n)
			total += n
		}
	}
	if total != 25 {
		t.Errorf("topics shows %d events of orders, want 25:\n%s", total, out)
	}
	out, _, code = runCLI(t, "", "tail", "orders", "--addr", s.addr, "--from", "0")
	if code != 0 || strings.Count(out, "\n") != 25 {
		t.Errorf("tail --from 0: exit %d, %d lines:\n%s", code, strings.Count(out, "\n"), out)
	}
	// --from TIME is the ingest time, like the console's: events of March
	// ingested a moment ago are after a minute ago, none after now.
	out, _, code = runCLI(t, "", "tail", "orders", "--addr", s.addr, "--from", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	if code != 0 || strings.Count(out, "\n") != 25 {
		t.Errorf("tail --from a minute ago: exit %d, %d lines, want 25:\n%s", code, strings.Count(out, "\n"), out)
	}
	out, _, code = runCLI(t, "", "tail", "orders", "--addr", s.addr, "--from", time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	if code != 0 || out != "" {
		t.Errorf("tail --from a minute ahead: exit %d, %q, want nothing", code, out)
	}
	out, _, code = runCLI(t, "", "lag", "--addr", s.addr)
	if code != 0 || !strings.HasPrefix(out, "CONSUMER") {
		t.Errorf("lag: %d %q", code, out)
	}
	// One process: it owns every partition of the lake writer.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, code = runCLI(t, "", "cluster", "--addr", s.addr)
		ok := code == 0 && strings.HasPrefix(out, "NODE") && strings.Contains(out, "ingest,speed,batch,sinks,serve") &&
			regexp.MustCompile(`\blake\s+0,1,2\n`).MatchString(out)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster: %d %q", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// --json prints the API's own answer: what a script reads.
	cliJSON := func(cmd string, v any) string {
		t.Helper()
		out, _, code := runCLI(t, "", cmd, "--json", "--addr", s.addr)
		if err := json.Unmarshal([]byte(out), v); code != 0 || err != nil {
			t.Fatalf("%s --json: exit %d, %v:\n%s", cmd, code, err, out)
		}
		return out
	}
	var topics api.Topics
	if out = cliJSON("topics", &topics); len(topics.Topics) != 1 || topics.Topics[0].Name != "orders" || topics.Topics[0].Events != 25 {
		t.Errorf("topics --json: want the orders topic with 25 events:\n%s", out)
	}
	var lag api.LagAnswer
	out = cliJSON("lag", &lag)
	lakeRows := 0
	for _, l := range lag.Consumers {
		if l.Consumer == "lake" && l.Topic == "orders" {
			lakeRows++
		}
	}
	if lakeRows != 3 {
		t.Errorf("lag --json has %d rows of the lake writer on orders, want one a partition (3):\n%s", lakeRows, out)
	}
	var cluster api.Cluster
	if out = cliJSON("cluster", &cluster); len(cluster.Nodes) != 1 || !slices.Equal(cluster.Nodes[0].Owns["lake"], []int{0, 1, 2}) {
		t.Errorf("cluster --json: want one process owning the lake's partitions 0,1,2:\n%s", out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tail", "nope"}, "lambdaflow tail: 404 Not Found: unknown topic \"nope\" (topics: orders)\n"},
		{[]string{"tail", "ordres"}, "lambdaflow tail: 404 Not Found: unknown topic \"ordres\" (did you mean \"orders\"?)\n"},
		{[]string{"produce", "order"}, "lambdaflow produce: batch 0 (input lines 1-1): 404 Not Found: unknown topic \"order\" (did you mean \"orders\"?)\n"},
		{[]string{"query", "orders"}, "lambdaflow query: 404 Not Found: unknown view \"orders\" (the pipeline has no views)\n"},
	} {
		_, errOut, code := runCLI(t, "{}\n", append(c.args, "--addr", s.addr)...)
		if code != 1 || errOut != c.want {
			t.Errorf("%v: exit %d, stderr %q; want 1, %q", c.args, code, errOut, c.want)
		}
	}
}
