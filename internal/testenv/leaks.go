package testenv

import (
	"fmt"
	"io"
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
//
// A failure prints a summary (the leaked goroutines counted by top
// function and creator, and the tests that were running when their
// creators started; see goroutineWatch) before and after goleak's full
// dump: a CI log cut at either end still names the culprit.
func VerifyNoLeaks(m *testing.M, opts ...goleak.Option) {
	w := startGoroutineWatch(watchEvery)
	code := m.Run()
	w.stop()
	if code == 0 {
		deadline := time.Now().Add(leakSettle)
		for {
			err := goleak.Find(opts...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				reportLeaks(os.Stderr, w, err)
				code = 1
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	os.Exit(code)
}

// reportLeaks writes goleak's error between two copies of its summary.
func reportLeaks(out io.Writer, w *goroutineWatch, err error) {
	summary := w.summarize(parseLeaks(err.Error()))
	fmt.Fprintf(out, "goleak: goroutines still running %s after the tests passed\n%s", leakSettle, summary)
	fmt.Fprintf(out, "goleak: %v\n", err)
	fmt.Fprintf(out, "goleak: (summary again, for a log cut at its head)\n%s", summary)
}
