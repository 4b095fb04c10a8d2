// Package sinktest is the conformance suite every sink target passes against
// its real engine, through the real sinks.Runner on a real (embedded) broker:
// rows equal the source exactly, a view's open rows are overwritten by its
// final rows and batch corrections and its tombstones remove rows,
// redelivery changes nothing, an engine outage loses and duplicates nothing,
// a poison record is dead-lettered while the rest lands, replay after the
// fix, and a new nullable field (a view's final among them) adds a column.
//
// A target's test provides a Harness and calls Run:
//
//	func TestConformance(t *testing.T) {
//		dsn := sinktest.Service(t, "LF_TEST_POSTGRES_DSN", "postgres")
//		sinktest.Run(t, sinktest.Harness{Sink: …, NewTarget: …, ReadAll: …, Poison: …})
//	}
//
// It also holds what the targets' own tests share, so that each target
// keeps only what is its engine's: Service, UniqueName, Logger and
// DevOutage to reach the real engine; AllTypesTopic and Rows for
// tests that write to a target directly; MetricSum; and BenchTopicRows and
// BenchAgainstBaseline for the write benchmarks against each engine's
// hand-written baseline.
//
// It must not know any engine: what differs between them is the Harness's.
package sinktest

import (
	"context"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/sinks"
)

// Harness adapts one target to the suite. Sink, NewTarget, ReadAll and
// Poison are required.
type Harness struct {
	// Sink returns the sink spec of one test case: its Type and the fields
	// that reach the engine (DSN, Path, Hosts, Keyspace, URLs, Index…),
	// pointing at a namespace (database schema, keyspace, index prefix,
	// file) that no other case uses and that holds no table yet. The suite
	// sets Name, From, Create and Batch itself.
	Sink func(t *testing.T) pipelines.Sink
	// NewTarget opens the target of spec; p is the case's pipeline, its
	// DataDir a fresh directory. The suite closes every target it opens and
	// never holds two targets of one case open at once. Opener(kind) opens
	// it as the program does.
	NewTarget func(t *testing.T, p *pipelines.Pipeline, spec *pipelines.Sink) sinks.Target
	// ReadAll returns every row of table as the engine holds it, through the
	// open target (type-assert it) or a connection of its own: column name
	// to nil, string, int64, float64, bool or time.Time. A missing column
	// means null; other integer and float types and non-UTC times are
	// accepted and normalised. Row order does not matter.
	ReadAll func(t *testing.T, target sinks.Target, spec *pipelines.Sink, table sinks.Table) []map[string]any
	// Poison returns a value that the target rejects for good (it returns a
	// RowErrors for it, or ErrPermanent for a batch of one) in a nullable
	// column of type ft: any of string, long, int, double, bool, timestamp.
	// PostgreSQL, for instance, rejects a string holding a NUL byte.
	Poison func(t *testing.T) (ft event.FieldType, v event.Value)

	// Outage, when set, stops the engine and returns a function that starts
	// it again and returns once it answers. Nil skips the outage case (an
	// embedded engine).
	Outage func(t *testing.T) (restart func())
	// Fix, when set, makes the engine accept the poison value from now on
	// (alters a column, a mapping…). When nil, the suite replays through a
	// target that replaces the poison value with a clean one, as a fixed
	// producer would have sent.
	Fix func(t *testing.T, target sinks.Target, spec *pipelines.Sink, table sinks.Table)
	// TimePrecision is the precision the engine keeps timestamps at (e.g.
	// time.Millisecond for Cassandra's timestamp); expected times are
	// truncated to it. Zero means microseconds, the precision of the log.
	TimePrecision time.Duration
	// Timeout bounds each wait of the suite (rows landing, the engine
	// recovering). Zero means 90s.
	Timeout time.Duration
}

func (h *Harness) check(t *testing.T) {
	t.Helper()
	if h.Sink == nil || h.NewTarget == nil || h.ReadAll == nil || h.Poison == nil {
		t.Fatal("sinktest: Harness needs Sink, NewTarget, ReadAll and Poison")
	}
	if h.TimePrecision <= 0 {
		h.TimePrecision = time.Microsecond
	}
	if h.Timeout <= 0 {
		h.Timeout = 90 * time.Second
	}
}

// Run runs every case of the suite as a subtest of t.
func Run(t *testing.T, h Harness) {
	h.check(t)
	t.Run("TopicRowsEqualSource", func(t *testing.T) { testTopicRows(t, h) })
	t.Run("ViewRowsEqualSource", func(t *testing.T) { testViewRows(t, h) })
	t.Run("OpenWindowsFinalRowsAndTombstones", func(t *testing.T) { testOpenWindows(t, h) })
	t.Run("FinalColumnAddedToOldTable", func(t *testing.T) { testFinalColumnAdded(t, h) })
	t.Run("RedeliveryChangesNothing", func(t *testing.T) { testRedelivery(t, h) })
	t.Run("EngineOutage", func(t *testing.T) {
		if h.Outage == nil {
			t.Skip("sinktest: the harness cannot stop its engine (Harness.Outage is nil)")
		}
		testOutage(t, h)
	})
	t.Run("PoisonRecordDeadLettered", func(t *testing.T) { testPoison(t, h) })
	t.Run("NewNullableField", func(t *testing.T) { testNewField(t, h) })
}

// Opener returns a Harness.NewTarget that opens targets as the program
// does, through kind.Open, logging to the test.
func Opener(kind sinks.Kind) func(t *testing.T, p *pipelines.Pipeline, spec *pipelines.Sink) sinks.Target {
	return func(t *testing.T, p *pipelines.Pipeline, spec *pipelines.Sink) sinks.Target {
		t.Helper()
		tg, err := kind.Open(context.Background(), p, spec, Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
}
