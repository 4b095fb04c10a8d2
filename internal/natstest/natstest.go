// Package natstest runs nats-server as separate processes, one per host of
// an internal/netns network, so that tests can kill -9 a node, cut its link
// and restart it, which a server inside the test process cannot do (it
// cannot leave the test's network namespace). It is test support only;
// nothing outside tests imports it.
//
// The binary is nats-server's own main package, built from the version in
// go.mod (the one the embedded broker runs) once per version into the temp
// directory; Go's build cache makes a rebuild cheap.
//
// Usage:
//
//	nw := netns.New(t)
//	hosts := []*netns.Host{nw.AddHost("n0"), nw.AddHost("n1"), nw.AddHost("n2")}
//	c := natstest.StartCluster(t, hosts, natstest.Config{})   // routes, JetStream, waits for a meta leader
//	nc, _ := nats.Connect(c.URLs())                         // from the test process
//	c.Nodes[1].Kill()                                       // SIGKILL; Start(t) brings it back on its store
//	hosts[2].Cut(); hosts[2].Heal()
package natstest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/internal/netns"
)

// Ports every node listens on, at its host's address (each host has its
// own, so they are the same on every node).
const (
	ClientPort  = 4222
	ClusterPort = 6222
	MonitorPort = 8222
	LeafPort    = 7422
)

const serverModule = "github.com/nats-io/nats-server/v2"

// Binary returns the path of a nats-server binary of the version go.mod
// requires, building it once per version (about 40 s cold on two cores,
// seconds with Go's build cache warm).
func Binary(t testing.TB) string {
	t.Helper()
	version := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == serverModule {
				version = d.Version
			}
		}
	}
	path := filepath.Join(os.TempDir(), "lambdaflow-nats-server-"+version)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	var out bytes.Buffer
	cmd := exec.Command("go", "build", "-o", tmp, serverModule)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("natstest: go build %s: %v\n%s", serverModule, err, out.String())
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return path
}

// Config shapes the nodes' configuration file.
type Config struct {
	// Cluster is the cluster name; empty means "lf".
	Cluster string
	// Domain is the JetStream domain of every node (empty: none), which
	// sites joined by leaf nodes need to address each other's JetStream
	// ("$JS.<domain>.API").
	Domain string
	// Extra is appended to every node's configuration file as is: leaf
	// node or gateway blocks, accounts, limits.
	Extra string
	// Log is where each node's log goes (<Log>/<name>.log); empty means a
	// temporary directory. The last lines are printed when the test fails.
	Log string
}

// Node is one nats-server process on a host. Its store survives Kill and
// Start, as a disk would.
type Node struct {
	Name string
	Host *netns.Host

	t      testing.TB
	bin    string
	conf   string
	logf   string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has been waited for
}

// ClientURL returns nats://IP:4222.
func (n *Node) ClientURL() string { return "nats://" + n.Host.Addr(ClientPort) }

// MonitorURL returns http://IP:8222.
func (n *Node) MonitorURL() string { return "http://" + n.Host.Addr(MonitorPort) }

// Cluster is nodes routed to each other, with JetStream.
type Cluster struct {
	Nodes []*Node
}

// URLs returns the client URLs of every node, comma-separated, as
// nats.Connect and broker.url take them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.ClientURL()
	}
	return strings.Join(urls, ",")
}

// StartCluster starts one JetStream node per host, each routed to all the
// others, and waits until every node reports JetStream healthy (a meta
// leader elected and known to it).
func StartCluster(t testing.TB, hosts []*netns.Host, cfg Config) *Cluster {
	t.Helper()
	if cfg.Cluster == "" {
		cfg.Cluster = "lf"
	}
	c := &Cluster{}
	for _, h := range hosts {
		var routes []string
		for _, o := range hosts {
			if o != h {
				routes = append(routes, fmt.Sprintf("nats-route://%s", o.Addr(ClusterPort)))
			}
		}
		block := fmt.Sprintf("cluster {\n  name: %q\n  listen: %q\n  routes: [%s]\n}\n",
			cfg.Cluster, h.Addr(ClusterPort), quoteAll(routes))
		c.Nodes = append(c.Nodes, newNode(t, h, cfg, block))
	}
	for _, n := range c.Nodes {
		n.Start(t)
	}
	for _, n := range c.Nodes {
		n.WaitHealthy(t, 60*time.Second)
	}
	return c
}

// StartServer starts a standalone JetStream node (a site of its own) on h
// and waits until it is healthy.
func StartServer(t testing.TB, h *netns.Host, cfg Config) *Node {
	t.Helper()
	n := newNode(t, h, cfg, "")
	n.Start(t)
	n.WaitHealthy(t, 60*time.Second)
	return n
}

func newNode(t testing.TB, h *netns.Host, cfg Config, cluster string) *Node {
	t.Helper()
	dir := t.TempDir()
	logDir := cfg.Log
	if logDir == "" {
		logDir = dir
	}
	domain := ""
	if cfg.Domain != "" {
		domain = fmt.Sprintf("  domain: %q\n", cfg.Domain)
	}
	n := &Node{Name: h.Label, Host: h, t: t, bin: Binary(t),
		conf: filepath.Join(dir, "nats.conf"), logf: filepath.Join(logDir, h.Label+".log")}
	conf := fmt.Sprintf(`server_name: %q
listen: %q
http: %q
jetstream {
  store_dir: %q
  max_memory_store: 64MB
  max_file_store: 1GB
%s}
%s%s
`, h.Label, h.Addr(ClientPort), h.Addr(MonitorPort), filepath.Join(dir, "store"), domain, cluster, cfg.Extra)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			t.Logf("natstest: last lines of %s:\n%s", n.logf, tail(n.logf, 40))
		}
	})
	return n
}

// Start starts the node's process (again, after Kill or Stop) on its store.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.exited:
		default:
			t.Fatalf("natstest: %s is already running", n.Name)
		}
	}
	logf, err := os.OpenFile(n.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := n.Host.Command(context.Background(), n.bin, "-c", n.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("natstest: starting %s on %s: %v", n.bin, n.Host.Label, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited = cmd, exited
	go func() { // owned by the node: Kill and Stop wait for it
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
}

// Kill sends SIGKILL and waits for the process to end: a crash.
func (n *Node) Kill() { n.signal(syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM and waits (up to 30 s, then SIGKILL): a clean shutdown.
func (n *Node) Stop() {
	if !n.signal(syscall.SIGTERM, 30*time.Second) {
		n.Kill()
	}
}

// signal sends sig and waits up to d; it reports whether the process ended.
func (n *Node) signal(sig syscall.Signal, d time.Duration) bool {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-exited:
		return true
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Healthy returns nil when the node's monitoring endpoint reports it and its
// JetStream healthy (/healthz), or an error saying why not.
func (n *Node) Healthy(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.MonitorURL()+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: /healthz %d %s", n.Name, resp.StatusCode, strings.TrimSpace(body.String()))
	}
	return nil
}

// WaitHealthy polls Healthy until it succeeds or timeout passes (fatal),
// failing early if the process exits.
func (n *Node) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := n.Healthy(context.Background())
		if err == nil {
			return
		}
		if !n.Running() {
			t.Fatalf("natstest: %s exited; log:\n%s", n.Name, tail(n.logf, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: %s not healthy after %s: %v; log:\n%s", n.Name, timeout, err, tail(n.logf, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Log returns the node's log file.
func (n *Node) Log() string { return n.logf }

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
