package batch

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

	"github.com/lambdaflow/lambdaflow/broker"
	"github.com/lambdaflow/lambdaflow/internal/testenv"
	"github.com/lambdaflow/lambdaflow/pipelines"
	"github.com/lambdaflow/lambdaflow/pipelines/event"
)

// natsLink is a TCP link between one process and the NATS server that a
// test can stall: while cut, bytes stop flowing both ways and the
// connections stay open, as when a host is frozen or a network partitioned;
// healed, what was held flows on.
type natsLink struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	cond   *sync.Cond
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

// newNATSLink listens on a free port and forwards to target (a nats://
// URL) until the test ends.
func newNATSLink(t *testing.T, target string) *natsLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &natsLink{ln: ln, target: strings.TrimPrefix(target, "nats://")}
	l.cond = sync.NewCond(&l.mu)
	l.wg.Go(l.accept)
	t.Cleanup(l.close)
	return l
}

func (l *natsLink) url() string { return "nats://" + l.ln.Addr().String() }

func (l *natsLink) accept() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", l.target)
		if err != nil {
			in.Close()
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		l.conns = append(l.conns, in, out)
		l.mu.Unlock()
		l.wg.Go(func() { l.pipe(out, in) })
		l.wg.Go(func() { l.pipe(in, out) })
	}
}

// pipe copies from src to dst, holding what it read while the link is cut.
func (l *natsLink) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.mu.Lock()
			for l.cut && !l.closed {
				l.cond.Wait()
			}
			l.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (l *natsLink) setCut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	l.cond.Broadcast()
}

func (l *natsLink) close() {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	conns := l.conns
	l.mu.Unlock()
	l.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	l.wg.Wait()
}

// logLines keeps the messages a process logs, so that a test can wait for
// one.
type logLines struct {
	mu    sync.Mutex
	lines []string
	next  slog.Handler
}

func (h *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (h *logLines) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	h.lines = append(h.lines, r.Message)
	h.mu.Unlock()
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}
func (h *logLines) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logLines) WithGroup(string) slog.Handler      { return h }

func (h *logLines) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range h.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestLeaseLapseMidCommit runs two processes of the batch role on one lake
// (a directory, and the development S3 server) with real leases from one
// NATS server. The first owns the topic's partition, writes a flush's file
// and sleeps just before its manifest record. Its link to NATS is then cut
// (as a frozen host's would be): it stops heartbeating, fences itself
// after 7 s, and the second process takes the partition over once the
// first's key expires, recovers it (removing the sleeper's file), reads
// the same offsets and commits them. Then the sleeper wakes: its record is
// refused, and whatever it removes must leave the new owner's files alone.
// Redone work is exact: the lake holds every event of the log once, also
// after the link heals and more events come.
func TestLeaseLapseMidCommit(t *testing.T) { eachLake(t, testLeaseLapseMidCommit) }

func testLeaseLapseMidCommit(t *testing.T, at lakeAt) {
	natsURL := startNATS(t)
	link := newNATSLink(t, natsURL)
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 1)}, nil)
	at.apply(p)
	p.Lake.Roll = pipelines.LakeRoll{MaxRows: 10_000, MaxAge: pipelines.Duration(50 * time.Millisecond)}
	p.Lake.Compact.Interval = 0
	p1, p2 := *p, *p
	p1.Broker.URL, p2.Broker.URL = link.url(), natsURL
	br1, br2 := openBroker(t, &p1, nil), openBroker(t, &p2, nil)
	st := openStore(t, p)
	ps := &pausedStore{Store: st}
	open := func(p *pipelines.Pipeline, br *broker.Broker, name string, opts Options) *Batch {
		n, err := br.Join(context.Background(), broker.NodeOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		opts.Poll, opts.Owner = 10*time.Millisecond, n
		b, err := New(p, br, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		startBatch(t, b)
		return b
	}
	logs1 := &logLines{next: testLogger(t).Handler()}
	b1 := open(&p1, br1, "w1", Options{Logger: slog.New(logs1), Store: ps})
	// Cleanups run last first: the link heals before the processes stop.
	testenv.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		if e := b1.manifestOf("metrics").partition(0).Epoch; e == 0 {
			return errors.New("the first process has not taken the partition yet")
		}
		return nil
	})
	epoch1 := b1.manifestOf("metrics").partition(0).Epoch

	paused, release := make(chan string, 1), make(chan struct{})
	var releaseOnce sync.Once
	wake := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(wake)
	ps.arm(func(key string) {
		paused <- key
		<-release
	})
	var evs []event.Event
	for i := range 100 {
		evs = append(evs, testEvent("a", i, t0, time.Second))
	}
	appendEvents(t, br2, "metrics", 1, evs)
	select {
	case <-paused:
	case <-time.After(60 * time.Second):
		t.Fatal("the first process did not reach its manifest record within 60 s")
	}
	link.setCut(true)
	t.Cleanup(func() { link.setCut(false) })

	b2 := open(&p2, br2, "w2", Options{Logger: testLogger(t)})
	testenv.CheckFor(t, 90*time.Second, 20*time.Millisecond, func() error {
		ps := b2.manifestOf("metrics").partition(0)
		if ps.Epoch <= epoch1 || ps.Next < 100 {
			return fmt.Errorf("partition 0 at %d under epoch %d; want 100 under an epoch past %d", ps.Next, ps.Epoch, epoch1)
		}
		return nil
	})

	// The sleeper wakes; its flush must fail (the partition moved).
	refused := "lake: partitions taken by another process left out of the flush"
	wake()
	testenv.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		if logs1.count(refused) == 0 && logs1.count("lake: flush failed") == 0 {
			return errors.New("the sleeper's flush has not ended yet")
		}
		return nil
	})
	checkLakeHolds(t, b2, evs)

	// The link heals; more events come, written by whichever process owns
	// the partition now. Every event is in the lake once.
	link.setCut(false)
	for i := range 100 {
		evs = append(evs, testEvent("b", i, t0, time.Second))
	}
	appendEvents(t, br2, "metrics", 1, evs[100:])
	waitLake(t, b2, nil, "metrics", map[int]int64{0: 200})
	checkLakeHolds(t, b2, evs)
}

// checkLakeHolds fails unless the lake's manifest lists exactly evs, each
// once, every file readable, and the partition's next is at their count.
func checkLakeHolds(t *testing.T, b *Batch, evs []event.Event) {
	t.Helper()
	wantEvents(t, readLake(t, b, "metrics"), evs)
	if ps := b.manifestOf("metrics").partition(0); ps.Next != int64(len(evs)) || ps.Rows != int64(len(evs)) {
		t.Fatalf("partition 0: next %d, rows %d; want %d and %d", ps.Next, ps.Rows, len(evs), len(evs))
	}
}

// wantEvents fails unless the events read from a lake (readLake) are
// exactly evs, by id.
func wantEvents(t testing.TB, got map[string]event.Event, evs []event.Event) {
	t.Helper()
	if len(got) != len(evs) {
		t.Fatalf("the lake holds %d events, want %d", len(got), len(evs))
	}
	for _, e := range evs {
		if _, ok := got[e.ID]; !ok {
			t.Fatalf("event %s is not in the lake", e.ID)
		}
	}
}
