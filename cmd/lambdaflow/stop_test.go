package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// silentDatabase accepts connections and never answers, as a database
// behind a dead link does; it closes them when the test ends.
func silentDatabase(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// TestStopIsBoundedBySinkDatabase: with a sink whose database accepts
// connections and never answers, SIGTERM stops the process within
// shutdown_timeout (2s here; it used to take 30s), cleanly: the sink gives
// up its last flush in time, and a restart still has every event to
// deliver.
func TestStopIsBoundedBySinkDatabase(t *testing.T) {
	data := t.TempDir()
	port := strconv.Itoa(silentDatabase(t))
	s := startServerNotReady(t, "testdata/stop.yaml", data, "LF_SILENT_PORT="+port)
	if _, err := s.client().Publish(context.Background(), "events", []byte(`{"text":"a"}`+"\n"+`{"text":"b"}`), "", ""); err != nil {
		t.Fatal(err)
	}
	// The sink holds the rows: it has read them and cannot write them.
	waitFor(t, "the sink to read the events", func() error {
		if v := metricValue(t, s, `lambdaflow_sink_retries_total{component="sinks",pipeline="stop",sink="archive",source="events"}`); v == "" || v == "0" {
			return fmt.Errorf("no write attempt failed yet (retries %q)", v)
		}
		return nil
	})
	start := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit 60s after SIGTERM:\n%s", s.logs.String())
	}
	took := time.Since(start)
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, s.logs.String())
	}
	t.Logf("stopped in %s", took.Round(time.Millisecond))
	// Well within shutdown_timeout plus the time to start stopping; the
	// old fixed 30s flush would not fit.
	if took > 10*time.Second {
		t.Fatalf("the stop took %s; shutdown_timeout is 2s", took)
	}
	if !strings.Contains(s.logs.String(), `"msg":"soft stop: batch not flushed; it will be redelivered"`) {
		t.Errorf("the sink did not say it left its batch:\n%s", s.logs.String())
	}

	// Nothing is lost: a restart has both events, not yet delivered.
	s2 := startServerNotReady(t, "testdata/stop.yaml", data, "LF_SILENT_PORT="+port)
	if got := readAll(t, s2, "events"); len(got) != 2 {
		t.Fatalf("%d events after the restart, want 2", len(got))
	}
	lag, err := s2.client().Lag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lag {
		if l.Consumer == "sink.archive" && (l.Offset != 0 || l.Lag != 2) {
			t.Errorf("sink lag %+v, want offset 0 and lag 2", l)
		}
	}
}

// startServerNotReady starts the server of file and waits until every part
// but its sinks is ready.
func startServerNotReady(t *testing.T, file, dataDir string, extraEnv ...string) *server {
	t.Helper()
	s := launch(t, file, dataDir, extraEnv...)
	waitFor(t, "the server to start", func() error {
		select {
		case <-s.done:
			t.Fatalf("lambdaflow exited:\n%s", s.logs.String())
		default:
		}
		h, err := s.client().Ready(context.Background())
		if err != nil {
			return err
		}
		for part := range h.Down {
			if !strings.HasPrefix(part, "sink ") {
				return fmt.Errorf("%s down", part)
			}
		}
		return nil
	})
	return s
}
