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

// lapseRig is two processes of the batch role on one lake (a directory,
// or the development S3 server) with real leases from one NATS server. The
// first reaches NATS through a link the test cuts (as a frozen host's or a
// partitioned network's would be: it stops heartbeating, fences itself
// after 7 s, and the other takes its partitions once its key expires) and
// reaches the lake through a store that makes it sleep at will (until
// wake).
type lapseRig struct {
	t       *testing.T
	link    *natsLink
	p1, p2  pipelines.Pipeline
	br1     *broker.Broker
	br2     *broker.Broker
	ps      *pausedStore
	logs1   *logLines
	asleep  chan struct{}
	release chan struct{}
	once    sync.Once
}

func newLapseRig(t *testing.T, at lakeAt, compact pipelines.Compact) *lapseRig {
	natsURL := startNATS(t)
	r := &lapseRig{t: t, link: newNATSLink(t, natsURL), asleep: make(chan struct{}, 1), release: make(chan struct{})}
	p := testPipeline(t.TempDir(), []pipelines.Topic{testTopic("metrics", 1)}, nil)
	at.apply(p)
	p.Lake.Roll = pipelines.LakeRoll{MaxRows: 10_000, MaxAge: pipelines.Duration(50 * time.Millisecond)}
	p.Lake.Compact = compact
	r.p1, r.p2 = *p, *p
	r.p1.Broker.URL, r.p2.Broker.URL = r.link.url(), natsURL
	r.br1, r.br2 = openBroker(t, &r.p1, nil), openBroker(t, &r.p2, nil)
	r.ps = &pausedStore{Store: openStore(t, p)}
	r.logs1 = &logLines{next: testLogger(t).Handler()}
	return r
}

func (r *lapseRig) open(p *pipelines.Pipeline, br *broker.Broker, name string, opts Options) *Batch {
	n, err := br.Join(context.Background(), broker.NodeOptions{Name: name})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { n.Close() })
	opts.Poll, opts.Owner = 10*time.Millisecond, n
	b, err := New(p, br, nil, opts)
	if err != nil {
		r.t.Fatal(err)
	}
	startBatch(r.t, b)
	return b
}

// first starts the process that sleeps; it is woken before it stops.
func (r *lapseRig) first() *Batch {
	b := r.open(&r.p1, r.br1, "w1", Options{Logger: slog.New(r.logs1), Store: r.ps})
	r.t.Cleanup(r.wake)
	return b
}

// second starts the other process, on a store of its own.
func (r *lapseRig) second() *Batch {
	return r.open(&r.p2, r.br2, "w2", Options{Logger: testLogger(r.t)})
}

// sleep is a pausedStore hook: the first process sleeps in it until wake.
func (r *lapseRig) sleep() {
	r.asleep <- struct{}{}
	<-r.release
}

func (r *lapseRig) wake() { r.once.Do(func() { close(r.release) }) }

// cut waits for the first process to fall asleep, then cuts its link to
// NATS (healed before the processes stop).
func (r *lapseRig) cut() {
	select {
	case <-r.asleep:
	case <-time.After(60 * time.Second):
		r.t.Fatal("the first process did not reach the point where it sleeps within 60 s")
	}
	r.link.setCut(true)
	r.t.Cleanup(func() { r.link.setCut(false) })
}

// waitTaken waits until b's manifest shows partition 0 taken over (an
// epoch past epoch) and written up to next.
func waitTaken(t *testing.T, b *Batch, epoch uint64, next int64) {
	t.Helper()
	testenv.CheckFor(t, 90*time.Second, 20*time.Millisecond, func() error {
		ps := b.manifestOf("metrics").partition(0)
		if ps.Epoch <= epoch || ps.Next < next {
			return fmt.Errorf("partition 0 at %d under epoch %d; want %d under an epoch past %d", ps.Next, ps.Epoch, next, epoch)
		}
		return nil
	})
}

// events returns events [from, from+n) of the stream the lapse tests
// write.
func events(prefix string, n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = testEvent(prefix, i, t0, time.Second)
	}
	return evs
}

