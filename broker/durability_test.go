package broker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperDirEnv tells the test binary, re-executed by TestKill9Durability,
// to run TestHelperProcess as an appending child on that data dir.
const helperDirEnv = "LF_BROKER_HELPER_DIR"

// TestHelperProcess is not a test: it is the child process of
// TestKill9Durability. It appends to an embedded broker until killed and
// prints "ack <partition> <offset> <count> <id prefix>" after each Append
// returns.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("child process of TestKill9Durability")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // if nobody kills us
	defer cancel()
	b, err := Open(ctx, testPipeline(dir, testTopic("metrics", 2)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for part := range 2 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				n := 1 + i%40
				prefix := fmt.Sprintf("p%d.%d", part, i)
				off, err := b.Append(ctx, "metrics", part, testEvents(prefix, 0, n, base))
				if err != nil {
					continue
				}
				out.Lock()
				// One write per line: stdout is unbuffered, so a line is
				// out of the process once Fprintf returns.
				fmt.Fprintf(os.Stdout, "ack %d %d %d %s\n", part, off, n, prefix)
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestKill9Durability kills an appending process with SIGKILL and checks
// that every acknowledged event is in the log exactly once, at the offset
// Append returned, with offsets contiguous from 0.
func TestKill9Durability(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })

	type ack struct {
		part   int
		off    int64
		n      int
		prefix string
	}
	var acks []ack
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a partial last line was not acknowledged to anyone
		}
		if err != nil {
			t.Fatal(err)
		}
		var a ack
		if _, err := fmt.Sscanf(line, "ack %d %d %d %s\n", &a.part, &a.off, &a.n, &a.prefix); err != nil {
			continue // test framework output
		}
		acks = append(acks, a)
		if len(acks) == 400 {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if len(acks) < 400 {
		t.Fatalf("child stopped after %d acks: %v\n%s", len(acks), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", cmd.ProcessState)
	}

	b := openBroker(t, testPipeline(dir, testTopic("metrics", 2)), Options{})
	for part := range 2 {
		at := map[int64]string{} // offset -> event id
		seen := map[string]bool{}
		var next int64
		for _, e := range readAll(t, b, "metrics", part) {
			if e.Offset != next {
				t.Fatalf("partition %d: entry at %d after %d: offsets not contiguous", part, e.Offset, next)
			}
			for j, ev := range e.Events {
				if seen[ev.ID] {
					t.Fatalf("partition %d: event %s twice", part, ev.ID)
				}
				seen[ev.ID] = true
				at[e.Offset+int64(j)] = ev.ID
			}
			next = e.End()
		}
		acked := 0
		for _, a := range acks {
			if a.part != part {
				continue
			}
			acked++
			for j := range a.n {
				if want := fmt.Sprintf("%s-%d", a.prefix, j); at[a.off+int64(j)] != want {
					t.Fatalf("partition %d offset %d holds %q, acknowledged %q", part, a.off+int64(j), at[a.off+int64(j)], want)
				}
			}
		}
		t.Logf("partition %d: %d acknowledged appends, %d events in the log", part, acked, next)
		// Appends still continue exactly after the crash.
		mustAppend(t, b, "metrics", part, testEvents("after", 0, 1, base), next)
	}
}
