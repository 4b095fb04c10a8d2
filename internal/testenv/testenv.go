// Package testenv decides what a test does when the machine lacks something
// it needs (a service, a tool, a kernel feature): skip with a message that
// names what is missing and how to get it, or fail under `make test` and CI,
// which set LF_REQUIRE_SERVICES=1 and must never skip silently. It also
// holds the environment rules every test shares: waiting for a condition
// with a deadline (CheckFor, CheckUntil, Poll), picking a free loopback
// port (FreePort, FreeAddr), and failing a package whose tests leave
// goroutines running (VerifyNoLeaks, whose report names the test that
// started them). It is test support only; nothing outside tests imports
// it.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// RequireVar is the environment variable that turns a skip for a missing
// prerequisite into a failure. `make test` and CI set it to 1.
const RequireVar = "LF_REQUIRE_SERVICES"

// Required reports whether missing prerequisites fail tests (RequireVar=1)
// instead of skipping them.
func Required() bool { return os.Getenv(RequireVar) == "1" }

// Missing ends t because a prerequisite is missing: msg names it and says
// how to get it. It skips t, or fails it when Required.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if Required() {
		t.Fatal(msg + " (" + RequireVar + "=1)")
	}
	t.Skip(msg)
}

// CheckFor polls f every `every` until it returns nil, and fails t with f's
// last error once timeout has passed: how tests wait for what a real
// service does in its own time (an election, a catch-up), never by
// sleeping and hoping.
func CheckFor(t testing.TB, timeout, every time.Duration, f func() error) {
	t.Helper()
	if err := Poll(context.Background(), timeout, every, f); err != nil {
		t.Fatal(err)
	}
}

// CheckUntil is CheckFor for a condition without an error: it fails t
// saying what it waited for.
func CheckUntil(t testing.TB, timeout, every time.Duration, what string, cond func() bool) {
	t.Helper()
	CheckFor(t, timeout, every, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("still waiting for %s", what)
	})
}

// Poll is CheckFor for a caller that goes on either way: it polls f every
// `every` until it returns nil, ctx ends or timeout passes, and returns
// nil, ctx's error, or f's last error ("after <timeout>: <error>").
func Poll(ctx context.Context, timeout, every time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// FreePort returns a loopback TCP port that nothing listened on a moment
// ago, for a server the test starts (or for an address where nothing must
// answer).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreeAddr is FreePort as a host:port on 127.0.0.1.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}
