package batch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/lambdaflow/lambdaflow/batch/lakestore"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/brokertest"
	"github.com/lambdaflow/lambdaflow/internal/fakeclock"
	"github.com/lambdaflow/lambdaflow/internal/s3test"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/serving"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		// Re-executed by TestLakeKill9 as the lake writer process.
		os.Exit(lakeChild())
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

// t0 is the start of the tests' event times: 2026-01-01T00:00:00Z.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testSchema() event.Schema {
	return event.Schema{
		{Name: "ts", Type: event.TypeTimestamp, Required: true},
		{Name: "host", Type: event.TypeString, Required: true},
		{Name: "region", Type: event.TypeString, Required: true},
		{Name: "cpu", Type: event.TypeDouble},
		{Name: "bytes", Type: event.TypeLong},
	}
}

func testTopic(name string, partitions int) pipelines.Topic {
	return pipelines.Topic{
		Name: name, Partitions: partitions, Retention: pipelines.Duration(168 * time.Hour),
		Key: "host", Time: "ts", Schema: testSchema(),
	}
}

// testView is the ops-metrics example view, minus the sketches' tolerance
// problems: count, sum, min, max, avg, count_distinct per region and minute.
func testView(name, from string) pipelines.View {
	return pipelines.View{
		Name: name, From: from, Where: "cpu >= 0", GroupBy: []string{"region"},
		Window: pipelines.Window{Type: "tumbling", Size: pipelines.Duration(time.Minute), Lateness: pipelines.Duration(30 * time.Second)},
		Aggregates: pipelines.Aggregates{
			{Name: "events", Func: "count"},
			{Name: "avg_cpu", Func: "avg", Field: "cpu"},
			{Name: "max_cpu", Func: "max", Field: "cpu"},
			{Name: "min_cpu", Func: "min", Field: "cpu"},
			{Name: "bytes", Func: "sum", Field: "bytes"},
			{Name: "hosts", Func: "count_distinct", Field: "host"},
		},
		Retention: pipelines.Duration(24 * time.Hour),
	}
}

