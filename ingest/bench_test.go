package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/httpapi"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// ndjsonBody is n events of the ops-metrics example, one per line, ~110 bytes each.
func ndjsonBody(n, seed int) string {
	var b strings.Builder
	regions := []string{"eu-west", "us-east", "ap-south"}
	for i := range n {
		k := seed*n + i
		fmt.Fprintf(&b, `{"ts":"2024-05-01T10:%02d:%02d.%03dZ","host":"host-%04d","region":"%s","cpu":%d.%02d,"bytes":%d}`+"\n",
			(k/60)%60, k%60, k%1000, k%1000, regions[k%3], k%100, k%97, 1000+k*7)
	}
	return b.String()
}

// BenchmarkDecode compares the ingest decoder with encoding/json decoding
// the same NDJSON into a struct and into maps (then typing the values as
// ingest must). Reported: events/s.
func BenchmarkDecode(b *testing.B) {
	const events = 100
	body := ndjsonBody(events, 1)
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)*events/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("ingest", func(b *testing.B) {
		d := newDecoder(metricsTopic(4), "test")
		var bufs requestBufs // as the handler reuses them
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			evs, err := d.decode(body, 1, &bufs)
			if err != nil || len(evs) != events {
				b.Fatal(err, len(evs))
			}
			bufs.reset(evs)
		}
		report(b)
	})
	b.Run("encoding-json-struct", func(b *testing.B) {
		type jsonEvent struct {
			ID     string    `json:"id"`
			TS     time.Time `json:"ts"`
			Host   string    `json:"host"`
			Region string    `json:"region"`
			CPU    float64   `json:"cpu"`
			Bytes  int64     `json:"bytes"`
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			dec := json.NewDecoder(strings.NewReader(body))
			dec.DisallowUnknownFields()
			out := make([]event.Event, 0, events)
			vals := make([]event.Value, events*5)
			for i := 0; ; i++ {
				var e jsonEvent
				if err := dec.Decode(&e); err != nil {
					break
				}
				v := vals[i*5 : i*5+5]
				v[0] = event.Value{I: e.TS.UnixMicro(), Valid: true}
				v[1] = event.Value{S: e.Host, Valid: true}
				v[2] = event.Value{S: e.Region, Valid: true}
				v[3] = event.Value{F: e.CPU, Valid: true}
				v[4] = event.Value{I: e.Bytes, Valid: true}
				out = append(out, event.Event{ID: e.ID, Time: v[0].I, Values: v})
			}
			if len(out) != events {
				b.Fatal(len(out))
			}
		}
		report(b)
	})
	b.Run("encoding-json-map", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		schema := metricsTopic(4).Schema
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader([]byte(body)))
			dec.UseNumber()
			n := 0
			for {
				var m map[string]any
				if err := dec.Decode(&m); err != nil {
					break
				}
				vals := make([]event.Value, len(schema))
				for i, f := range schema {
					switch x := m[f.Name].(type) {
					case string:
						if f.Type == event.TypeTimestamp {
							t, _ := time.Parse(time.RFC3339, x)
							vals[i] = event.Value{I: t.UnixMicro(), Valid: true}
						} else {
							vals[i] = event.Value{S: x, Valid: true}
						}
					case json.Number:
						if f.Type == event.TypeDouble {
							fv, _ := x.Float64()
							vals[i] = event.Value{F: fv, Valid: true}
						} else {
							iv, _ := x.Int64()
							vals[i] = event.Value{I: iv, Valid: true}
						}
					}
				}
				n++
			}
			if n != events {
				b.Fatal(n)
			}
		}
		report(b)
	})
}

// Load of BenchmarkHTTPIngest: the target load of BENCHMARKS.md.
const (
	benchClients    = 32
	benchBodyEvents = 100
)

