package kafka

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// tool returns the path of an external client; when it is missing the
// test skips, or fails under make test and CI (testenv.Missing), where
// deploy/dev/test-tools.sh installs it.
func tool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	testenv.Missing(t, name+" not found: run deploy/dev/test-tools.sh ("+install+")")
	return ""
}

// run runs a client with stdin and a deadline and returns its output.
func run(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestKcat: librdkafka's kcat produces with ids and acks=all, reads from
// the beginning in offset order, and has an invalid record refused.
func TestKcat(t *testing.T) {
	kcat := tool(t, "kcat", "Debian package kcat")
	e := start(t, "", "")
	ctx := context.Background()
	produce := func(id, line string) (string, error) {
		args := []string{"-b", e.addr, "-t", "metrics", "-P", "-p", "0", "-X", "acks=all", "-X", "enable.idempotence=true"}
		if id != "" {
			args = append(args, "-H", "id="+id)
		}
		return run(t, line+"\n", kcat, args...)
	}
	for i, id := range []string{"k-0", "k-1", "k-2"} {
		if out, err := produce(id, sample(i, "web")); err != nil {
			t.Fatalf("kcat produce %s: %v\n%s", id, err, out)
		}
	}
	// The same id again is a duplicate: nothing appended.
	if out, err := produce("k-1", sample(1, "web")); err != nil {
		t.Fatalf("kcat produce again: %v\n%s", err, out)
	}
	if bd, err := e.b.Bounds(ctx, "metrics", 0); err != nil || bd.End != 3 {
		t.Fatalf("partition 0: %+v %v; want 3 events", bd, err)
	}
	// An invalid record is refused, and nothing is written.
	out, err := produce("bad", `{"ts":"2026-01-02T15:04:05Z","host":"web","cpu":1,"colour":"red"}`)
	if err == nil && !strings.Contains(out, "failed to validate record") {
		t.Errorf("kcat produced an invalid record without error:\n%s", out)
	}
	if !strings.Contains(out, "failed to validate record") {
		t.Errorf("kcat output does not name the error:\n%s", out)
	}
	if bd, _ := e.b.Bounds(ctx, "metrics", 0); bd.End != 3 {
		t.Fatalf("partition 0 ends at %d after the invalid record, want 3", bd.End)
	}

	out, err = run(t, "", kcat, "-b", e.addr, "-C", "-t", "metrics", "-p", "0", "-o", "beginning", "-e", "-q",
		"-f", `%p %o %k %h %s\n`)
	if err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, out)
	}
	want := "0 0 web id=k-0 " + `{"ts":"2026-01-02T15:04:00Z","host":"web","cpu":0.5,"note":null}` + "\n" +
		"0 1 web id=k-1 " + `{"ts":"2026-01-02T15:04:01Z","host":"web","cpu":1.5,"note":null}` + "\n" +
		"0 2 web id=k-2 " + `{"ts":"2026-01-02T15:04:02Z","host":"web","cpu":2.5,"note":null}` + "\n"
	if out != want {
		t.Errorf("kcat consumed\n%s\nwant\n%s", out, want)
	}

	// Metadata as kcat lists it.
	out, err = run(t, "", kcat, "-b", e.addr, "-L", "-t", "metrics")
	if err != nil || !strings.Contains(out, `topic "metrics" with 2 partitions`) {
		t.Errorf("kcat -L: %v\n%s", err, out)
	}
}
