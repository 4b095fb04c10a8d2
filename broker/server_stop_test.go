package broker

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// storeLoops counts the running stores of the nats-servers in this
// process: each file store (a stream's, or a raft group's log) runs one
// flushStreamStateLoop until it is stopped.
func storeLoops() int {
	return goroutinesIn("server.(*fileStore).flushStreamStateLoop")
}

// goroutinesIn counts the goroutines of this process whose stack holds a
// call of fn (package-qualified, as stack dumps print it).
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), fn+"(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// raftGroups is how many raft groups of the log's account (those of its
// streams and consumers) ns runs.
func raftGroups(ns *server.Server) int {
	if st := ns.Raftz(&server.RaftzOptions{AccountFilter: server.DEFAULT_GLOBAL_ACCOUNT}); st != nil {
		return len((*st)[server.DEFAULT_GLOBAL_ACCOUNT])
	}
	return 0
}

// TestStopServerWhileRecovering stops a cluster node the way Close does
// (stopServer) while, just restarted, it recreates the raft groups of the
// log's streams: nats-server's Shutdown alone leaves the log of each raft
// group created after it dropped the system account running. Once every
// node stopped, no store may be left.
func TestStopServerWhileRecovering(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	c := startCluster(t, 3)
	p := testPipeline(t.TempDir(), testTopic("metrics", 8))
	p.Broker.URL = c.urls()
	p.Broker.Replicas = 3
	// Minutes: eight R3 streams take long on a loaded machine.
	ctx := ctxT(t, 2*time.Minute)
	b, err := Open(ctx, p, Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	err = b.EnsureTopics(ctx)
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	total := raftGroups(c.servers[1])
	if total < 8 {
		t.Fatalf("node n1 runs %d raft groups, want those of the 8 partitions and of the buckets", total)
	}
	midway := 0
	for range 4 {
		c.stop("n1")
		c.restart(t, "n1")
		// Stop it as soon as it recreated a group, before it has them all.
		var got int
		testenv.CheckUntil(t, 30*time.Second, time.Millisecond, "n1 recreating its raft groups", func() bool {
			got = raftGroups(c.servers[1])
			return got > 0
		})
		if got < total {
			midway++
		}
		c.stop("n1")
	}
	if midway == 0 {
		t.Fatal("n1 had recreated every raft group each time before it was stopped: the test tested nothing")
	}
	c.shutdown()
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if n := storeLoops(); n > 0 {
			return fmt.Errorf("%d stores still running after every node stopped", n)
		}
		return nil
	})
	t.Logf("stopped %d of 4 times while recreating raft groups (%d)", midway, total)
}

// TestStopServerWithRequestsInFlight stops a server the way Close does
// (stopServer, once the connection drained) while the client's stream
// creations may still be served: nats-server's Shutdown alone leaves the
// store of a stream it was creating running. No store may be left.
func TestStopServerWithRequestsInFlight(t *testing.T) {
	for round := range 10 {
		ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		closed := make(chan struct{})
		nc, err := nats.Connect("", nats.InProcessServer(ns), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
		if err != nil {
			t.Fatal(err)
		}
		// Creations without waiting for their answers, as a caller whose
		// context ended leaves them.
		for i := range 20 {
			subject := fmt.Sprintf("round%d.s%d", round, i)
			req := fmt.Sprintf(`{"name":"S%d","subjects":[%q],"storage":"file"}`, i, subject)
			if err := nc.PublishRequest(fmt.Sprintf("$JS.API.STREAM.CREATE.S%d", i), nats.NewInbox(), []byte(req)); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Drain(); err != nil {
			t.Fatal(err)
		}
		<-closed
		stopServer(ns, slog.New(slog.DiscardHandler))
	}
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if n := storeLoops(); n > 0 {
			return fmt.Errorf("%d stores still running after every server stopped", n)
		}
		return nil
	})
}
