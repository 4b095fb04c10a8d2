package testenv

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakSettle is how long VerifyNoLeaks waits for goroutines to end after
// the tests passed. An embedded nats-server's stores close their loops
// after Shutdown returns, and on a loaded machine that takes seconds, more
// than goleak's own retries wait.
const leakSettle = 15 * time.Second

// VerifyNoLeaks runs the package's tests, then fails the run if
// goroutines other than those opts ignore are still running once they had
// leakSettle to end. Use it as TestMain's body (it exits).
func VerifyNoLeaks(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(leakSettle)
		for {
			err := goleak.Find(opts...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: goroutines still running %s after the tests passed: %v\n", leakSettle, err)
				code = 1
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	os.Exit(code)
}
