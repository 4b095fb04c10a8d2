package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/internal/fakeclock"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func TestMain(m *testing.M) {
	testenv.VerifyNoLeaks(m)
}

// metricsTopic is the topic of the ops-metrics example.
func metricsTopic(partitions int) *pipelines.Topic {
	return &pipelines.Topic{
		Name:       "metrics",
		Partitions: partitions,
		Key:        "host",
		Time:       "ts",
		TimeUnit:   "ms", // the tests send small epoch numbers
		Schema: event.Schema{
			{Name: "ts", Type: event.TypeTimestamp, Required: true},
			{Name: "host", Type: event.TypeString, Required: true},
			{Name: "region", Type: event.TypeString, Required: true},
			{Name: "cpu", Type: event.TypeDouble, Required: true},
			{Name: "bytes", Type: event.TypeLong, Required: true},
		},
	}
}

// testPipeline is a pipeline with the loader's defaults filled in.
func testPipeline(dir string, topics ...pipelines.Topic) *pipelines.Pipeline {
	return &pipelines.Pipeline{
		Version: 1,
		Name:    "test",
		DataDir: dir,
		Broker:  pipelines.Broker{Replicas: 1, Sync: "always", Prefix: "LF"},
		Ingest: pipelines.Ingest{
			MaxBodyBytes: 16 << 20,
			MaxInFlight:  65536,
			DedupWindow:  pipelines.Duration(10 * 60e9),
			DedupMaxIDs:  5_000_000,
			Linger:       pipelines.Duration(1e6),
			MaxBatch:     1000,
		},
		Topics: topics,
	}
}

// newClock returns the tests' clock, at 2024-05-01T10:00:00Z.
func newClock() *fakeclock.Clock { return fakeclock.New(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)) }

// harness runs an Ingest on a log until the test ends.
type harness struct {
	t      testing.TB
	p      *pipelines.Pipeline
	in     *Ingest
	http   http.Handler // in's routes behind the pipeline's tokens, as a process mounts them
	reg    *prometheus.Registry
	clock  *fakeclock.Clock
	cancel context.CancelFunc
	done   chan error
}

// startIngest builds an Ingest on log, runs it and waits until it is
// ready. Stop it with stop, or let the test's cleanup do it.
func startIngest(t testing.TB, p *pipelines.Pipeline, log Log, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, p: p, reg: prometheus.NewRegistry(), clock: newClock(), done: make(chan error, 1)}
	if opts.Now == nil {
		opts.Now = h.clock.Now
	}
	opts.Registerer = h.reg
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	in, err := New(p, log, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.in = in
	h.http = httpapi.Handler(httpapi.NewAuth(p), in.Routes())
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- in.Run(ctx) }()
	testenv.CheckFor(t, 30*time.Second, time.Millisecond, func() error {
		select {
		case err := <-h.done:
			h.done <- err
			return fmt.Errorf("Run returned %v", err)
		default:
		}
		if !in.Ready() {
			return errors.New("not ready")
		}
		return nil
	})
	t.Cleanup(h.stop)
	return h
}

// stop ends Run and waits for it; it may be called more than once.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
}

// reply is a decoded 200 answer.
type reply struct {
	Accepted int           `json:"accepted"`
	Results  []eventResult `json:"results"`
}

type eventResult struct {
	Partition int   `json:"partition"`
	Offset    int64 `json:"offset"`
	Duplicate bool  `json:"duplicate"`
}

// post sends a request through the handler and returns status and body.
func (h *harness) post(topic, body string, header ...string) (int, string, http.Header) {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/topics/"+topic+"/events", strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.http.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

// postOK posts and requires 200, returning the decoded reply.
func (h *harness) postOK(topic, body string, header ...string) reply {
	h.t.Helper()
	code, out, _ := h.post(topic, body, header...)
	if code != http.StatusOK {
		h.t.Fatalf("POST %s: %d %s", topic, code, out)
	}
	var r reply
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		h.t.Fatalf("reply %q: %v", out, err)
	}
	return r
}

// testWriter sends log output to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// counter reads a counter of the harness' registry.
func (h *harness) counter(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}