// TestLeaseLapseMidCommit: the first process owns the topic's partition,
// writes a flush's file and sleeps just before its manifest record; its
// link to NATS is cut. The second takes the partition over, recovers it
// (removing the sleeper's file), reads the same offsets and commits them.
// Then the sleeper wakes: its record is refused, and whatever it removes
// must leave the new owner's files alone. Redone work is exact: the lake
// holds every event of the log once, also after the link heals and more
// events come.
func TestLeaseLapseMidCommit(t *testing.T) { eachLake(t, testLeaseLapseMidCommit) }

func testLeaseLapseMidCommit(t *testing.T, at lakeAt) {
	r := newLapseRig(t, at, pipelines.Compact{})
	b1 := r.first()
	testenv.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		if e := b1.manifestOf("metrics").partition(0).Epoch; e == 0 {
			return errors.New("the first process has not taken the partition yet")
		}
		return nil
	})
	epoch1 := b1.manifestOf("metrics").partition(0).Epoch
	r.ps.arm(func(string) { r.sleep() })
	evs := events("a", 100)
	appendEvents(t, r.br2, "metrics", 1, evs)
	r.cut()
	b2 := r.second()
	waitTaken(t, b2, epoch1, 100)

	// The sleeper wakes; its flush must fail (the partition moved).
	r.wake()
	testenv.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		if r.logs1.count("lake: partitions taken by another process left out of the flush") == 0 && r.logs1.count("lake: flush failed") == 0 {
			return errors.New("the sleeper's flush has not ended yet")
		}
		return nil
	})
	checkLakeHolds(t, b2, evs)

	// The link heals; more events come, written by whichever process owns
	// the partition now. Every event is in the lake once.
	r.link.setCut(false)
	evs = append(evs, events("b", 100)...)
	appendEvents(t, r.br2, "metrics", 1, evs[100:])
	waitLake(t, b2, nil, "metrics", map[int]int64{0: 200})
	checkLakeHolds(t, b2, evs)
}

// TestLeaseLapseMidRecovery: the first process takes the partition and
// sleeps in its recovery, between reading the manifest and removing the
// files it lists nowhere; its link to NATS is cut. The second takes the
// partition over, writes two flushes and merges them (hiding the inputs).
// When the sleeper wakes, all of that is in its listing and none of it in
// the manifest it read: it must remove none of it. (A process frozen as a
// whole, its heartbeats too, resumes with its recovery's requests in hand
// before its own fence stops them; the cut link only lets the other take
// over, so the sleeper's requests are made to outlive its lease.)
func TestLeaseLapseMidRecovery(t *testing.T) { eachLake(t, testLeaseLapseMidRecovery) }

func testLeaseLapseMidRecovery(t *testing.T, at lakeAt) {
	r := newLapseRig(t, at, pipelines.Compact{MinFiles: 2, Interval: pipelines.Duration(20 * time.Millisecond)})
	evs := events("a", 100)
	appendEvents(t, r.br2, "metrics", 1, evs[:50])
	recovered := make(chan struct{})
	r.ps.mu.Lock()
	r.ps.pauseList = func() {
		r.sleep()
		r.ps.mu.Lock()
		r.ps.detached = true
		r.ps.onDelete = func() {
			r.ps.detached = false
			close(recovered)
		}
		r.ps.mu.Unlock()
	}
	r.ps.mu.Unlock()
	r.first()
	r.cut()
	b2 := r.second()
	// The sleeper's take-over is epoch 1 (the partition's first).
	waitTaken(t, b2, 1, 50)
	appendEvents(t, r.br2, "metrics", 1, evs[50:])
	testenv.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		m := b2.manifestOf("metrics")
		if m.partition(0).Next < 100 || len(m.Files()) != 1 || !m.Files()[0].Compacted || len(m.Replaced) == 0 {
			return fmt.Errorf("next %d, %d files, %d replaced; want 100 in one merged file", m.partition(0).Next, len(m.Files()), len(m.Replaced))
		}
		return nil
	})
	r.wake()
	select {
	case <-recovered:
	case <-time.After(60 * time.Second):
		t.Fatal("the sleeper's recovery did not finish within 60 s")
	}
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
