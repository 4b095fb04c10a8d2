package speed

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/plan"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	testenv.VerifyNoLeaks(m,
		// nats.go's object store publishes chunks asynchronously; the
		// goroutine that watches the connection for that may outlive it.
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
		// An object Get abandoned when its context ends (a checkpoint read
		// cut short by a stop) leaves nats.go's chunk handler blocked on its
		// pipe until the connection's message loop ends.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go/jetstream.(*obs).Get.func2"),
	)
}

// testPipelineYAML has one topic and a view per window kind; "all" uses
// every aggregate function.
const testPipelineYAML = `
version: 1
name: speedtest
data_dir: %s
broker: %s
topics:
  - name: metrics
    partitions: %d
    key: host
    time: ts
    schema: { ts: timestamp, host: string, region: string, cpu: double, bytes: long, note: "string?" }
views:
  - name: all
    from: metrics
    where: "cpu >= 0"
    group_by: [region]
    window: { type: tumbling, size: 1m, lateness: %s }
    retention: 1h
    aggregates:
      events: count()
      bytes: sum(bytes)
      cpu_sum: sum(cpu)
      avg_cpu: avg(cpu)
      avg_bytes: avg(bytes)
      min_cpu: min(cpu)
      max_cpu: max(cpu)
      min_bytes: min(bytes)
      max_bytes: max(bytes)
      hosts: count_distinct(host)
      p50_cpu: quantile(cpu, 0.5)
      p95_bytes: quantile(bytes, 0.95)
      first_host: first(host)
      last_cpu: last(cpu)
      started: min(ts)
      last_note: last(note)
  - name: hop
    from: metrics
    group_by: [host]
    window: { type: hopping, size: 3m, slide: 1m, lateness: %s }
    aggregates:
      events: count()
      bytes: sum(bytes)
  - name: sessions
    from: metrics
    group_by: [host]
    window: { type: session, gap: 2m, lateness: %s }
    aggregates:
      events: count()
      first_region: first(region)
      last_region: last(region)
`

type pipelineOpts struct {
	dir, url, listen string
	partitions       int
	lateness         string
}

func testPipeline(t testing.TB, o pipelineOpts) *pipelines.Pipeline {
	t.Helper()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	if o.partitions == 0 {
		o.partitions = 4
	}
	if o.lateness == "" {
		o.lateness = "30s"
	}
	src := fmt.Sprintf(testPipelineYAML, o.dir, brokerYAML(o.url, o.listen), o.partitions, o.lateness, o.lateness, o.lateness)
	p, err := pipelines.Parse("speedtest.yaml", []byte(src), nil, nil)
	if err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	return p
}

func brokerYAML(url, listen string) string {
	switch {
	case url != "":
		return fmt.Sprintf("{ url: %q }", url)
	case listen != "":
		return fmt.Sprintf("{ listen: %q }", listen)
	}
	return "{}"
}

func compile(t testing.TB, p *pipelines.Pipeline, view string) *plan.Plan {
	t.Helper()
	v := p.ViewByName(view)
	pl, err := plan.Compile(v, p.TopicByName(v.From))
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// base is the test's epoch: 2026-01-02T15:00:00Z.
var base = time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC).UnixMicro()

const (
	sec    = int64(1e6)
	minute = 60 * sec
)

// ev is an event of the metrics topic at base+at.
func ev(id string, at int64, host, region string, cpu float64, bytes int64) event.Event {
	t := base + at
	return event.Event{ID: id, Time: t, Values: []event.Value{
		{I: t, Valid: true}, {S: host, Valid: true}, {S: region, Valid: true},
		{F: cpu, Valid: true}, {I: bytes, Valid: true}, {},
	}}
}

// memStore is a Store in memory, keyed like the serving store: group
// values and window start.
type memStore struct {
	mu      sync.Mutex
	rows    map[string]map[string]viewrow.Row
	evicted map[string]int64
}

func newMemStore() *memStore {
	return &memStore{rows: map[string]map[string]viewrow.Row{}, evicted: map[string]int64{}}
}

func storeKey(r viewrow.Row) string { return fmt.Sprintf("%d|%s", r.Start, groupText(r.Group)) }

func groupText(g []event.Value) string {
	var b strings.Builder
	for _, v := range g {
		if !v.Valid {
			b.WriteString("null;")
			continue
		}
		fmt.Fprintf(&b, "%s|%d|%x;", v.S, v.I, math.Float64bits(v.F))
	}
	return b.String()
}

func (s *memStore) PutSpeed(view string, rows []viewrow.Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.rows[view]
	if m == nil {
		m = map[string]viewrow.Row{}
		s.rows[view] = m
	}
	for _, r := range rows {
		r.Key = ""
		m[storeKey(r)] = r
	}
}

func (s *memStore) DeleteSpeed(view string, rows []viewrow.Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		delete(s.rows[view], storeKey(r))
	}
}

func (s *memStore) EvictSpeed(view string, endBefore int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, r := range s.rows[view] {
		if r.End < endBefore {
			delete(s.rows[view], k)
			n++
		}
	}
	s.evicted[view] = endBefore
	return n
}

// dump renders a view's rows, sorted, one per line, for comparisons.
func (s *memStore) dump(view string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return dumpRows(mapValues(s.rows[view]))
}

func mapValues(m map[string]viewrow.Row) []viewrow.Row {
	out := make([]viewrow.Row, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

func dumpRows(rows []viewrow.Row) string {
	lines := make([]string, 0, len(rows))
	for _, r := range rows {
		lines = append(lines, rowText(r))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func rowText(r viewrow.Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s %s) %s final=%t =>", event.FormatTime(r.Start), event.FormatTime(r.End), groupText(r.Group), r.Final)
	for _, v := range r.Aggs {
		if !v.Valid {
			b.WriteString(" null")
			continue
		}
		fmt.Fprintf(&b, " %s|%d|%v", v.S, v.I, v.F)
	}
	return b.String()
}

// timeAt is base+at as a time.Time.
func timeAt(at int64) time.Time { return time.UnixMicro(base + at).UTC() }
