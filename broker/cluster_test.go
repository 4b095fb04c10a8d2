package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
)

// testCluster is n nats-servers with JetStream, routed on loopback, each
// with its own store: the real thing, in one process.
type testCluster struct {
	servers []*server.Server
	opts    []*server.Options
	stopped map[int]bool
}

func startCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	// Route ports must be known before the servers start, to list them.
	ports := freePorts(t, n)
	c := &testCluster{stopped: map[int]bool{}}
	for i := range n {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT, // kept for restarts once known
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "lf", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
			NoLog:      true,
			NoSigs:     true,
		}
		setLameDuck(o) // stopServer's shutdown, as for an embedded node
		ns, err := server.NewServer(o.Clone())
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		c.servers = append(c.servers, ns)
		c.opts = append(c.opts, o)
	}
	t.Cleanup(c.shutdown)
	for i, ns := range c.servers {
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("%s not ready", ns.Name())
		}
		// A client port chosen by the server itself can be taken by no
		// one between its choice and its use.
		c.opts[i].Port = ns.Addr().(*net.TCPAddr).Port
	}
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, ns := range c.servers {
			if ns.JetStreamIsLeader() {
				return nil
			}
		}
		return errors.New("no JetStream meta leader")
	})
	return c
}

func (c *testCluster) urls() string {
	var urls []string
	for _, ns := range c.servers {
		urls = append(urls, ns.ClientURL())
	}
	return strings.Join(urls, ",")
}

func (c *testCluster) stop(name string) {
	for i, ns := range c.servers {
		if ns.Name() == name && !c.stopped[i] {
			stopServer(ns, slog.New(slog.DiscardHandler))
			c.stopped[i] = true
		}
	}
}

// restart starts a stopped server again on its store and ports.
func (c *testCluster) restart(t testing.TB, name string) {
	t.Helper()
	for i, ns := range c.servers {
		if ns.Name() != name || !c.stopped[i] {
			continue
		}
		ns, err := server.NewServer(c.opts[i].Clone())
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("%s not ready after restart", name)
		}
		c.servers[i] = ns
		c.stopped[i] = false
	}
}

func (c *testCluster) shutdown() {
	for i, ns := range c.servers {
		if !c.stopped[i] {
			stopServer(ns, slog.New(slog.DiscardHandler))
			c.stopped[i] = true
		}
	}
}

// TestClusterNodeLoss appends under load to an R3 topic, stops the leader
// of partition 0's stream, and checks that appends resume and that no
// acknowledged event is lost or moved.
func TestClusterNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	c := startCluster(t, 3)
	p := testPipeline(t.TempDir(), testTopic("metrics", 2))
	p.Broker.URL = c.urls()
	p.Broker.Replicas = 3
	b := openBroker(t, p, Options{})
	ctx := ctxT(t, 60*time.Second)

	type ack struct {
		off    int64
		n      int
		prefix string
		at     time.Time
	}
	var mu sync.Mutex
	acks := map[int][]ack{}
	unavailable := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for part := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				prefix := fmt.Sprintf("p%d.%d", part, i)
				n := 1 + i%20
				for {
					select {
					case <-stop:
						return
					default:
					}
					actx, cancel := context.WithTimeout(ctx, 2*time.Second)
					off, err := b.Append(actx, "metrics", part, testEvents(prefix, 0, n, base))
					cancel()
					if err == nil {
						mu.Lock()
						acks[part] = append(acks[part], ack{off, n, prefix, time.Now()})
						mu.Unlock()
						break
					}
					if !errors.Is(err, ErrUnavailable) {
						t.Errorf("partition %d: %v", part, err)
						return
					}
					mu.Lock()
					unavailable++
					mu.Unlock()
				}
			}
		})
	}
	count := func(part int, after time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range acks[part] {
			if a.at.After(after) {
				n++
			}
		}
		return n
	}
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if count(0, time.Time{}) < 100 || count(1, time.Time{}) < 100 {
			return errors.New("fewer than 100 appends per partition")
		}
		return nil
	})

	st, err := b.js.Stream(ctx, "LF_metrics_0")
	if err != nil {
		t.Fatal(err)
	}
	leader := st.CachedInfo().Cluster.Leader
	stoppedAt := time.Now()
	c.stop(leader)
	t.Logf("stopped %s, the leader of partition 0, after %d/%d appends", leader, count(0, time.Time{}), count(1, time.Time{}))
	// Appends to both partitions resume within a bound (raft elections take
	// 4–9 s here).
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		for part := range 2 {
			if count(part, stoppedAt) < 20 {
				return fmt.Errorf("partition %d: appends have not resumed", part)
			}
		}
		return nil
	})
	t.Logf("appends resumed on both partitions %v after the leader stopped (%d unavailable errors)", time.Since(stoppedAt).Round(time.Millisecond), unavailable)
	close(stop)
	wg.Wait()
	// The client may still be moving to another server.
	testenv.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error { return b.Ready(ctx) })

	for part := range 2 {
		at := map[int64]string{}
		var next int64
		for _, e := range readAll(t, b, "metrics", part) {
			if e.Offset != next {
				t.Fatalf("partition %d: entry at %d after %d", part, e.Offset, next)
			}
			for j, ev := range e.Events {
				at[e.Offset+int64(j)] = ev.ID
			}
			next = e.End()
		}
		mu.Lock()
		for _, a := range acks[part] {
			for j := range a.n {
				if want := fmt.Sprintf("%s-%d", a.prefix, j); at[a.off+int64(j)] != want {
					t.Fatalf("partition %d offset %d holds %q, acknowledged %q", part, a.off+int64(j), at[a.off+int64(j)], want)
				}
			}
		}
		t.Logf("partition %d: %d acknowledged appends, all present; log ends at %d", part, len(acks[part]), next)
		mu.Unlock()
	}
}

