package cassandra

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: a
// session or client that Close did not release.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
