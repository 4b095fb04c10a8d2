package serving

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testPipelineYAML = `
version: 1
name: servingtest
topics:
  - name: metrics
    partitions: 2
    time: ts
    schema: { ts: timestamp, host: string, region: string, zone: long, cpu: double }
views:
  - name: cpu
    from: metrics
    group_by: [region, zone]
    window: { type: tumbling, size: 1m }
    aggregates:
      events: count()
      avg_cpu: avg(cpu)
  - name: total
    from: metrics
    window: { type: tumbling, size: 1m }
    aggregates:
      events: count()
`

func testPipeline(t *testing.T) *pipelines.Pipeline {
	t.Helper()
	p, err := pipelines.Parse("servingtest.yaml", []byte(testPipelineYAML), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// base is 2026-01-02T15:00:00Z in UTC microseconds.
var base = time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC).UnixMicro()

const minute = int64(60e6)

func str(s string) event.Value  { return event.Value{S: s, Valid: true} }
func long(i int64) event.Value  { return event.Value{I: i, Valid: true} }
func dbl(f float64) event.Value { return event.Value{F: f, Valid: true} }
func null() event.Value         { return event.Value{} }

// row is a cpu row of window k (minutes after base).
func row(k int64, region string, zone int64, events int64, avg float64, final bool) viewrow.Row {
	return viewrow.Row{Start: base + k*minute, End: base + (k+1)*minute, Group: []event.Value{str(region), long(zone)},
		Aggs: []event.Value{long(events), dbl(avg)}, Final: final}
}