// BenchmarkHTTPIngest measures the full path: HTTP NDJSON bodies on
// loopback → decode → partition → group commit → durable in the real
// broker → answer. One op is one 100-event request; reported: events/s,
// ack p50/p99 (ms, as the clients see it) and x-raw, the ratio to raw
// per-message JetStream async publishing of the same events without
// fsync, measured first in the same run.
//
// With LF_BENCH_BODIES=FILE set, the events posted are also written to
// FILE, one per line, so that another system can be loaded with the same
// bytes (bench/peers does that for Kafka).
func BenchmarkHTTPIngest(b *testing.B) {
	bodies := make([]string, benchClients)
	for i := range bodies {
		bodies[i] = ndjsonBody(benchBodyEvents, i)
	}
	if path := os.Getenv("LF_BENCH_BODIES"); path != "" {
		if err := os.WriteFile(path, []byte(strings.Join(bodies, "")), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var rawRate float64
	rawDir := b.TempDir()
	b.Run("raw-js-async", func(b *testing.B) {
		rawRate = benchRawJetStream(b, filepath.Join(rawDir, strconv.Itoa(b.N)), bodies)
	})
	for _, cfg := range []struct {
		name  string
		setup func(b *testing.B, p *pipelines.Pipeline) func()
	}{
		{"R1-fsync", func(b *testing.B, p *pipelines.Pipeline) func() { p.Broker.Sync = "always"; return func() {} }},
		// Every request with its own Idempotency-Key: every event is checked
		// against, and remembered in, its partition's dedup index.
		{"R1-fsync-ids", func(b *testing.B, p *pipelines.Pipeline) func() { p.Broker.Sync = "always"; return func() {} }},
		{"R1-nofsync", func(b *testing.B, p *pipelines.Pipeline) func() { p.Broker.Sync = "interval"; return func() {} }},
		{"R3", startCluster},
	} {
		// Set up on the first call only (the framework calls a
		// sub-benchmark with growing b.N), and only if it is selected.
		var env *httpEnv
		stop := func() {}
		dir := b.TempDir()
		b.Run(cfg.name, func(b *testing.B) {
			if env == nil {
				p := testPipeline(dir, *metricsTopic(4))
				stop = cfg.setup(b, p)
				env = startHTTPIngest(b, p, Options{})
				env.keys = strings.HasSuffix(cfg.name, "-ids")
			}
			rate := env.run(b, bodies, benchClients)
			if rawRate > 0 {
				b.ReportMetric(rate/rawRate, "x-raw")
			}
		})
		if env != nil {
			env.close()
		}
		stop()
	}
}

// BenchmarkHTTPIngestOne is the latency of one client posting one event
// per request, one request at a time, at the default settings (R1, fsync
// before ack, default linger): what a service that publishes as things
// happen sees. R1-nofsync is the same with broker.sync: interval, the
// durability of Kafka's default (acknowledged once in the page cache).
// Reported: ack p50/p99 (ms) and events/s. BenchmarkIngestOneStages takes
// the request apart. LF_BENCH_BODIES as for BenchmarkHTTPIngest.
func BenchmarkHTTPIngestOne(b *testing.B) {
	bodies := make([]string, 100)
	for i := range bodies {
		bodies[i] = ndjsonBody(1, i)
	}
	if path := os.Getenv("LF_BENCH_BODIES"); path != "" {
		if err := os.WriteFile(path, []byte(strings.Join(bodies, "")), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, sync := range []string{"always", "interval"} {
		var env *httpEnv
		dir := b.TempDir()
		name := map[string]string{"always": "R1-fsync", "interval": "R1-nofsync"}[sync]
		b.Run(name, func(b *testing.B) {
			if env == nil {
				p := testPipeline(dir, *metricsTopic(4))
				p.Broker.Sync = sync
				env = startHTTPIngest(b, p, Options{})
			}
			env.run(b, bodies, 1)
		})
		if env != nil {
			env.close()
		}
	}
}

// BenchmarkGroupCommitInFlight compares one and two Appends in flight per
// partition (appendsInFlight), and sending a batch at once while the log
// is idle (eager) with letting it gather for linger, on R1 with fsync.
func BenchmarkGroupCommitInFlight(b *testing.B) {
	bodies := make([]string, benchClients)
	for i := range bodies {
		bodies[i] = ndjsonBody(benchBodyEvents, i)
	}
	for _, o := range []Options{{appendsInFlight: 1}, {appendsInFlight: 2}, {appendsInFlight: 1, eager: true}, {appendsInFlight: 2, eager: true}} {
		var env *httpEnv
		dir := b.TempDir()
		b.Run(fmt.Sprintf("appends=%d/eager=%v", o.appendsInFlight, o.eager), func(b *testing.B) {
			if env == nil {
				env = startHTTPIngest(b, testPipeline(dir, *metricsTopic(4)), o)
			}
			env.run(b, bodies, benchClients)
		})
		if env != nil {
			env.close()
		}
	}
}

// httpEnv is a broker, an Ingest and an HTTP server on loopback.
type httpEnv struct {
	b      *broker.Broker
	in     *Ingest
	srv    *http.Server
	url    string
	client *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	keys                 bool         // post with a fresh Idempotency-Key each
	batches, batchEvents atomic.Int64 // Appends and their events
	appendNanos          atomic.Int64 // time spent in Appends
}

// countingLog counts Appends for the events/entry figure.
type countingLog struct {
	Log
	e *httpEnv
}

func (c countingLog) AppendUnique(ctx context.Context, topic string, partition int, events []event.Event, unique []bool) ([]broker.Placement, error) {
	start := time.Now()
	out, err := c.Log.AppendUnique(ctx, topic, partition, events, unique)
	c.e.appendNanos.Add(int64(time.Since(start)))
	c.e.batches.Add(1)
	c.e.batchEvents.Add(int64(len(events)))
	return out, err
}

func startHTTPIngest(b *testing.B, p *pipelines.Pipeline, opts Options) *httpEnv {
	b.Helper()
	ctx := context.Background()
	br, err := broker.Open(ctx, p, broker.Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatalf("broker.Open: %v", err)
	}
	if err := br.EnsureTopics(ctx); err != nil {
		br.Close()
		b.Fatalf("EnsureTopics: %v", err)
	}
	opts.Registerer = prometheus.NewRegistry()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	e := &httpEnv{b: br}
	in, err := New(p, countingLog{BrokerLog(br), e}, opts)
	if err != nil {
		br.Close()
		b.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		br.Close()
		b.Fatal(err)
	}
	e.in, e.url = in, "http://"+ln.Addr().String()+"/v1/topics/metrics/events"
	runCtx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	e.wg.Go(func() {
		if err := in.Run(runCtx); err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	for !in.Ready() {
		time.Sleep(time.Millisecond)
	}
	e.srv = &http.Server{Handler: httpapi.Handler(httpapi.NewAuth(p), in.Routes())}
	e.wg.Go(func() { e.srv.Serve(ln) })
	e.client = &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: benchClients,
		DisableCompression:  true,
	}}
	return e
}

func (e *httpEnv) close() {
	e.client.CloseIdleConnections()
	e.srv.Shutdown(context.Background())
	e.cancel()
	e.wg.Wait()
	e.b.Close()
}

// run posts b.N bodies from clients clients and reports the rate and the
// ack latency quantiles; it returns events/s.
func (e *httpEnv) run(b *testing.B, bodies []string, clients int) float64 {
	perBody := strings.Count(bodies[0], "\n")
	lat := make([]time.Duration, b.N)
	cpu0 := cpuTime()
	e.batches.Store(0)
	e.batchEvents.Store(0)
	e.appendNanos.Store(0)
	var next atomic.Int64
	var failed atomic.Value
	b.SetBytes(int64(len(bodies[0])))
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			body := bodies[c%len(bodies)]
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				start := time.Now()
				req, _ := http.NewRequest(http.MethodPost, e.url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-ndjson")
				if e.keys {
					req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%p-%d", e, i))
				}
				resp, err := e.client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	elapsed := b.Elapsed()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	rate := float64(b.N) * float64(perBody) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	// CPU per event, of the whole process (clients, ingest, nats-server):
	// unlike the rate it does not depend on what else the machine runs.
	b.ReportMetric(float64(cpuTime()-cpu0)/1e3/(float64(b.N)*float64(perBody)), "cpu-µs/event")
	if n := e.batches.Load(); n > 0 {
		b.ReportMetric(float64(e.batchEvents.Load())/float64(n), "events/entry")
		b.ReportMetric(float64(e.appendNanos.Load())/float64(n)/1e6, "append-ms")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)])/1e6, "p99-ms")
	return rate
}

// cpuTime is the process' user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRawJetStream publishes the events of b.N bodies one message per
// event (the JSON line) with JetStream async publish to an R1 file stream
// with the default sync (no fsync before ack), from 2 publishers over
// loopback TCP, and returns events/s.
func benchRawJetStream(b *testing.B, dir string, bodies []string) float64 {
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server not ready")
	}
	ctx := context.Background()
	var msgs [][]byte
	for _, body := range bodies {
		for line := range strings.Lines(body) {
			msgs = append(msgs, []byte(strings.TrimSuffix(line, "\n")))
		}
	}
	const publishers = 2
	conns := make([]*nats.Conn, publishers)
	jss := make([]jetstream.JetStream, publishers)
	for i := range conns {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		conns[i] = nc
		if jss[i], err = jetstream.New(nc); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := jss[0].CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	total := int64(b.N) * benchBodyEvents
	cpu0 := cpuTime()
	b.ResetTimer()
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := range publishers {
		wg.Go(func() {
			js := jss[w]
			for i := int64(w); i < total; i += publishers {
				// A stall waits for acks instead of failing: the machine
				// is shared and the default 200 ms is short.
				if _, err := js.PublishAsync("raw", msgs[i%int64(len(msgs))], jetstream.WithStallWait(time.Minute)); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				failed.CompareAndSwap(nil, errors.New("async publishes not acknowledged"))
			}
		})
	}
	wg.Wait()
	elapsed := b.Elapsed()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	rate := float64(total) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/1e3/float64(total), "cpu-µs/event")
	return rate
}

// startCluster starts 3 nats-servers with routes on loopback and points p
// at them with replicas 3; the returned func stops them.
func startCluster(b *testing.B, p *pipelines.Pipeline) func() {
	b.Helper()
	ports := make([]int, 3)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []string
	for _, port := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", port))
	}
	var servers []*server.Server
	var urls []string
	dir := filepath.Join(p.DataDir, "cluster")
	for i := range 3 {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i)),
			Cluster: server.ClusterOpts{Name: "lf", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
			NoSigs:  true, NoLog: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		s.Start()
		servers = append(servers, s)
		urls = append(urls, s.ClientURL())
	}
	stop := func() {
		for _, s := range servers {
			s.Shutdown()
		}
		for _, s := range servers {
			s.WaitForShutdown()
		}
	}
	// JetStream answers once the meta group has a leader.
	deadline := time.Now().Add(30 * time.Second)
	for !anyLeader(servers) {
		if time.Now().After(deadline) {
			stop()
			b.Fatal("cluster has no JetStream leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Broker.URL = strings.Join(urls, ",")
	p.Broker.Replicas = 3
	return stop
}

func anyLeader(servers []*server.Server) bool {
	for _, s := range servers {
		if s.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// nopLog acknowledges every Append at once.
type nopLog struct{ next atomic.Int64 }

func (l *nopLog) AppendUnique(_ context.Context, _ string, part int, events []event.Event, _ []bool) ([]broker.Placement, error) {
	first := l.next.Add(int64(len(events))) - int64(len(events))
	out := make([]broker.Placement, len(events))
	for i := range out {
		out[i] = broker.Placement{Partition: part, Offset: first + int64(i)}
	}
	return out, nil
}

func (l *nopLog) PrepareDedup(context.Context, string, int) error { return nil }

// BenchmarkHandler measures ingest's own work per request, without network
// and log: the handler on a 100-event NDJSON body, with a log that
// acknowledges at once. Variants: generated ids, ids in the body (the
// dedup index is the log's: BenchmarkHTTPIngest's ids variant and the
// broker's BenchmarkAppendUnique measure it).
func BenchmarkHandler(b *testing.B) {
	for _, withIDs := range []bool{false, true} {
		b.Run(fmt.Sprintf("ids=%v", withIDs), func(b *testing.B) {
			p := testPipeline(b.TempDir(), *metricsTopic(4))
			h := startIngest(b, p, &nopLog{}, Options{Logger: slog.New(slog.DiscardHandler)})
			body := ndjsonBody(benchBodyEvents, 1)
			var seq atomic.Int64
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bd := body
					if withIDs {
						k := seq.Add(1)
						bd = withIDs100(body, k)
					}
					req, _ := http.NewRequest(http.MethodPost, "/v1/topics/metrics/events", strings.NewReader(bd))
					rec := &discardWriter{h: http.Header{}}
					h.http.ServeHTTP(rec, req)
					if rec.code != 0 && rec.code != 200 {
						b.Fatalf("status %d", rec.code)
					}
				}
			})
			b.ReportMetric(float64(b.N)*benchBodyEvents/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// withIDs100 gives each event of body the id "<k>-<line>".
func withIDs100(body string, k int64) string {
	lines := strings.SplitAfter(body, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = fmt.Sprintf(`{"id":"%d-%d",`, k, i) + l[1:]
		}
	}
	return strings.Join(lines, "")
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
