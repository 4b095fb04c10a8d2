package speed

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
	"github.com/lambdaflow/lambdaflow/pipelines/viewrow"
)

// The kill test runs the speed layer in a child process (this test binary
// re-executed with childEnv set) against a broker in the test process,
// SIGKILLs it mid-stream, restarts it, and compares what the last child
// shows with an uninterrupted run of the same events.

// childEnv, when set, makes the test binary run childMain instead of the
// tests; it holds the child's settings as JSON (childConfig).
const childEnv = "LF_SPEED_CHILD"

type childConfig struct {
	URL     string // the broker
	Targets string // file the parent writes the final offsets to, when done appending
	Out     string // file the child writes its rows to, once it has processed up to the targets
	Views   []string
	Parts   int
}

func childMain() int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child: config:", err)
		return 2
	}
	if err := runChild(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func runChild(cfg childConfig) error {
	src := fmt.Sprintf(testPipelineYAML, os.TempDir(), brokerYAML(cfg.URL, ""), cfg.Parts, "40s", "40s", "40s")
	p, err := pipelines.Parse("speedtest.yaml", []byte(src), nil, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := broker.Open(ctx, p, broker.Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	store := newMemStore()
	// One name for every run of the child: a restarted one takes its
	// partitions back at once.
	node, err := b.Join(ctx, broker.NodeOptions{Name: "speed-child"})
	if err != nil {
		return err
	}
	defer node.Close()
	s, err := New(p, BrokerLog(b), store, Options{CheckpointInterval: 30 * time.Millisecond, Idle: time.Hour, Owner: BrokerOwner(node), Serve: true})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return fmt.Errorf("Run returned early: %v", err)
		case <-tick.C:
		}
		data, err := os.ReadFile(cfg.Targets)
		if err != nil {
			continue // the parent is still appending
		}
		var targets []int64
		if err := json.Unmarshal(data, &targets); err != nil {
			return err
		}
		caughtUp, err := checkpointedAll(ctx, b, p, cfg.Views, targets)
		if err != nil {
			return err
		}
		if !caughtUp {
			continue
		}
		// A soft stop shows every open window's current value.
		cancel()
		if err := <-done; err != nil {
			return err
		}
		out := map[string]string{}
		for _, v := range cfg.Views {
			out[v] = store.dump(v)
		}
		data, _ = json.Marshal(out)
		if err := os.WriteFile(cfg.Out+".tmp", data, 0o644); err != nil {
			return err
		}
		return os.Rename(cfg.Out+".tmp", cfg.Out)
	}
}

// checkpointedAll reports whether every partition of the views has
// checkpointed both stages at the end: stage 1 every event up to the
// targets, stage 2 every partial state of its partition (which stage 1
// made durable before its commit). What the rows compared depend on is
// then in the checkpoints, whatever happens to a partition run meanwhile:
// one that fails on a loaded machine and is restoring when the soft stop
// comes does not checkpoint again, and leaves its last rows in the store.
func checkpointedAll(ctx context.Context, b *broker.Broker, p *pipelines.Pipeline, views []string, targets []int64) (bool, error) {
	for _, v := range views {
		for part, want := range targets {
			off, ok, err := b.Committed(ctx, "speed."+v, "metrics", part)
			if err != nil || !ok || off < want {
				return false, err
			}
		}
		// Every stage 1 is done: the partials topic is whole.
		pt := p.PartialsTopic(p.ViewByName(v))
		for part := range pt.Partitions {
			bd, err := b.Bounds(ctx, pt.Name, part)
			if err != nil {
				return false, err
			}
			off, ok, err := b.Committed(ctx, "speed."+v, pt.Name, part)
			if err != nil || !ok || off < bd.End {
				return false, err
			}
		}
	}
	return true, nil
}

type childProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// recordingStore is a memStore that also keeps every final row ever put,
// for comparison with what the view's topic holds.
type recordingStore struct {
	*memStore
	mu     sync.Mutex
	finals map[string]map[string]viewrow.Row
}

func (s *recordingStore) PutSpeed(view string, rows []viewrow.Row) {
	s.memStore.PutSpeed(view, rows)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		if r.Final {
			if s.finals[view] == nil {
				s.finals[view] = map[string]viewrow.Row{}
			}
			r.Key = ""
			s.finals[view][storeKey(r)] = r
		}
	}
}

func TestKillAndRestartEqualsUninterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	const parts = 4
	port := testenv.FreePort(t)
	p := testPipeline(t, pipelineOpts{partitions: parts, lateness: "40s", listen: fmt.Sprintf("127.0.0.1:%d", port)})
	views := []string{"all", "hop", "sessions"}
	ctx := t.Context()
	b, err := broker.Open(ctx, p, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}

	// Two hours of events, mostly in order, some late; entries of up to
	// 60 events, a partition per host.
	rng := rand.New(rand.NewPCG(5, 5))
	events := genEvents(rng, 24000, 30, 2*60*minute)
	slices.SortFunc(events, func(a, b event.Event) int {
		return int((a.Time + rng.Int64N(70*sec)) - (b.Time + rng.Int64N(70*sec)))
	})
	entries := split(rng, events, parts, 60, true)

	// The uninterrupted run, in process.
	ref := &recordingStore{memStore: newMemStore(), finals: map[string]map[string]viewrow.Row{}}
	local, err := NewLocal(p, ref, timeAt(0), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if err := local.Append("metrics", en.part, en.events); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	cfg := childConfig{URL: fmt.Sprintf("nats://127.0.0.1:%d", port), Targets: filepath.Join(dir, "targets"), Out: filepath.Join(dir, "out"), Views: views, Parts: parts}
	env, _ := json.Marshal(cfg)
	start := func() *childProc {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(env))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &childProc{cmd: cmd, done: make(chan struct{})}
		go func() {
			c.err = cmd.Wait()
			close(c.done)
		}()
		return c
	}
	appendEntries := func(es []testEntry) {
		for _, en := range es {
			if _, err := b.Append(ctx, "metrics", en.part, en.events); err != nil {
				t.Fatal(err)
			}
		}
	}
	var child *childProc
	alive := func() {
		select {
		case <-child.done:
			t.Fatalf("child exited: %v", child.err)
		default:
		}
	}
	committed := func() int64 {
		var n int64
		for part := range parts {
			off, _, err := b.Committed(ctx, "speed.all", "metrics", part)
			if err != nil {
				t.Fatal(err)
			}
			n += off
		}
		return n
	}
	kill := func(c *childProc) {
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-c.done
	}

	cut1, cut2 := len(entries)*2/5, len(entries)*7/10
	child = start()
	appendEntries(entries[:cut1])
	checkFor(t, 60*time.Second, "a checkpoint of the first child", func() bool { alive(); return committed() > 0 })
	appendEntries(entries[cut1:cut2])
	kill(child) // mid-stream: entries are being appended and processed
	before := committed()
	t.Logf("first child killed: %d of %d events appended, %d checkpointed", total(entries[:cut2]), len(events), before)

	child = start()
	checkFor(t, 60*time.Second, "a checkpoint of the second child", func() bool { alive(); return committed() > before })
	appendEntries(entries[cut2 : cut2+len(entries)/10])
	kill(child)
	t.Logf("second child killed: %d events appended, %d checkpointed", total(entries[:cut2+len(entries)/10]), committed())

	child = start()
	appendEntries(entries[cut2+len(entries)/10:])
	targets := make([]int64, parts)
	for _, en := range entries {
		targets[en.part] += int64(len(en.events))
	}
	data, _ := json.Marshal(targets)
	// Whole or not at all: the child reads the file as soon as it exists.
	if err := os.WriteFile(cfg.Targets+".tmp", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cfg.Targets+".tmp", cfg.Targets); err != nil {
		t.Fatal(err)
	}
	select {
	case <-child.done:
		if child.err != nil {
			t.Fatalf("last child: %v", child.err)
		}
	case <-time.After(90 * time.Second):
		kill(child)
		t.Fatal("the last child did not catch up within 90 s")
	}
	out, err := os.ReadFile(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		want := ref.dump(v)
		if got[v] != want {
			t.Errorf("view %s: rows after two kills differ from the uninterrupted run:\n%s", v, diffLines(want, got[v]))
		}
		if !strings.Contains(want, "final=true") || !strings.Contains(want, "final=false") {
			t.Errorf("view %s: the reference has no final or no open rows; the test is too weak", v)
		}
		// What sinks get: the view's topic, upserted and deleted by group
		// and window, holds every final row of the uninterrupted run and
		// its open windows' current values; no row of a window that only
		// a killed run formed.
		wantTopic := maps.Clone(ref.finals[v])
		for k, r := range ref.rows[v] {
			if !r.Final {
				wantTopic[k] = r
			}
		}
		topicRows := readViewTopic(t, b, p, v)
		if w, g := dumpRows(mapValues(wantTopic)), dumpRows(mapValues(topicRows)); w != g {
			t.Errorf("view %s: the view's topic differs from the rows of the uninterrupted run:\n%s", v, diffLines(w, g))
		}
	}
	if s := local.engineOf("all").Stats(); s.Late == 0 {
		t.Error("no late event in the stream; the test is too weak")
	}
}

func total(es []testEntry) int {
	n := 0
	for _, e := range es {
		n += len(e.events)
	}
	return n
}

// readViewTopic reads a view's topic and upserts (or, for a tombstone,
// deletes) its speed rows by group and window start, as a sink would.
func readViewTopic(t *testing.T, b *broker.Broker, p *pipelines.Pipeline, view string) map[string]viewrow.Row {
	t.Helper()
	v := p.ViewByName(view)
	vt := p.ViewTopic(v)
	ng, na := len(v.GroupBy), len(v.Aggregates)
	rows := map[string]viewrow.Row{}
	for part := range vt.Partitions {
		from := int64(0)
		for {
			es, err := b.Fetch(t.Context(), vt.Name, part, broker.FromOffset(from), 10000)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				for _, ev := range e.Events {
					if !strings.HasPrefix(ev.ID, speedIDPrefix) {
						continue
					}
					r, ok := viewrow.FromValues(ev.Values, ng, na)
					if !ok {
						t.Fatalf("view %s: a row of %d values", view, len(ev.Values))
					}
					if r.Deleted {
						delete(rows, storeKey(r))
						continue
					}
					rows[storeKey(r)] = r
				}
				from = e.End()
			}
		}
	}
	return rows
}
