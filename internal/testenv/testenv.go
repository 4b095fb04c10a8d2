// Package testenv decides what a test does when the machine lacks something
// it needs (a service, a tool, a kernel feature): skip with a message that
// names what is missing and how to get it, or fail under `make test` and CI,
// which set LF_REQUIRE_SERVICES=1 and must never skip silently. It is test
// support only; nothing outside tests imports it.
package testenv

import (
	"os"
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
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(every)
	}
}
