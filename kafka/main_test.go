package kafka

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/ingest"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

func TestMain(m *testing.M) {
	testenv.VerifyNoLeaks(m,
		// nats.go and franz-go keep a few process-wide goroutines.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kgo.(*Client).updateMetadataLoop"),
	)
}

// pipelineYAML is the test pipeline; %DIR% is the data directory, %ADDR%
// the Kafka listen address, %KAFKA% more keys of kafka (", tls: {...}"),
// %TOPIC% more keys of the topic and %EXTRA% more top-level keys.
const pipelineYAML = `version: 1
name: kt
data_dir: %DIR%
http: {listen: "127.0.0.1:0"}
kafka: {listen: "%ADDR%"%KAFKA%}
topics:
  - name: metrics
    partitions: 2
    key: host
    time: ts
    schema: {ts: timestamp, host: string, cpu: double, note: "string?"}
%TOPIC%
%EXTRA%
`

// env is one Lambdaflow process in the test: embedded log, ingest and the
// Kafka listener, plus ingest's HTTP handler.
type env struct {
	t   *testing.T
	dir string
	setup
	p      *pipelines.Pipeline
	b      *broker.Broker
	in     *ingest.Ingest
	srv    *Server
	http   *httptest.Server
	addr   string
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// setup is what a test adds to pipelineYAML.
type setup struct {
	kafka, topic, extra string
}

func start(t *testing.T, kafkaKeys, extra string) *env {
	t.Helper()
	return startWith(t, setup{kafka: kafkaKeys, extra: extra})
}

func startWith(t *testing.T, s setup) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), setup: s}
	e.up("127.0.0.1:0")
	t.Cleanup(e.down)
	return e
}

// up starts the process on kafkaAddr.
func (e *env) up(kafkaAddr string) {
	t := e.t
	t.Helper()
	src := strings.NewReplacer("%DIR%", e.dir, "%ADDR%", kafkaAddr, "%KAFKA%", e.kafka, "%TOPIC%", e.topic, "%EXTRA%", e.extra).Replace(pipelineYAML)
	p, err := pipelines.Parse("kt.yaml", []byte(src), func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	e.p = p
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	b, err := broker.Open(ctx, p, broker.Options{Logger: logger})
	if err != nil {
		t.Fatalf("broker: %v", err)
	}
	e.b = b
	if err := b.EnsureTopics(ctx); err != nil {
		t.Fatalf("topics: %v", err)
	}
	in, err := ingest.New(p, ingest.BrokerLog(b), ingest.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.in = in
	srv, err := New(p, b, in, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.addr = srv.Addr().String()
	e.wg.Go(func() { _ = in.Run(ctx) })
	e.wg.Go(func() {
		if err := srv.Run(ctx); err != nil {
			t.Errorf("kafka server: %v", err)
		}
	})
	e.http = httptest.NewServer(httpapi.Handler(httpapi.NewAuth(p), in.Routes()))
	waitFor(t, 10*time.Second, "ingest ready", in.Ready)
}

func (e *env) down() {
	if e.cancel == nil {
		return
	}
	e.http.Close()
	e.cancel()
	e.wg.Wait()
	e.b.Close()
	e.cancel = nil
}

// restart stops the process and starts it again on the same data and
// Kafka address, as a restart of the binary would.
func (e *env) restart() {
	addr := e.addr
	e.down()
	e.up(addr)
}

// waitFor polls cond until it holds (testenv.CheckUntil).
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.CheckUntil(t, within, 5*time.Millisecond, what, cond)
}

func kmsgListOffsets(topic string, part int32, ts int64) *kmsg.ListOffsetsRequest {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = part, ts
	rt.Partitions = []kmsg.ListOffsetsRequestTopicPartition{rp}
	req.Topics = []kmsg.ListOffsetsRequestTopic{rt}
	return req
}
