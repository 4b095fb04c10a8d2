package sinktest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// What a target's own tests need to reach the real engine they run against,
// besides the suite: its address, a namespace of their own, a logger, and
// the scripts of deploy/dev that stop and start it.

// Service returns the value of the environment variable that points the
// tests at a real service (LF_TEST_POSTGRES_DSN…). When it is unset the test
// is skipped with a message naming the script that starts the service, or
// fails when LF_REQUIRE_SERVICES=1 (make test, CI).
func Service(t testing.TB, envVar, service string) string {
	t.Helper()
	if v := os.Getenv(envVar); v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: start %s with `deploy/dev/services.sh up %s` and "+
		"`eval \"$(deploy/dev/services.sh env)\"`", envVar, service, service)
	testenv.Missing(t, msg)
	return ""
}

// UniqueName returns prefix followed by 12 random lowercase hex digits: a
// keyspace, schema or index prefix that no other test uses.
func UniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Logger returns a logger that writes warnings and errors to tb.Log, so that
// they show with the test that failed.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type logWriter struct{ tb testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// DevOutage returns a Harness.Outage that stops the engine with script (a
// deploy/dev script taking stop, start and status) and starts it again. It
// returns nil, which skips the outage case, unless the script runs the
// engine the tests use (it does for make test and CI): addr, the host:port
// the tests reach, must be 127.0.0.1 on the port the script listens on, from
// the environment variable portVar or else defaultPort, and the script's
// status must report it running.
func DevOutage(script, addr, portVar, defaultPort string) func(t *testing.T) func() {
	port := os.Getenv(portVar)
	if port == "" {
		port = defaultPort
	}
	if addr != "127.0.0.1:"+port || exec.Command(script, "status").Run() != nil {
		return nil
	}
	return func(t *testing.T) func() {
		if out, err := exec.Command(script, "stop").CombinedOutput(); err != nil {
			t.Fatalf("%s stop: %v\n%s", script, err, out)
		}
		return func() {
			if out, err := exec.Command(script, "start").CombinedOutput(); err != nil {
				t.Fatalf("%s start: %v\n%s", script, err, out)
			}
		}
	}
}
