package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/api"
	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

func TestMain(m *testing.M) {
	testenv.VerifyNoLeaks(m)
}

// fast is the links' timing in tests.
var fast = Timing{
	Idle: 100 * time.Millisecond, Commit: 50 * time.Millisecond, Recheck: time.Second,
	Request: 2 * time.Second, Backoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Stale: 2 * time.Second,
}

// schema is the other sites' topic: no _site.
func schema() event.Schema {
	return event.Schema{
		{Name: "ts", Type: event.TypeTimestamp, Required: true},
		{Name: "host", Type: event.TypeString, Required: true},
		{Name: "cpu", Type: event.TypeDouble},
		{Name: "n", Type: event.TypeLong, Required: true},
	}
}

// site is one site: a pipeline with an embedded broker listening on a port
// of its own, so that other sites reach it.
type site struct {
	t    testing.TB
	p    *pipelines.Pipeline
	port int
	b    *broker.Broker
}

// startNATS runs an in-process nats-server with JetStream on loopback (a
// free port unless o gives one), fsyncing every write, until the test ends.
func startNATS(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	o.Host, o.JetStream, o.StoreDir, o.SyncAlways, o.NoLog, o.NoSigs = "127.0.0.1", true, t.TempDir(), true, true, true
	if o.Port == 0 {
		o.Port = -1
	}
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// newSite makes a site named name whose topic metrics has parts
// partitions and the given sources (each a site's name and port).
func newSite(t testing.TB, name string, parts int, sources ...*site) *site {
	s := &site{t: t, port: testenv.FreePort(t)}
	topic := pipelines.Topic{Name: "metrics", Partitions: parts, Retention: pipelines.Duration(time.Hour), Key: "host", Time: "ts", Schema: schema()}
	for _, src := range sources {
		topic.Sources = append(topic.Sources, pipelines.Source{Site: src.p.Site, URL: src.url(), Prefix: "LF"})
	}
	if len(sources) > 0 {
		topic.Schema = append(topic.Schema, event.Field{Name: pipelines.SiteField, Type: event.TypeString, Required: true})
	}
	s.p = &pipelines.Pipeline{
		Version: 1, Name: name + "-pipeline", Site: name, DataDir: t.TempDir(),
		Broker: pipelines.Broker{Replicas: 1, Sync: "always", Prefix: "LF", Listen: "127.0.0.1:" + strconv.Itoa(s.port)},
		Ingest: pipelines.Ingest{DedupWindow: pipelines.Duration(10 * time.Minute), DedupMaxIDs: 1 << 20},
		Topics: []pipelines.Topic{topic},
	}
	s.open()
	t.Cleanup(func() { s.close() })
	return s
}

func (s *site) url() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

func (s *site) open() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Open(ctx, s.p, broker.Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := b.EnsureTopics(ctx); err != nil {
		b.Close()
		s.t.Fatal(err)
	}
	s.b = b
}

func (s *site) close() {
	if s.b != nil {
		s.b.Close()
		s.b = nil
	}
}

// publish appends n events with ids <site>-<from+i> as ingest would place
// them, one entry per partition and call.
func (s *site) publish(from, n int) {
	s.t.Helper()
	t := &s.p.Topics[0]
	byPart := make([][]event.Event, t.Partitions)
	for i := from; i < from+n; i++ {
		ev := event.Event{ID: fmt.Sprintf("%s-%d", s.p.Site, i), Time: int64(i) * 1000, Values: []event.Value{
			{I: int64(i) * 1000, Valid: true}, {S: "host-" + strconv.Itoa(i%5), Valid: true}, {F: float64(i), Valid: true}, {I: int64(i), Valid: true},
		}}
		if len(t.Sources) > 0 {
			ev.Values = append(ev.Values, event.Value{S: s.p.Site, Valid: true})
		}
		p := event.EventPartition(&ev, 1, event.TypeString, t.Partitions)
		byPart[p] = append(byPart[p], ev)
	}
	for p, evs := range byPart {
		if len(evs) == 0 {
			continue
		}
		if _, err := s.b.Append(context.Background(), "metrics", p, evs); err != nil {
			s.t.Fatal(err)
		}
	}
}

// events reads the local topic: per id, how many times and with which site
// and partition.
type seen struct {
	count     int
	site      string
	partition int
}

func (s *site) events() map[string]seen {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := map[string]seen{}
	t := &s.p.Topics[0]
	siteIdx := t.Schema.Index(pipelines.SiteField)
	for p := range t.Partitions {
		bd, err := s.b.Bounds(ctx, "metrics", p)
		if err != nil {
			s.t.Fatal(err)
		}
		if bd.End == 0 {
			continue
		}
		r, err := s.b.Reader(ctx, "metrics", p, broker.FromStart())
		if err != nil {
			s.t.Fatal(err)
		}
		for off := int64(0); off < bd.End; {
			e, err := r.Next(ctx)
			if err != nil {
				r.Close()
				s.t.Fatal(err)
			}
			for _, ev := range e.Events {
				x := out[ev.ID]
				x.count++
				x.partition = p
				if siteIdx >= 0 {
					x.site = ev.Values[siteIdx].S
				}
				out[ev.ID] = x
			}
			off = e.End()
		}
		r.Close()
	}
	return out
}

// mirrorRun runs a Mirror of s until the test ends or stop is called.
type mirrorRun struct {
	mr   *Mirror
	reg  *prometheus.Registry
	stop func()
}

func (s *site) runMirror() *mirrorRun {
	s.t.Helper()
	reg := prometheus.NewRegistry()
	mr, err := New(s.p, s.b, Options{Registerer: reg, Timing: fast, Logger: slog.New(slog.NewTextHandler(testWriter{s.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = mr.Run(ctx) })
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	s.t.Cleanup(stop)
	return &mirrorRun{mr: mr, reg: reg, stop: stop}
}

// lag returns the local lag rows of consumer.
func (s *site) lag(consumer string) []api.Lag {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all, err := s.b.Lag(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []api.Lag
	for _, l := range all {
		if l.Consumer == consumer {
			out = append(out, l)
		}
	}
	return out
}

// checkFor polls with testenv's rule.
func checkFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	testenv.CheckFor(t, timeout, 50*time.Millisecond, f)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