func testPipeline(dir string, topics []pipelines.Topic, views []pipelines.View) *pipelines.Pipeline {
	return &pipelines.Pipeline{
		Version: 1, Name: "test", DataDir: dir,
		Broker: pipelines.Broker{Replicas: 1, Sync: "always", Prefix: "LF"},
		Topics: topics, Views: views,
		Lake: pipelines.Lake{
			Roll:    pipelines.LakeRoll{MaxRows: 1000, MaxAge: pipelines.Duration(5 * time.Minute)},
			Compact: pipelines.Compact{MinFiles: 4, Interval: pipelines.Duration(10 * time.Minute)},
		},
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openBroker opens a broker on p with clock now, creates its topics (the
// views' too) and closes it at the end of the test.
func openBroker(t testing.TB, p *pipelines.Pipeline, now func() time.Time) *broker.Broker {
	t.Helper()
	// The log holds the views' topics too.
	bp := *p
	bp.Topics = p.LogTopics()
	return brokertest.Open(t, &bp, broker.Options{Now: now, Registerer: prometheus.NewRegistry(), Logger: testLogger(t)})
}

// join makes the test process a node of the cluster on b's log, for
// Options.Owner; it leaves at the end of the test.
func join(t testing.TB, b *broker.Broker) *broker.Node {
	t.Helper()
	n, err := b.Join(context.Background(), broker.NodeOptions{Name: "test", Roles: []string{"batch"}})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// event i of a deterministic stream: id "<prefix>-<i>", 8 hosts in 3
// regions, event time at + i·step.
func testEvent(prefix string, i int, at time.Time, step time.Duration) event.Event {
	ts := at.Add(time.Duration(i) * step).UnixMicro()
	regions := []string{"eu-west", "us-east", "ap-south"}
	h := i % 8
	ev := event.Event{
		ID: fmt.Sprintf("%s-%d", prefix, i), Time: ts,
		Values: []event.Value{
			{I: ts, Valid: true},
			{S: fmt.Sprintf("host-%d", h), Valid: true},
			{S: regions[h%3], Valid: true},
			{F: float64(i%97) + 0.25, Valid: true},
			{I: int64(i%1000) * 10, Valid: true},
		},
	}
	if i%11 == 0 {
		ev.Values[4] = event.Value{} // some nulls
	}
	return ev
}

// appendEvents appends events to topic, partitioned by host as ingest
// would, in entries of up to 100 events, and returns how many went to
// each partition.
func appendEvents(t testing.TB, b *broker.Broker, topic string, parts int, evs []event.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	byPart := make([][]event.Event, parts)
	for _, e := range evs {
		p := int(e.Values[1].S[len(e.Values[1].S)-1]-'0') % parts
		byPart[p] = append(byPart[p], e)
	}
	for p, pe := range byPart {
		for len(pe) > 0 {
			k := min(len(pe), 100)
			if _, err := b.Append(ctx, topic, p, pe[:k]); err != nil {
				t.Fatalf("Append: %v", err)
			}
			pe = pe[k:]
		}
	}
}

// startBatch runs b.Run until the test ends (soft stop) and returns a
// func that stops it early and returns Run's error.
func startBatch(t testing.TB, b *Batch) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitLake waits until the lake holds every partition of topic up to the
// given next offsets. When clk is not nil it moves past max_age at every
// look, so that open files are closed.
func waitLake(t testing.TB, b *Batch, clk *fakeclock.Clock, topic string, want map[int]int64) {
	t.Helper()
	testenv.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		if clk != nil {
			clk.Add(b.p.Lake.Roll.MaxAge.D())
		}
		m := b.manifestOf(topic)
		for p, n := range want {
			if got := m.partition(p).Next; got < n {
				return fmt.Errorf("partition %d: lake at %d, want %d", p, got, n)
			}
		}
		return nil
	})
}

// logEnds returns the end offset of each partition of topic.
func logEnds(t testing.TB, b *broker.Broker, topic string) map[int]int64 {
	t.Helper()
	infos, err := b.Topics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, ti := range infos {
		if ti.Name == topic {
			for _, pi := range ti.Partitions {
				out[pi.Partition] = pi.EndOffset
			}
		}
	}
	return out
}

// readLake reads every live file of the manifest through the lake reader
// and returns the ids, failing on a duplicate.
func readLake(t testing.TB, b *Batch, topic string) map[string]event.Event {
	t.Helper()
	tl := b.lakes[topic]
	m, unpin := tl.ms.pin()
	defer unpin()
	out := map[string]event.Event{}
	for _, fe := range m.Files() {
		err := tl.scanFile(context.Background(), fe, scanOptions{}, func(sb *scanBatch) error {
			for _, e := range sb.Events {
				if _, dup := out[e.ID]; dup {
					return fmt.Errorf("duplicate id %s (file %s)", e.ID, fe.Path)
				}
				e.Values = append([]event.Value(nil), e.Values...)
				out[e.ID] = e
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

var _ Store = (*serving.Store)(nil)

// counterValue reads a counter or gauge.
func counterValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// heldGauges returns the lake's held gauges of topic as reg's /metrics
// gives them: files, periods and rows.
func heldGauges(t testing.TB, reg prometheus.Gatherer, topic string) (files, periods, rows float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != topic {
				continue
			}
			switch mf.GetName() {
			case "lambdaflow_lake_files_held":
				files = m.GetGauge().GetValue()
			case "lambdaflow_lake_periods_held":
				periods = m.GetGauge().GetValue()
			case "lambdaflow_lake_rows_held":
				rows = m.GetGauge().GetValue()
			default:
				continue
			}
			found++
		}
	}
	if found != 3 {
		t.Fatalf("%d of the 3 held gauges of %s gathered", found, topic)
	}
	return files, periods, rows
}

// lakeAt says where a test's lake lives: a local directory, or a fresh
// prefix of the development S3 server.
type lakeAt struct {
	s3  *s3test.Server // nil: a directory
	url string         // s3://bucket/prefix/
}

// eachLake runs f with the lake in a directory and with the lake on the
// development S3 server (skipped without it; failed under make test).
func eachLake(t *testing.T, f func(t *testing.T, at lakeAt)) {
	t.Run("dir", func(t *testing.T) { f(t, lakeAt{}) })
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Env(t)
		f(t, lakeAt{s3: &srv, url: srv.URL(srv.Prefix(t, "lake"))})
	})
}

// apply points p's lake at the place.
func (at lakeAt) apply(p *pipelines.Pipeline) {
	if at.s3 == nil {
		return
	}
	p.Lake.URL, p.Lake.Endpoint, p.Lake.Region = at.url, at.s3.Endpoint, at.s3.Region
	p.Lake.AccessKeyID, p.Lake.SecretAccessKey, p.Lake.PathStyle = at.s3.AccessKey, at.s3.SecretKey, true
	// Files read are kept, as with the default lake.cache: takeovers,
	// recoveries and compactions run with it.
	p.Lake.Cache = 64 << 20
}

// topic returns where a topic's lake is, for independent readers: a
// directory, or s3://bucket/prefix/topic.
func (at lakeAt) topic(p *pipelines.Pipeline, topic string) string {
	if at.s3 == nil {
		dir := p.Lake.Dir
		if dir == "" {
			dir = filepath.Join(p.DataDir, "lake")
		}
		return filepath.Join(dir, topic)
	}
	return at.url + topic
}

// openStore opens p's lake storage.
func openStore(t testing.TB, p *pipelines.Pipeline) lakestore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := OpenStore(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lakestore.CloseIdle(st) })
	return st
}

// startNATS runs a JetStream server of the test's own, shared by the
// processes (brokers) a test opens on it, and returns its URL.
func startNATS(t testing.TB) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns.ClientURL()
}
