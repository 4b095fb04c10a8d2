// Package brokertest opens the real broker (an embedded nats-server with
// JetStream on the pipeline's data dir) for the tests of the packages that
// read and write the log, so that each test talks to a real log and leaves
// nothing running.
//
// The broker's own tests cannot import it (they are in package broker).
package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// Open opens a broker on p with opts, creates the topics of p and closes
// the broker when the test ends. It fails t if the broker does not start
// within a minute.
func Open(t testing.TB, p *pipelines.Pipeline, opts broker.Options) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Open(ctx, p, opts)
	if err != nil {
		t.Fatalf("broker.Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.EnsureTopics(ctx); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	return b
}
