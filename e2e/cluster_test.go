package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/client"
	"github.com/lambdaflow/lambdaflow/internal/netns"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
)

// node is one `lambdaflow run` on a host of a netns network.
type node struct {
	host *netns.Host
	url  string
	done chan struct{}
}

// startNode runs `lambdaflow run --role ingest,serve` on h with the cluster
// pipeline, routed to peers; it is killed when the test ends.
func startNode(t *testing.T, h *netns.Host, peers []*netns.Host) *node {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("testdata", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(artifacts, "cluster-"+h.Label+".log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := h.Command(ctx, binary, "run", "-c", abs, "--role", "ingest,serve", "--log-format", "json")
	cmd.Env = append(os.Environ(),
		"LAMBDAFLOW_DATA="+t.TempDir(),
		"LF_HTTP="+h.Addr(8080),
		"LF_ROUTE="+h.Addr(6222),
		"LF_PEER_1=nats-route://"+peers[0].Addr(6222),
		"LF_PEER_2=nats-route://"+peers[1].Addr(6222),
		"LF_NODE="+h.Label)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	n := &node{host: h, url: "http://" + h.Addr(8080), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(n.done) }()
	t.Cleanup(func() {
		cancel() // SIGKILL: the data directories are thrown away
		<-n.done
		if t.Failed() {
			t.Logf("log of %s:\n%s", h.Label, tail(logf.Name()))
		}
	})
	return n
}

// post publishes events with an Idempotency-Key, retrying until the node
// answers 200 (a retry after a lost answer lands once).
func (n *node) post(t *testing.T, key string, events []map[string]any, timeout time.Duration) {
	t.Helper()
	var body bytes.Buffer
	for _, e := range events {
		b, _ := json.Marshal(e)
		body.Write(append(b, '\n'))
	}
	c := client.New(n.url, "", &http.Client{Timeout: 5 * time.Second})
	testenv.CheckFor(t, timeout, 250*time.Millisecond, func() error {
		ans, err := c.Publish(context.Background(), "metrics", body.Bytes(), "application/x-ndjson", key)
		if err != nil {
			return fmt.Errorf("POST to %s: %w", n.host.Label, err)
		}
		// Events that landed on an earlier try whose answer was lost
		// come back as duplicates: every event has a result either way.
		if len(ans.Results) != len(events) {
			return fmt.Errorf("POST to %s: %d results for %d events", n.host.Label, len(ans.Results), len(events))
		}
		return nil
	})
}

// events returns the number of events in the topic as a node sees it.
func (n *node) events() (int64, error) {
	topics, err := client.New(n.url, "", &http.Client{Timeout: 5 * time.Second}).Topics(context.Background())
	if err != nil {
		return 0, err
	}
	for _, tp := range topics {
		if tp.Name == "metrics" {
			return tp.Events, nil
		}
	}
	return 0, fmt.Errorf("%s lists no topic metrics", n.host.Label)
}

// allSee waits until every node reports want events in the topic.
func allSee(t *testing.T, nodes []*node, want int64) {
	t.Helper()
	for _, n := range nodes {
		testenv.CheckFor(t, 60*time.Second, 250*time.Millisecond, func() error {
			if got, err := n.events(); err != nil || got != want {
				return fmt.Errorf("%s sees %d events (%v), want %d", n.host.Label, got, err, want)
			}
			return nil
		})
	}
}

func batchOf(prefix string, n int) []map[string]any {
	evs := make([]map[string]any, n)
	for i := range evs {
		evs[i] = map[string]any{"ts": "2026-01-02T15:04:05Z", "host": fmt.Sprintf("%s-%d", prefix, i), "region": "eu", "cpu": 0.5, "bytes": i}
	}
	return evs
}

// TestEmbeddedClusterAcrossHosts runs three `lambdaflow run` processes on
// three hosts (network namespaces) whose embedded NATS servers form one
// cluster with broker.cluster: they start in any order and wait for each
// other, share one replicated log, keep taking events while one host is cut
// off, and the cut host catches up once its link heals.
func TestEmbeddedClusterAcrossHosts(t *testing.T) {
	requireBinary(t)
	nw := netns.New(t)
	hosts := []*netns.Host{nw.AddHost("a"), nw.AddHost("b"), nw.AddHost("c")}
	var nodes []*node
	for i, h := range hosts {
		nodes = append(nodes, startNode(t, h, []*netns.Host{hosts[(i+1)%3], hosts[(i+2)%3]}))
	}
	for _, n := range nodes {
		testenv.CheckFor(t, 90*time.Second, 250*time.Millisecond, func() error {
			resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(n.url + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: /readyz %d", n.host.Label, resp.StatusCode)
			}
			return nil
		})
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.post(t, "first", batchOf("first", 30), 30*time.Second)
	b.post(t, "second", batchOf("second", 30), 30*time.Second)
	allSee(t, nodes, 60)

	if err := c.host.Cut(); err != nil {
		t.Fatal(err)
	}
	// a and b keep a quorum (partition leaders on c are re-elected).
	a.post(t, "during-cut", batchOf("cut", 40), 60*time.Second)
	if err := c.host.Heal(); err != nil {
		t.Fatal(err)
	}
	c.post(t, "after-heal", batchOf("healed", 10), 60*time.Second)
	allSee(t, nodes, 110)
	if !strings.HasPrefix(a.url, "http://10.213.") {
		t.Fatalf("node a listens on %s, not on its host's address", a.url)
	}
}
