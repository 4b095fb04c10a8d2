package kafka

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// A client program the project does not write, driven through a small
// script (testdata/ClientCheck.java, testdata/confluent_check.py) whose
// modes print one line per fact.
type client struct {
	name string
	cmd  func(args ...string) []string
}

// javaClient is the Apache Kafka Java client from Maven Central, run as a
// single-file Java program against the jars deploy/dev/kafka-clients.sh
// fetched.
func javaClient(t *testing.T) client {
	t.Helper()
	java := tool(t, "java", "Debian package openjdk-17-jre-headless")
	lib := os.Getenv("LF_TEST_KAFKA_CLIENTS_LIB")
	if lib == "" {
		if root, err := filepath.Abs("../.services/kafka-clients/lib"); err == nil {
			lib = root
		}
	}
	if _, err := os.Stat(filepath.Join(lib, ".complete")); err != nil {
		testenv.Missing(t, "the Kafka Java client is not fetched: run deploy/dev/kafka-clients.sh (or set LF_TEST_KAFKA_CLIENTS_LIB)")
	}
	// Compiled once, not at every launch (a single-file launch compiles
	// each time, which costs seconds).
	javac := tool(t, "javac", "Debian package openjdk-17-jdk-headless")
	classes := t.TempDir()
	if out, err := exec.Command(javac, "-nowarn", "-d", classes, "-cp", filepath.Join(lib, "*"), "testdata/ClientCheck.java").CombinedOutput(); err != nil {
		t.Fatalf("javac ClientCheck.java: %v\n%s", err, out)
	}
	cp := filepath.Join(lib, "*") + string(os.PathListSeparator) + classes
	return client{name: "java", cmd: func(args ...string) []string {
		return append([]string{java, "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", cp, "ClientCheck"}, args...)
	}}
}

// confluentClient is confluent-kafka (librdkafka) from PyPI.
func confluentClient(t *testing.T) client {
	t.Helper()
	py := tool(t, "python3", "Debian package python3")
	if err := exec.Command(py, "-c", "import confluent_kafka").Run(); err != nil {
		testenv.Missing(t, "confluent-kafka is not installed: run deploy/dev/test-tools.sh (pip install confluent-kafka)")
	}
	src, _ := filepath.Abs("testdata/confluent_check.py")
	return client{name: "confluent-kafka", cmd: func(args ...string) []string {
		return append([]string{py, src}, args...)
	}}
}

func (c client) run(t *testing.T, args ...string) []string {
	t.Helper()
	argv := c.cmd(args...)
	start := time.Now()
	out, err := run(t, "", argv[0], argv[1:]...)
	t.Logf("%s %s took %s", c.name, args[0], time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", c.name, args[0], err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		// Keep the program's own lines; clients may log to the same output.
		if f := strings.Fields(l); len(f) > 0 && slices.Contains([]string{"offset", "error", "accepted", "record", "shared", "rebalanced"}, f[0]) {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestJavaClient(t *testing.T)      { clientScenario(t, javaClient(t)) }
func TestConfluentClient(t *testing.T) { clientScenario(t, confluentClient(t)) }

// clientScenario: produce with ids and acks=all, read from the beginning in
// offset order, an invalid record refused, a two-member group that
// rebalances when one member stops, committed offsets across a restart of
// the process, and SASL/PLAIN with good and bad credentials.
func clientScenario(t *testing.T, c client) {
	e := startWith(t, setup{topic: "    write_tokens: [writer-secret]"})
	writer := []string{"security.protocol=SASL_PLAINTEXT", "sasl.mechanism=PLAIN", "sasl.username=app", "sasl.password=writer-secret"}
	if c.name == "confluent-kafka" {
		writer[1] = "sasl.mechanisms=PLAIN"
	}
	if c.name == "java" {
		writer = append(writer[:2], `sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="app" password="writer-secret";`)
	}

	got := c.run(t, append([]string{"produce", e.addr, "3", c.name}, writer...)...)
	if want := []string{"offset 0", "offset 1", "offset 2"}; !slices.Equal(got, want) {
		t.Fatalf("produce: %q, want %q", got, want)
	}
	if bd, _ := e.b.Bounds(t.Context(), "metrics", 0); bd.End != 3 {
		t.Fatalf("partition 0 holds %d events, want 3", bd.End)
	}

	// A bad password is refused: nothing is produced.
	bad := slices.Clone(writer)
	for i := range bad {
		bad[i] = strings.ReplaceAll(bad[i], "writer-secret", "guess")
	}
	bad = append(bad, map[string]string{"java": "delivery.timeout.ms=5000", "confluent-kafka": "message.timeout.ms=5000"}[c.name])
	if c.name == "java" {
		bad = append(bad, "request.timeout.ms=4000", "linger.ms=0", "max.block.ms=5000")
	}
	argv := c.cmd(append([]string{"produce", e.addr, "1", "bad"}, bad...)...)
	if out, err := run(t, "", argv[0], argv[1:]...); err == nil {
		t.Errorf("produce with a bad password succeeded:\n%s", out)
	}
	// Without SASL the topic's write tokens keep the producer out.
	argv = c.cmd("produce", e.addr, "1", "anon", "enable.idempotence=false", "retries=0", "delivery.timeout.ms=5000", "request.timeout.ms=4000", "linger.ms=0")
	if c.name == "confluent-kafka" {
		argv = c.cmd("produce", e.addr, "1", "anon", "enable.idempotence=false", "retries=0", "message.timeout.ms=5000")
	}
	if out, err := run(t, "", argv[0], argv[1:]...); err == nil || !strings.Contains(strings.ToLower(out), "authorization") {
		t.Errorf("produce without SASL: %v, want a topic authorization error:\n%s", err, out)
	}

	got = c.run(t, append([]string{"invalid", e.addr}, writer...)...)
	want := "error InvalidRecordException"
	if c.name == "confluent-kafka" {
		want = "error INVALID_RECORD"
	}
	if !slices.Equal(got, []string{want}) {
		t.Errorf("invalid record: %q, want %q", got, want)
	}
	if bd, _ := e.b.Bounds(t.Context(), "metrics", 0); bd.End != 3 {
		t.Fatalf("partition 0 holds %d events after the invalid record, want 3", bd.End)
	}

	// Read from the beginning in offset order, and commit.
	got = c.run(t, "consume", e.addr, "g-"+c.name, "3")
	for i := range 3 {
		w := fmt.Sprintf(`record 0 %d %s-%d {"ts":"2026-01-02T15:04:%02dZ","host":"%s","cpu":%d.5,"note":null}`, i, c.name, i, i, map[string]string{"java": "java", "confluent-kafka": "py"}[c.name], i)
		if i >= len(got) || got[i] != w {
			t.Fatalf("consume: %q, want record %d as %s", got, i, w)
		}
	}

	// The group resumes where it committed, across a restart.
	e.restart()
	got = c.run(t, append([]string{"produce", e.addr, "1", c.name + "-after"}, writer...)...)
	if !slices.Equal(got, []string{"offset 3"}) {
		t.Fatalf("produce after the restart: %q", got)
	}
	got = c.run(t, "consume", e.addr, "g-"+c.name, "1")
	if len(got) != 1 || !strings.HasPrefix(got[0], "record 0 3 "+c.name+"-after-0 ") {
		t.Errorf("after the restart the group read %q, want only offset 3", got)
	}

	got = c.run(t, "group", e.addr, "g2-"+c.name)
	if !slices.Equal(got, []string{"shared", "rebalanced"}) {
		t.Errorf("group: %q", got)
	}
}