// TestReaderSurvivesNodeLoss follows both partitions of an R3 topic while
// appends go on and the stream leaders' servers stop and come back: the
// readers, whose consumers live on those leaders, are created again by
// themselves and deliver every acknowledged event, in order, once; also
// the one whose caller polls Next with short deadlines.
func TestReaderSurvivesNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	c := startCluster(t, 3)
	p := testPipeline(t.TempDir(), testTopic("metrics", 2))
	p.Broker.URL = c.urls()
	p.Broker.Replicas = 3
	p.Ingest.DedupWindow = pipelines.Duration(10 * time.Minute)
	logs := &logCounter{}
	var trace syncBuffer
	b := openBroker(t, p, Options{Logger: slog.New(teeHandler{logs, slog.NewTextHandler(&trace, &slog.HandlerOptions{Level: slog.LevelInfo})})})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", trace.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	var mu sync.Mutex
	acked := map[int]int64{} // partition -> events acknowledged
	read := map[int][]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for part := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// A failed append may have landed: it is retried with the
				// same ids, which AppendUnique stores once.
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				out, err := b.AppendUnique(actx, "metrics", part, testEvents(fmt.Sprintf("p%d.%d", part, i), 0, 3, base), allUnique(3))
				cancel()
				if err != nil {
					i--
					if !errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
						t.Errorf("partition %d: %v", part, err)
						return
					}
					continue
				}
				mu.Lock()
				for _, o := range out {
					if !o.Duplicate {
						acked[part]++
					}
				}
				mu.Unlock()
			}
		})
		r, err := b.Reader(ctx, "metrics", part, FromStart())
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer r.Close()
			for {
				// Partition 0 waits for each entry (as the speed layer
				// does); partition 1 polls with a deadline shorter than
				// twice the consumer's heartbeat (as the lake writer
				// does), which must not hide a consumer that died.
				nctx, ncancel := ctx, context.CancelFunc(func() {})
				if part == 1 {
					nctx, ncancel = context.WithTimeout(ctx, readerHeartbeat/2)
				}
				e, err := r.Next(nctx)
				ncancel()
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("partition %d: Next: %v", part, err)
					}
					return
				}
				mu.Lock()
				for _, ev := range e.Events {
					read[part] = append(read[part], ev.ID)
				}
				mu.Unlock()
			}
		})
	}
	progress := func(what string) {
		t.Helper()
		mu.Lock()
		base := map[int]int{0: len(read[0]), 1: len(read[1])}
		mu.Unlock()
		testenv.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
			mu.Lock()
			defer mu.Unlock()
			for part := range 2 {
				if len(read[part]) < base[part]+300 {
					return fmt.Errorf("%s: partition %d read %d events, %d before; %d acknowledged", what, part, len(read[part]), base[part], acked[part])
				}
			}
			return nil
		})
	}
	leader := func(part int) string {
		st, err := b.js.Stream(ctx, fmt.Sprintf("LF_metrics_%d", part))
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.Cluster.Leader
	}
	progress("start")
	first := leader(0)
	c.stop(first)
	progress("after stopping " + first)
	c.restart(t, first)
	progress("after restarting " + first)
	second := leader(1)
	c.stop(second)
	progress("after stopping " + second)
	c.restart(t, second)
	progress("after restarting " + second)

	close(stop)
	// Everything acknowledged is read, in order, once.
	testenv.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		for part := range 2 {
			if int64(len(read[part])) < acked[part] {
				return fmt.Errorf("partition %d: read %d of %d acknowledged events", part, len(read[part]), acked[part])
			}
		}
		return nil
	})
	mu.Lock()
	for part := range 2 {
		seen := map[string]bool{}
		for _, id := range read[part] {
			if seen[id] {
				t.Errorf("partition %d: %s read twice", part, id)
			}
			seen[id] = true
		}
	}
	mu.Unlock()
	t.Logf("readers created again %d times", logs.count("reader created again"))
	cancel()
	wg.Wait()
}

// teeHandler sends records to two handlers.
type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}
func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.a.Enabled(ctx, r.Level) {
		h.a.Handle(ctx, r)
	}
	if h.b.Enabled(ctx, r.Level) {
		h.b.Handle(ctx, r)
	}
	return nil
}
func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}
func (h teeHandler) WithGroup(g string) slog.Handler {
	return teeHandler{h.a.WithGroup(g), h.b.WithGroup(g)}
}
