// Package wait waits for a condition that other goroutines or processes
// make true: it checks the condition until it holds or a deadline passes,
// instead of sleeping a fixed time and hoping. It is for tests (For) and for
// test fixtures that wait for a process to come up (Poll).
//
// It imports nothing of Lambdaflow and keeps no state.
package wait

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// firstPause and maxPause bound the pause between two checks of For: short
// at first, so that a condition that holds soon is seen soon, then growing,
// so that a slow one (a query to a database) is not asked in a busy loop.
const (
	firstPause = time.Millisecond
	maxPause   = 50 * time.Millisecond
)

// For calls f until it returns nil, and fails t with f's last error when
// timeout passes first.
func For(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := firstPause
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPause)
	}
}

// Until is For for a condition without an error: it fails t saying what it
// waited for.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	For(t, timeout, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("still waiting for %s", what)
	})
}

// Poll calls f every every until it returns nil, ctx ends or timeout
// passes; it returns nil, ctx's error, or f's last error.
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
